"""LDAP search filters as the directory settings write them, without the LDAP library (the
settings pages and the set-time checks load this, not ldap3).

A filter is a template: `?` (and `{user}`, `{username}`, `{email}`) stands for the login,
`{local}` for its local part and `{domain}` for its domain, as in the reference. `render_filter`
puts escaped values in place (RFC 4515 §3: a login can never add filter syntax);
`validate_filter` is a strict RFC 4515 parse of the template, used when a filter is set, so that
a typo is refused with the property named instead of found at the first login.
"""
from __future__ import annotations

SAMPLE = "jane@example.org"  # the address the settings page previews filters with


_PLACEHOLDERS = {"user": "full", "username": "full", "email": "full", "local": "local",
                 "domain": "domain"}


def escape_filter_value(value: str) -> str:
    """RFC 4515 §3: NUL, parentheses, asterisk and backslash as \\XX; everything else as is."""
    out = []
    for ch in value:
        if ch in "\\*()\x00":
            out.append("\\%02x" % ord(ch))
        else:
            out.append(ch)
    return "".join(out)


def _template(template: str) -> list[tuple[str, str, int]]:
    """The template as (kind, text, position) pieces: ("static", text, where it starts) or
    ("full"|"local"|"domain", "", where the placeholder starts). Raises ValueError on an unknown
    or unclosed placeholder."""
    pieces: list[tuple[str, str, int]] = []
    start, i = 0, 0
    while i < len(template):
        ch = template[i]
        if ch in "?{":
            if i > start:
                pieces.append(("static", template[start:i], start))
            if ch == "?":
                pieces.append(("full", "", i))
            else:
                end = template.find("}", i)
                if end < 0:
                    raise ValueError("unclosed placeholder '{'")
                name = template[i + 1:end]
                if name not in _PLACEHOLDERS:
                    raise ValueError(f"unknown placeholder {{{name}}}")
                pieces.append((_PLACEHOLDERS[name], "", i))
                i = end
            start = i + 1
        i += 1
    if len(template) > start:
        pieces.append(("static", template[start:], start))
    return pieces


def render_filter(template: str, value: str) -> str:
    """The filter for one value (a login, or a DN for filterMemberOf), every substitution
    escaped."""
    local, _, domain = value.rpartition("@") if "@" in value else (value, "", "")
    parts = {"full": value, "local": local, "domain": domain}
    return "".join(text if kind == "static" else escape_filter_value(parts[kind])
                   for kind, text, _ in _template(template))


class _FilterParser:
    """A strict RFC 4515 parser: it accepts a filter or raises ValueError saying where."""

    # Real filters nest a handful of levels; a limit keeps a hostile one from exhausting the
    # interpreter's stack (a RecursionError would be a 500, not a refusal naming the property).
    MAX_DEPTH = 32

    def __init__(self, text: str):
        self.text = text
        self.pos = 0
        self.depth = 0

    def fail(self, what: str):
        error = ValueError(what)
        error.pos = self.pos
        raise error

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, ch: str):
        if self.peek() != ch:
            self.fail(f"expected '{ch}'" + (f", found '{self.peek()}'" if self.peek() else ""))
        self.pos += 1

    def parse(self):
        self.filter()
        if self.pos != len(self.text):
            self.fail("unexpected text after the filter")

    def filter(self):
        self.expect("(")
        self.depth += 1
        if self.depth > self.MAX_DEPTH:
            self.fail(f"filters nested deeper than {self.MAX_DEPTH} levels")
        ch = self.peek()
        if ch in "&|":
            self.pos += 1
            if self.peek() != "(":
                self.fail("'&' and '|' need at least one filter")
            while self.peek() == "(":
                self.filter()
        elif ch == "!":
            self.pos += 1
            self.filter()
        else:
            self.item()
        self.expect(")")
        self.depth -= 1

    def attribute(self) -> None:
        start = self.pos
        text = self.text
        if self.peek() and self.peek() in "0123456789":
            # numericoid: number *( "." number )
            while self.pos < len(text) and text[self.pos] in "0123456789.":
                self.pos += 1
            oid = text[start:self.pos]
            if not all(p and (p == "0" or not p.startswith("0")) for p in oid.split(".")):
                self.fail("malformed numeric OID")
        elif self.peek().isascii() and self.peek().isalpha():
            while self.pos < len(text) and (text[self.pos].isascii()
                                             and (text[self.pos].isalnum() or text[self.pos] == "-")):
                self.pos += 1
        else:
            self.fail("expected an attribute name")
        while self.peek() == ";":  # options
            self.pos += 1
            begin = self.pos
            while self.pos < len(text) and text[self.pos].isascii() and (
                    text[self.pos].isalnum() or text[self.pos] == "-"):
                self.pos += 1
            if begin == self.pos:
                self.fail("empty attribute option")

    def value(self, allow_star: bool) -> None:
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            if ch == ")" or (ch == "*" and allow_star):
                return
            if ch in "(*\x00":
                self.fail(f"'{ch}' must be escaped in a value")
            if ch == "\\":
                pair = text[self.pos + 1:self.pos + 3]
                if len(pair) != 2 or any(c not in "0123456789abcdefABCDEF" for c in pair):
                    self.fail("'\\' must be followed by two hexadecimal digits")
                self.pos += 3
                continue
            self.pos += 1

    def item(self):
        if self.peek() == ":":  # extensible without attribute: [":dn"] ":" rule ":=" value
            self.extensible(has_attribute=False)
            return
        self.attribute()
        ch = self.peek()
        if ch == ":":
            self.extensible(has_attribute=True)
            return
        if ch in "~<>":
            self.pos += 1
            self.expect("=")
            self.value(allow_star=False)
            return
        self.expect("=")
        # simple, present or substring: the value with unescaped '*' separating its parts.
        self.value(allow_star=True)
        while self.peek() == "*":
            self.pos += 1
            self.value(allow_star=True)

    def extensible(self, has_attribute: bool):
        if self.text.startswith(":dn:", self.pos):
            self.pos += 3
        has_rule = False
        if self.peek() == ":" and not self.text.startswith(":=", self.pos):
            self.pos += 1
            self.attribute()  # a matching rule: descr or numericoid
            has_rule = True
        if not (has_attribute or has_rule):
            self.fail("an extensible match needs an attribute or a matching rule")
        self.expect(":")
        self.expect("=")
        self.value(allow_star=False)


def validate_filter(template: str) -> str | None:
    """None when `template` is a usable filter template, else why not (for a SetError)."""
    if not template or not template.strip():
        return "the filter is empty"
    try:
        pieces = _template(template)
    except ValueError as exc:
        return str(exc)
    if not any(kind != "static" for kind, _, _ in pieces):
        return "the filter has no '?' placeholder for the login"
    # A sample full of characters that need escaping: a placeholder put where only a value may
    # stand (an attribute name, say) makes the filter unparsable. `origin` maps each character
    # of the sample back to the template, so that the error points into what the user wrote.
    value = escape_filter_value("x*(y)\\z")
    sample, origin = [], []
    for kind, text, position in pieces:
        if kind == "static":
            sample.append(text)
            origin.extend(range(position, position + len(text)))
        else:
            sample.append(value)
            origin.extend([position] * len(value))
    try:
        _FilterParser("".join(sample)).parse()
    except ValueError as exc:
        where = origin[exc.pos] if exc.pos < len(origin) else len(template)
        return f"not a valid LDAP filter (RFC 4515): {exc} at position {where + 1}"
    return None
