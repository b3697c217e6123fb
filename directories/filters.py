"""LDAP search filters as the directory settings write them: `?` stands for the value looked up.

`check()` is a strict parser of the RFC 4515 string form, used when a filter is set (so that a
typo is refused with the property named, not found at the first login); `substitute()` puts an
escaped value in place of every `?`, as the backend does at search time.
"""
from __future__ import annotations

import re

PLACEHOLDER = "?"
SAMPLE = "jane@example.org"

# RFC 4512 attribute description: a descriptor or numeric OID, then ;options.
_ATTR = re.compile(r"(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)(?:;[A-Za-z0-9-]+)*")
_RULE = re.compile(r"(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)")
_HEX = "0123456789abcdefABCDEF"


class FilterSyntaxError(ValueError):
    pass


def escape(value: str) -> str:
    """A value as an RFC 4515 assertion value: the characters that end or change a filter
    (`*`, `(`, `)`, `\\`, NUL) become `\\XX`, so a login name cannot widen the search."""
    out = []
    for ch in value:
        if ch in "*()\\\0":
            out.append("\\%02x" % ord(ch))
        else:
            out.append(ch)
    return "".join(out)


def substitute(template: str, value: str) -> str:
    return template.replace(PLACEHOLDER, escape(value))


def check(template: str, *, sample: str = SAMPLE) -> None:
    """Raise FilterSyntaxError unless `template`, with `?` replaced by a sample value, is one
    RFC 4515 filter, and unless it has a `?` at all (a filter without one would find the same
    entry whoever logs in)."""
    if PLACEHOLDER not in template:
        raise FilterSyntaxError("the filter has no ? to stand for the value looked up")
    text = substitute(template, sample)
    end = _Parser(text).filter(0)
    if end != len(text):
        raise FilterSyntaxError(f"unexpected text after the filter at position {end + 1}")


class _Parser:
    MAX_DEPTH = 64

    def __init__(self, text: str):
        self.text = text

    def fail(self, pos: int, what: str):
        raise FilterSyntaxError(f"{what} at position {pos + 1}")

    def filter(self, pos: int, depth: int = 0) -> int:
        if depth > self.MAX_DEPTH:
            self.fail(pos, "filter nested too deeply")
        if pos >= len(self.text) or self.text[pos] != "(":
            self.fail(pos, "expected (")
        pos += 1
        if pos >= len(self.text):
            self.fail(pos, "unterminated filter")
        ch = self.text[pos]
        if ch in "&|":
            pos += 1
            count = 0
            while pos < len(self.text) and self.text[pos] == "(":
                pos = self.filter(pos, depth + 1)
                count += 1
            if count == 0:
                self.fail(pos, f"{ch} needs at least one filter")
        elif ch == "!":
            pos = self.filter(pos + 1, depth + 1)
        else:
            pos = self.item(pos)
        if pos >= len(self.text) or self.text[pos] != ")":
            self.fail(pos, "expected )")
        return pos + 1

    def item(self, pos: int) -> int:
        text = self.text
        match = _ATTR.match(text, pos)
        if match is None:
            if text.startswith(":", pos):  # extensible match without an attribute
                return self.extensible(pos, attr=False)
            self.fail(pos, "expected an attribute name")
        pos = match.end()
        if text.startswith(":", pos):
            return self.extensible(pos, attr=True)
        for op in ("~=", ">=", "<="):
            if text.startswith(op, pos):
                return self.value(pos + 2, stars=False)
        if not text.startswith("=", pos):
            self.fail(pos, "expected =, ~=, >= or <=")
        # equality, presence (=*) or substrings (a*b*c): stars separate the parts.
        return self.value(pos + 1, stars=True)

    def extensible(self, pos: int, *, attr: bool) -> int:
        text = self.text
        if text.startswith(":dn:", pos):
            pos += 3
        rule = False
        if text.startswith(":", pos) and not text.startswith(":=", pos):
            match = _RULE.match(text, pos + 1)
            if match is None:
                self.fail(pos + 1, "expected a matching rule")
            pos, rule = match.end(), True
        if not attr and not rule:
            self.fail(pos, "an extensible match without an attribute needs a matching rule")
        if not text.startswith(":=", pos):
            self.fail(pos, "expected :=")
        return self.value(pos + 2, stars=False)

    def value(self, pos: int, *, stars: bool) -> int:
        text = self.text
        while pos < len(text) and text[pos] != ")":
            ch = text[pos]
            if ch == "\\":
                if pos + 2 >= len(text) or text[pos + 1] not in _HEX or text[pos + 2] not in _HEX:
                    self.fail(pos, "a backslash must start a two-digit hex escape")
                pos += 3
                continue
            if ch == "(" or ch == "\0" or (ch == "*" and not stars):
                self.fail(pos, f"unescaped {ch!r} in a value")
            pos += 1
        return pos
