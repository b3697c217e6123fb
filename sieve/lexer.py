"""The tokenizer of RFC 5228 §8.1, with the line and column of every token."""
from __future__ import annotations

from dataclasses import dataclass

from .errors import SieveError

IDENT, TAG, NUMBER, STRING, PUNCT, EOF = "identifier", "tag", "number", "string", "punct", "end"
_QUANTIFIERS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_PUNCT = set("[](){},;")
# RFC 5228 §2.4.1: a number is at most 2^63-1 once its quantifier is applied.
_MAX_NUMBER = (1 << 63) - 1


@dataclass(frozen=True)
class Token:
    kind: str
    value: object
    line: int
    column: int


def _is_ident_start(c: str) -> bool:
    return c == "_" or ("a" <= c <= "z") or ("A" <= c <= "Z")


def _is_ident_char(c: str) -> bool:
    return _is_ident_start(c) or "0" <= c <= "9"


class Lexer:
    def __init__(self, text: str, max_string_length: int):
        self.text = text
        self.pos = 0
        self.line = 1
        self.col = 1
        self.max_string_length = max_string_length

    def error(self, message: str, line: int | None = None, column: int | None = None) -> SieveError:
        return SieveError(message, line or self.line, column or self.col)

    def _advance(self, n: int = 1) -> None:
        for _ in range(n):
            if self.text[self.pos] == "\n":
                self.line += 1
                self.col = 1
            else:
                self.col += 1
            self.pos += 1

    def _skip_space(self) -> None:
        text = self.text
        while self.pos < len(text):
            c = text[self.pos]
            if c in " \t\r\n":
                self._advance()
            elif c == "#":
                end = text.find("\n", self.pos)
                self._advance((len(text) if end < 0 else end) - self.pos)
            elif text.startswith("/*", self.pos):
                line, col = self.line, self.col
                end = text.find("*/", self.pos + 2)
                if end < 0:
                    raise self.error("unterminated comment", line, col)
                self._advance(end + 2 - self.pos)
            else:
                return

    def tokens(self):
        text = self.text
        while True:
            self._skip_space()
            line, col = self.line, self.col
            if self.pos >= len(text):
                yield Token(EOF, None, line, col)
                return
            c = text[self.pos]
            if c in _PUNCT:
                self._advance()
                yield Token(PUNCT, c, line, col)
            elif c == '"':
                yield Token(STRING, self._quoted(line, col), line, col)
            elif c == ":":
                self._advance()
                if self.pos >= len(text) or not _is_ident_start(text[self.pos]):
                    raise self.error("a tag is ':' followed by a name", line, col)
                yield Token(TAG, ":" + self._identifier().lower(), line, col)
            elif "0" <= c <= "9":
                yield Token(NUMBER, self._number(line, col), line, col)
            elif _is_ident_start(c):
                name = self._identifier()
                if name.lower() == "text" and self.pos < len(text) and text[self.pos] == ":":
                    self._advance()
                    yield Token(STRING, self._multiline(line, col), line, col)
                else:
                    yield Token(IDENT, name.lower(), line, col)
            else:
                raise self.error(f"unexpected character {c!r}", line, col)

    def _identifier(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and _is_ident_char(self.text[self.pos]):
            self._advance()
        return self.text[start:self.pos]

    def _number(self, line: int, col: int) -> int:
        start = self.pos
        while self.pos < len(self.text) and "0" <= self.text[self.pos] <= "9":
            self._advance()
        digits = self.text[start:self.pos]
        if len(digits) > 19:
            raise self.error("number too large", line, col)
        value = int(digits)
        if self.pos < len(self.text) and self.text[self.pos].lower() in _QUANTIFIERS:
            value *= _QUANTIFIERS[self.text[self.pos].lower()]
            self._advance()
        if value > _MAX_NUMBER:
            raise self.error("number too large", line, col)
        if self.pos < len(self.text) and _is_ident_char(self.text[self.pos]):
            raise self.error("a number is followed by a letter other than K, M or G")
        return value

    def _check_length(self, length: int, line: int, col: int) -> None:
        if length > self.max_string_length:
            raise self.error(f"string longer than {self.max_string_length} characters", line, col)

    def _quoted(self, line: int, col: int) -> str:
        text = self.text
        self._advance()  # the opening quote
        out = []
        while True:
            if self.pos >= len(text):
                raise self.error("unterminated string", line, col)
            c = text[self.pos]
            if c == '"':
                self._advance()
                break
            if c == "\\":
                if self.pos + 1 >= len(text):
                    raise self.error("unterminated string", line, col)
                # RFC 5228 §2.4.2: \" and \\ are escapes; any other backslash just vanishes.
                c = text[self.pos + 1]
                self._advance()
            out.append(c)
            self._advance()
            if len(out) > self.max_string_length:
                self._check_length(len(out), line, col)
        # CRLF and LF both end a line inside a string; the value keeps the script's own.
        return "".join(out)

    def _multiline(self, line: int, col: int) -> str:
        """`text:` then the rest of the line (blanks and an optional comment), then lines up to a
        line holding only '.'; a line starting with '..' loses one dot (RFC 5228 §2.4.2)."""
        text = self.text
        while self.pos < len(text) and text[self.pos] in " \t":
            self._advance()
        if text.startswith("#", self.pos):
            end = text.find("\n", self.pos)
            self._advance((len(text) if end < 0 else end) - self.pos)
        if text.startswith("\r\n", self.pos):
            self._advance(2)
        elif text.startswith("\n", self.pos):
            self._advance()
        else:
            raise self.error("'text:' must be followed by the end of the line")
        lines = []
        size = 0
        while True:
            if self.pos >= len(text):
                raise self.error("unterminated multi-line string (a line with only '.' ends it)", line, col)
            end = text.find("\n", self.pos)
            end = len(text) if end < 0 else end + 1
            raw = text[self.pos:end]
            self._advance(end - self.pos)
            if raw.rstrip("\r\n") == ".":
                break
            if raw.startswith(".."):
                raw = raw[1:]
            lines.append(raw)
            size += len(raw)
            self._check_length(size, line, col)
        return "".join(lines)
