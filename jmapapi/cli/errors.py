"""The one error type of the commands: printed as `error: <message>`, exit status 1."""


class CliError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def unknown_field(name: str) -> CliError:
    return CliError(f"unknown field: {name}")
