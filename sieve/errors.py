"""The two errors of the library: a script that does not compile, and a run that went wrong."""
from __future__ import annotations


class SieveError(Exception):
    """A script that cannot run, with the 1-based line and column of the fault.

    `str()` is what SieveScript/validate and an `invalidSieve` SetError show to the user."""

    def __init__(self, message: str, line: int = 0, column: int = 0):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column

    def __str__(self) -> str:
        if self.line:
            return f"line {self.line}, column {self.column}: {self.message}"
        return self.message


class SieveRuntimeError(Exception):
    """A run stopped (a limit reached, incompatible actions): RFC 5228 §2.10.6 then keeps the
    message, so the caller never sees this; it reads `Result.error` instead."""

    def __init__(self, message: str, line: int = 0, column: int = 0):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.message}" if self.line else self.message
