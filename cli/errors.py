"""The one error type of the commands: printed as `error: <message>`, exit status 1."""
import json
import re


class CliError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def unknown_field(name: str) -> CliError:
    return CliError(f"unknown field: {name}")


# What the server says is shown on our terminal: its control characters are shown escaped, so
# that a hostile server cannot retitle the window, clear the screen or forge a line of output.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_OR_NEWLINE = re.compile("[\x00-\x1f\x7f-\x9f]")


def printable(text: str, keep_newlines: bool = True) -> str:
    pattern = _CONTROL if keep_newlines else _CONTROL_OR_NEWLINE
    return pattern.sub(lambda m: repr(m.group())[1:-1], text)


def loads(text):
    """json.loads, where nesting too deep for the parser is bad JSON like any other (a
    RecursionError, and so a traceback, before)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None
