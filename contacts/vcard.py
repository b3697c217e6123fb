"""vCard 3.0 and 4.0 for the contact store: validation, the searchable values, conversion
between the two versions, and partial data. Nothing of ours is imported.

vobject tokenizes (logical lines, unfolding, the content-line grammar, parameters). Values are
kept as the client wrote them (escaped): vobject's own value decoding keeps only the first item
of a list value (`CATEGORIES:a,b` becomes "a"), so values are split and unescaped here, by
RFC 6350 §3.4. Before vobject's regular expression sees a line, RE2 checks the same grammar in
linear time: on a line that does not match, Python's backtracking engine would take
exponential time (`X;A=b=b=b…` without a colon).

    card = parse(data)                  # Invalid(condition, message) when it cannot be stored
    rows = index_rows(card)             # what CardProperty stores
    text = render(stored_text, version="3.0", props=[("FN", False)])
"""
from __future__ import annotations

import io
import re
import unicodedata
from dataclasses import dataclass, field

import re2
from vobject.base import VObjectError, getLogicalLines, parseLine

VERSIONS = ("3.0", "4.0")
VALID = "valid-address-data"
SUPPORTED = "supported-address-data"
MAX_NAME = 255  # property and group names: CardProperty's columns

# The content-line grammar of vobject's `line_re`, for RE2: group, name, parameters (values
# plain or quoted; vobject's grammar lets a value hold "=" and a parameter hold several
# "=" / "," parts), then the colon.
_LINE = re2.compile(r'(?:[A-Za-z0-9_-]+\.)?[A-Za-z0-9_-]+;?'
                    r'(?:;[A-Za-z0-9_-]+(?:[=,](?:"[^"]*"|[^";:,]*))*)*:')
_VERSION = re.compile(r"^VERSION:([^\r\n]*)", re.M | re.I)
_TOKENS = re.compile(r"\\.|[^\\]+|\\", re.S)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

BINARY = frozenset({"PHOTO", "LOGO", "SOUND", "KEY"})
LISTS = frozenset({"CATEGORIES", "NICKNAME"})
MEDIA = {"PHOTO": "image", "LOGO": "image", "SOUND": "audio", "KEY": "application"}


class Invalid(Exception):
    """The data cannot be stored; `condition` is the CardDAV precondition it breaks."""

    def __init__(self, condition: str, message: str):
        super().__init__(message)
        self.condition = condition
        self.message = message


@dataclass
class Line:
    """One content line: the value as written (escaped), parameter names upper-cased."""

    name: str
    value: str
    params: dict[str, list[str]] = field(default_factory=dict)
    group: str = ""

    def param(self, name: str) -> list[str]:
        return self.params.get(name, [])

    def types(self) -> set[str]:
        return {t.lower() for t in self.param("TYPE")}


@dataclass
class VCard:
    version: str
    lines: list[Line]  # between BEGIN and END, VERSION included
    uid: str = ""
    kind: str = "individual"
    fn: str = ""


# --- values --------------------------------------------------------------------------------

def unescape(value: str) -> str:
    """RFC 6350 §3.4: backslash escapes of text values."""
    if "\\" not in value:
        return value
    out = []
    for token in _TOKENS.findall(value):
        if token.startswith("\\") and len(token) == 2:
            out.append("\n" if token[1] in "nN" else token[1])
        else:
            out.append(token)
    return "".join(out)


def split(value: str, separator: str) -> list[str]:
    """`value` split at each `separator` that is not escaped; the parts stay escaped."""
    if separator not in value:
        return [value]
    parts, current = [], []
    for token in _TOKENS.findall(value):
        if token.startswith("\\"):
            current.append(token)
            continue
        pieces = token.split(separator)
        current.append(pieces[0])
        for piece in pieces[1:]:
            parts.append("".join(current))
            current = [piece]
    parts.append("".join(current))
    return parts


def fold(text: str) -> str:
    """i;unicode-casemap (RFC 5051): compatibility decomposition of the case-folded text.

    The RFC maps each character to its titlecase; case folding differs only where one character
    folds to two (ß matches "ss" here), which only widens a match."""
    return unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", text).casefold())


def ascii_fold(text: str) -> str:
    """i;ascii-casemap (RFC 4790 §9.2): only A-Z are folded."""
    return text.translate(_ASCII_LOWER)


def text_values(line: Line) -> list[str]:
    """The values a text-match compares with: one per item of a list property, the components
    joined by ";" for a structured one, nothing for binary data."""
    if line.name in BINARY or _is_inline_binary(line):
        return [""]
    if line.name in LISTS:
        return [unescape(item) for item in split(line.value, ",")]
    return [unescape(line.value)]


def _is_inline_binary(line: Line) -> bool:
    encoding = {e.lower() for e in line.param("ENCODING")}
    return bool(encoding & {"b", "base64"}) or line.value[:5].lower() == "data:"


# --- parsing -------------------------------------------------------------------------------

def parse(data: bytes | str) -> VCard:
    """One vCard 3.0 or 4.0 with a UID; Invalid otherwise."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise Invalid(VALID, "The vCard is not UTF-8.") from None
    else:
        text = data
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise Invalid(VALID, "The vCard holds a lone surrogate.") from None
    text = text.removeprefix("\ufeff")
    if "\0" in text:
        raise Invalid(VALID, "The vCard contains a NUL character.")
    # Another version is told apart before its lines are read: vCard 2.1's quoted-printable soft
    # line breaks are no content lines, and would otherwise make it "invalid".
    declared = _VERSION.search(text)
    if declared is not None and declared.group(1).strip() not in VERSIONS:
        raise Invalid(SUPPORTED, f"vCard version {declared.group(1).strip()[:20]!r} is not supported (3.0 and 4.0 are).")
    lines = _lines(text)
    if not lines or lines[0].name != "BEGIN" or lines[0].value.strip().upper() != "VCARD":
        raise Invalid(VALID, "The data does not start with BEGIN:VCARD.")
    ends = [n for n, line in enumerate(lines) if line.name == "END"]
    if not ends or lines[ends[0]].value.strip().upper() != "VCARD":
        raise Invalid(VALID, "The vCard is not closed by END:VCARD.")
    if ends[0] != len(lines) - 1:
        raise Invalid(VALID, "An address object holds exactly one vCard.")
    body = lines[1:-1]
    if any(line.name == "BEGIN" for line in body):
        raise Invalid(VALID, "A vCard may not contain another component.")
    versions = [line.value.strip() for line in body if line.name == "VERSION"]
    if len(versions) != 1:
        raise Invalid(VALID, "A vCard has exactly one VERSION property.")
    if versions[0] not in VERSIONS:
        raise Invalid(SUPPORTED, f"vCard version {versions[0][:20]!r} is not supported (3.0 and 4.0 are).")
    uids = [line for line in body if line.name == "UID"]
    if len(uids) != 1 or not unescape(uids[0].value).strip():
        raise Invalid(VALID, "A vCard stored in an address book has exactly one non-empty UID.")
    card = VCard(version=versions[0], lines=body, uid=unescape(uids[0].value).strip())
    card.fn = next((unescape(line.value).strip() for line in body if line.name == "FN"), "")
    kinds = [line.value for line in body if line.name in ("KIND", "X-ADDRESSBOOKSERVER-KIND")]
    if kinds:
        card.kind = unescape(kinds[0]).strip().lower()[:16] or "individual"
    return card


def _lines(text: str) -> list[Line]:
    out = []
    try:
        for logical, number in getLogicalLines(io.StringIO(text), allowQP=False):
            if not logical.strip():
                continue
            if not _LINE.match(logical):
                raise Invalid(VALID, f"Line {number} is not a content line.")
            name, params, value, group = parseLine(logical, number)
            name = name.upper()
            if len(name) > MAX_NAME or len(group or "") > MAX_NAME:
                raise Invalid(VALID, f"Line {number}: the property name is too long.")
            out.append(Line(name=name, value=value, params=_params(params), group=group or ""))
    except VObjectError as error:
        raise Invalid(VALID, f"The vCard cannot be parsed: {str(error)[:200]}") from None
    return out


def _params(parsed: list[list[str]]) -> dict[str, list[str]]:
    """vobject's parameter lists as {NAME: [values]}; a bare value (`TEL;WORK:`, vCard 2.1 style,
    still sent by some vCard 3 writers) is taken as a TYPE."""
    out: dict[str, list[str]] = {}
    for item in parsed:
        if len(item) == 1:
            out.setdefault("TYPE", []).append(item[0])
        else:
            out.setdefault(item[0].upper(), []).extend(item[1:])
    return out


def index_rows(card: VCard) -> list[tuple[str, str, str, dict]]:
    """(name, group, value, params) for each searchable value of the card."""
    rows = []
    for line in card.lines:
        if line.name == "VERSION":
            continue
        for value in text_values(line):
            rows.append((line.name, line.group.upper(), value, line.params))
    return rows


# --- writing -------------------------------------------------------------------------------

def serialize(card: VCard) -> str:
    out = ["BEGIN:VCARD"]
    out.extend(_line_text(line) for line in card.lines)
    out.append("END:VCARD")
    return "".join(_fold_line(text) for text in out)


def _line_text(line: Line) -> str:
    head = f"{line.group}.{line.name}" if line.group else line.name
    for key, values in line.params.items():
        head += f";{key}=" + ",".join(_quote(v) for v in values)
    return f"{head}:{line.value}"


def _quote(value: str) -> str:
    value = value.replace('"', "'")
    return f'"{value}"' if any(c in value for c in ",;:") else value


def _fold_line(text: str, limit: int = 75) -> str:
    """RFC 6350 §3.2: lines of at most 75 octets, never splitting a UTF-8 sequence."""
    if len(text) <= limit and text.isascii():
        return text + "\r\n"
    if text.isascii():
        pieces = [text[:limit]] + [text[i:i + limit - 1] for i in range(limit, len(text), limit - 1)]
        return "\r\n ".join(pieces) + "\r\n"
    pieces, current, size = [], [], 0
    for char in text:
        width = len(char.encode("utf-8", "surrogatepass"))
        if size + width > limit:
            pieces.append("".join(current))
            current, size = [], 1
        current.append(char)
        size += width
    pieces.append("".join(current))
    return "\r\n ".join(pieces) + "\r\n"


def select(card: VCard, props: list[tuple[str, bool]]) -> VCard:
    """Only the named properties (RFC 6352 §10.4.2), VERSION always; a property asked for with
    novalue keeps its name and parameters only."""
    wanted = {name.upper(): novalue for name, novalue in props}
    lines = []
    for line in card.lines:
        if line.name == "VERSION":
            lines.append(line)
        elif line.name in wanted:
            lines.append(Line(line.name, "", line.params, line.group) if wanted[line.name] else line)
    return VCard(card.version, lines, card.uid, card.kind, card.fn)


def render(text: str, *, version: str | None = None, props: list[tuple[str, bool]] | None = None) -> str:
    """A stored vCard as a client asked for it: in `version` (None: as stored), restricted to
    `props` (None: all). Unchanged text when nothing is asked."""
    if version is None and props is None:
        return text
    card = parse(text)
    if (version is None or version == card.version) and props is None:
        return text
    if version is not None and version != card.version:
        card = convert(card, version)
    if props is not None:
        card = select(card, props)
    return serialize(card)


# --- conversion between 3.0 and 4.0 (RFC 6350 Appendix A, RFC 6352 §10.3) --------------------

_DROP_V3_ONLY = frozenset({"NAME", "MAILER", "CLASS", "PROFILE", "SORT-STRING"})
_DROP_V4_ONLY = frozenset({"CLIENTPIDMAP", "XML"})
_DROP_V4_PARAMS = frozenset({"PID", "ALTID", "MEDIATYPE", "CALSCALE", "SORT-AS", "GEO", "TZ", "LABEL", "INDEX",
                             "LEVEL", "CC"})
_MEDIA_SUBTYPES = {"jpeg": "jpeg", "jpg": "jpeg", "png": "png", "gif": "gif", "bmp": "bmp", "tiff": "tiff",
                   "wav": "wav", "mp3": "mpeg", "ogg": "ogg", "pgp": "pgp-keys", "x509": "x509-ca-cert"}


def convert(card: VCard, version: str) -> VCard:
    """The card in the other version. What has no counterpart is dropped (docs/contacts.md lists
    it); what has one is rewritten."""
    if version not in VERSIONS:
        raise Invalid(SUPPORTED, f"vCard version {version!r} is not supported.")
    if version == card.version:
        return card
    lines = _to_v4(card.lines) if version == "4.0" else _to_v3(card.lines)
    return VCard(version, lines, card.uid, card.kind, card.fn)


def _copy(line: Line, **changes) -> Line:
    out = Line(line.name, line.value, {k: list(v) for k, v in line.params.items()}, line.group)
    for key, value in changes.items():
        setattr(out, key, value)
    return out


def _to_v4(lines: list[Line]) -> list[Line]:
    out, labels = [], []
    for line in lines:
        name = line.name
        if name == "VERSION":
            out.append(Line("VERSION", "4.0"))
            continue
        if name in _DROP_V3_ONLY:
            continue
        if name == "LABEL":
            labels.append(line)
            continue
        line = _copy(line)
        line.params.pop("CHARSET", None)
        if name == "AGENT":
            if line.value.lower().startswith(("http:", "https:", "urn:", "mailto:")):
                out.append(Line("RELATED", line.value, {"TYPE": ["agent"]}, line.group))
            continue
        if name == "X-ADDRESSBOOKSERVER-KIND":
            line.name = "KIND"
        elif name == "X-ADDRESSBOOKSERVER-MEMBER":
            line.name = "MEMBER"
        elif name in BINARY:
            line = _binary_to_v4(line)
        elif name in ("BDAY", "ANNIVERSARY", "REV"):
            line = _date_to_v4(line)
        elif name == "X-ANNIVERSARY":
            line = _date_to_v4(_copy(line, name="ANNIVERSARY"))
        elif name == "X-GENDER":
            line.name = "GENDER"
            line.value = {"male": "M", "female": "F"}.get(line.value.strip().lower(), line.value)
        types = line.param("TYPE")
        if types:
            kept = [t for t in types if t.lower() not in ("pref", "internet")]
            if any(t.lower() == "pref" for t in types):
                line.params["PREF"] = ["1"]
            if kept:
                line.params["TYPE"] = kept
            else:
                line.params.pop("TYPE")
        line.params.pop("ENCODING", None)
        out.append(line)
    for label in labels:
        # A v3 LABEL becomes the LABEL parameter of the ADR of the same types, where one exists.
        target = next((line for line in out if line.name == "ADR" and "LABEL" not in line.params
                       and line.types() - {"pref"} == label.types() - {"pref"}), None)
        if target is not None:
            target.params["LABEL"] = [unescape(label.value).replace("\n", "\\n").replace('"', "'")]
    return out


def _binary_to_v4(line: Line) -> Line:
    encoding = {e.lower() for e in line.param("ENCODING")}
    if encoding & {"b", "base64"}:
        types = [t for t in line.param("TYPE") if t.lower() not in ("pref",)]
        subtype = _MEDIA_SUBTYPES.get(types[0].lower(), types[0].lower()) if types else "octet-stream"
        media = f"{MEDIA[line.name]}/{subtype}" if "/" not in subtype else subtype
        data = "".join(line.value.split())
        params = {k: v for k, v in line.params.items() if k not in ("ENCODING", "TYPE", "VALUE")}
        return Line(line.name, f"data:{media};base64,{data}", params, line.group)
    if [v.lower() for v in line.param("VALUE")] == ["uri"] and line.name != "KEY":
        line.params.pop("VALUE")
    return line


def _binary_to_v3(line: Line) -> Line:
    match = re.match(r"data:([^;,]*)((?:;[^;,]*)*),(.*)\Z", line.value, re.S | re.I)
    if match is None:
        if line.value.lower().startswith(("http:", "https:", "ftp:", "cid:", "urn:", "file:")):
            line.params["VALUE"] = ["uri"]
        return line
    media, flags, data = match.groups()
    params = {k: v for k, v in line.params.items() if k not in ("MEDIATYPE", "VALUE")}
    subtype = media.split("/", 1)[1] if "/" in media else media
    if ";base64" not in flags.lower():
        return line  # a percent-encoded data URI: kept as a URI, vCard 3 has no inline text form
    params["ENCODING"] = ["b"]
    if subtype:
        params["TYPE"] = [subtype.upper()]
    return Line(line.name, data, params, line.group)


_DATE_V3 = re.compile(r"(\d{4})-(\d{2})-(\d{2})(T.*)?\Z", re.S)
_DATE_V4 = re.compile(r"(\d{4}|--)(\d{2})(\d{2})(T.*)?\Z", re.S)


def _date_to_v4(line: Line) -> Line:
    value = line.value.strip()
    match = _DATE_V3.match(value)
    if match is None:
        return line
    year, month, day, time = match.groups()
    omit = line.param("X-APPLE-OMIT-YEAR")
    line.params.pop("X-APPLE-OMIT-YEAR", None)
    if omit and omit[0] == year:
        year = "--"
    if time:
        time = time.replace(":", "")
    line.value = f"{year}{month}{day}{time or ''}"
    return line


def _date_to_v3(line: Line) -> Line | None:
    if [v.lower() for v in line.param("VALUE")] == ["text"]:
        return None  # "circa 1800": vCard 3 has dates only
    match = _DATE_V4.match(line.value.strip())
    if match is None:
        return line
    year, month, day, time = match.groups()
    if year == "--":
        year = "1604"
        line.params["X-APPLE-OMIT-YEAR"] = ["1604"]
    if time and re.fullmatch(r"T\d{6}(Z|[+-]\d{4})?", time):
        time = f"T{time[1:3]}:{time[3:5]}:{time[5:7]}{time[7:]}"
    line.value = f"{year}-{month}-{day}{time or ''}"
    return line


def _to_v3(lines: list[Line]) -> list[Line]:
    out = []
    for line in lines:
        name = line.name
        if name == "VERSION":
            out.append(Line("VERSION", "3.0"))
            continue
        if name in _DROP_V4_ONLY:
            continue
        line = _copy(line)
        label = line.params.get("LABEL")
        pref = line.params.get("PREF")
        for key in _DROP_V4_PARAMS | {"PREF"}:
            line.params.pop(key, None)
        if pref and pref[0].strip() == "1":
            line.params.setdefault("TYPE", []).append("pref")
        if name == "KIND":
            line.name = "X-ADDRESSBOOKSERVER-KIND"
        elif name == "MEMBER":
            line.name = "X-ADDRESSBOOKSERVER-MEMBER"
        elif name in BINARY:
            line = _binary_to_v3(line)
        elif name == "BDAY":
            line = _date_to_v3(line)
        elif name == "ANNIVERSARY":
            line = _date_to_v3(_copy(line, name="X-ANNIVERSARY"))
        elif name == "GENDER":
            sex = split(line.value, ";")[0].strip().upper()
            line = Line("X-GENDER", {"M": "Male", "F": "Female"}.get(sex, "Other"), {}, line.group) if sex else None
        elif name == "TEL" and line.value.lower().startswith("tel:"):
            line.value = line.value[4:]
            line.params.pop("VALUE", None)
        elif name == "RELATED" and "agent" in line.types():
            line = Line("AGENT", line.value, {"VALUE": ["uri"]}, line.group)
        if line is None:
            continue
        out.append(line)
        if name == "ADR" and label:
            text = label[0].replace("\\n", "\n")
            escaped = text.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;").replace("\n", "\\n")
            params = {"TYPE": list(line.param("TYPE"))} if line.param("TYPE") else {}
            out.append(Line("LABEL", escaped, params, line.group))
    return out


# --- content negotiation (RFC 6352 §10.3) ----------------------------------------------------

def accepted_version(accept: str | None) -> str | None:
    """The vCard version an Accept header asks for (`text/vcard; version=3.0`), the highest q
    first; None when it names none (the stored version is then served). Parameters may come
    in any order (`version` after `q` or `charset`, which the reference once missed)."""
    if not accept or len(accept) > 4096:
        return None
    best, best_q = None, 0.0
    for media_range in accept.split(","):
        kind, *params = [part.strip() for part in media_range.split(";")]
        if kind.lower() not in ("text/vcard", "text/x-vcard"):
            continue
        version, q = None, 1.0
        for param in params:
            key, _, value = param.partition("=")
            key, value = key.strip().lower(), value.strip().strip('"')
            if key == "version":
                version = value
            elif key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if version in VERSIONS and q > best_q:
            best, best_q = version, q
    return best
