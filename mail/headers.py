"""Header field forms of RFC 8621 §4.1.2, on stored raw headers.

A stored header list is what the Email `headers` property holds: a list of
`{"name": ..., "value": ...}` with the Raw form of each value (RFC 8621 §4.1.2.1). Everything
else (Text, Addresses, GroupedAddresses, MessageIds, Date, URLs) is computed from it, so a store
keeps only that list. This module imports nothing of ours.
"""

import base64
import binascii
import codecs
import datetime
import email.utils
import re
from email.headerregistry import HeaderRegistry

FORMS = ("Raw", "Text", "Addresses", "GroupedAddresses", "MessageIds", "Date", "URLs")


class HeaderFormError(ValueError):
    """A `header:` property the RFC forbids or cannot parse: the method's invalidArguments."""


# RFC 8621 §4.1.2: a parsed form may be asked of any header field not defined in RFC 5322 or
# RFC 2369, but of those defined there only where the form fits the field.
_ALLOWED = {
    "Text": {"subject", "comments", "keywords", "list-id"},
    "Addresses": {"from", "sender", "reply-to", "to", "cc", "bcc", "resent-from", "resent-sender",
                  "resent-reply-to", "resent-to", "resent-cc", "resent-bcc"},
    "MessageIds": {"message-id", "in-reply-to", "references", "resent-message-id"},
    "Date": {"date", "resent-date"},
    "URLs": {"list-help", "list-unsubscribe", "list-subscribe", "list-post", "list-owner",
             "list-archive"},
}
_ALLOWED["GroupedAddresses"] = _ALLOWED["Addresses"]
_DEFINED = set().union(*_ALLOWED.values()) | {"return-path", "received"}


def check_form(name: str, form: str) -> None:
    """Raise HeaderFormError unless RFC 8621 allows `form` for the field `name`."""
    if form not in FORMS:
        raise HeaderFormError(f"unknown header form as{form}")
    if form == "Raw":
        return
    lname = name.lower()
    if lname in _DEFINED and lname not in _ALLOWED[form]:
        raise HeaderFormError(f"the form as{form} is not allowed for the header field {name}")


_FIELD_NAME = re.compile(r"^[\x21-\x39\x3b-\x7e]+$")


def parse_property(prop: str) -> tuple[str, str, bool]:
    """`header:{name}[:as{Form}][:all]` -> (name, form, all); HeaderFormError when malformed."""
    pieces = prop.split(":")
    if pieces[0] != "header" or len(pieces) < 2 or len(pieces) > 4:
        raise HeaderFormError(f"not a header property: {prop}")
    name, rest = pieces[1], pieces[2:]
    if not _FIELD_NAME.match(name):
        raise HeaderFormError(f"invalid header field name in {prop}")
    form, all_ = "Raw", False
    if rest and rest[-1] == "all":
        all_ = True
        rest = rest[:-1]
    if rest:
        if len(rest) != 1 or not rest[0].startswith("as"):
            raise HeaderFormError(f"invalid header property {prop}")
        form = rest[0][2:]
    check_form(name, form)
    return name, form, all_


def header(raw_headers, name: str, form: str = "Raw", all: bool = False):  # noqa: A002 - the RFC's word
    """The value of `header:{name}:as{form}[:all]` over a stored header list.

    Without `all`, the last instance's value (RFC 8621 §4.1.3), or None when the field is absent;
    with `all`, a list of every instance's value in order (empty when absent).
    """
    check_form(name, form)
    lname = name.lower()
    convert = _CONVERTERS[form]
    values = [convert(h["value"]) for h in raw_headers if h["name"].lower() == lname]
    if all:
        return values
    return values[-1] if values else None


# -- charsets ---------------------------------------------------------------------------------

# Labels seen in mail that Python's codec registry does not know, or knows as a narrower set.
_CHARSET_ALIASES = {
    "us-ascii": "utf-8",  # 8-bit UTF-8 under an ASCII label is common; ASCII is a subset anyway
    "ascii": "utf-8",
    # As browsers do (WHATWG Encoding): mail labelled Latin-1 is written by Windows in cp1252,
    # whose quotes and dashes sit where Latin-1 has unused C1 controls.
    "iso-8859-1": "cp1252", "iso8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252",
    "l1": "cp1252",
    "unicode-1-1-utf-7": "utf-7",
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949", "ks_c_5601": "cp949", "euc-kr": "cp949",
    "iso-8859-8-i": "iso-8859-8",
    "windows-874": "cp874",
    "x-sjis": "shift_jis", "shift-jis": "shift_jis", "ms_kanji": "cp932", "windows-31j": "cp932",
    "x-mac-roman": "mac_roman", "macintosh": "mac_roman",
    "iso-2022-jp-2": "iso2022_jp_2",
    "tis-620": "cp874",
}


def lookup_charset(label):
    """The Python codec name for a MIME charset label, or None when unknown."""
    if not label:
        return None
    label = label.strip().strip('"').lower()
    # RFC 2231 §5: a language may follow the charset after "*".
    label = label.split("*", 1)[0]
    label = _CHARSET_ALIASES.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def decode_bytes(data: bytes, charset) -> tuple[str, bool]:
    """Bytes in `charset` -> (text, encoding problem?); unknown charsets read as UTF-8."""
    codec = lookup_charset(charset)
    problem = codec is None
    codec = codec or "utf-8"
    try:
        text = data.decode(codec)
    except UnicodeDecodeError:
        text, problem = data.decode(codec, "replace"), True
    except Exception:  # noqa: BLE001 - a few codecs (utf-7, iso-2022) raise other errors on garbage
        text, problem = data.decode("utf-8", "replace"), True
    return text.replace("\x00", ""), problem


def raw_to_str(data: bytes) -> str:
    """Raw header octets as RFC 8621 §4.1.2.1 wants them: invalid UTF-8 as U+FFFD, no NUL."""
    return data.decode("utf-8", "replace").replace("\x00", "")


# -- RFC 2047 ---------------------------------------------------------------------------------

_ENCODED_WORD = re.compile(rb"=\?([^?\s]+)\?([bBqQ])\?([^?]*?)\?=")
_WSP_ONLY = re.compile(rb"^[ \t\r\n]*$")
_QP_HEX = re.compile(rb"=([0-9A-Fa-f]{2})")


def _decode_word(charset: bytes, enc: bytes, text: bytes) -> str | None:
    if enc in (b"b", b"B"):
        text = re.sub(rb"[^A-Za-z0-9+/]", b"", text)
        text += b"=" * (-len(text) % 4)
        try:
            data = base64.b64decode(text)
        except (binascii.Error, ValueError):
            return None
    else:
        data = _QP_HEX.sub(lambda m: bytes([int(m.group(1), 16)]), text.replace(b"_", b" "))
    return decode_bytes(data, charset.decode("ascii", "replace"))[0]


def decode_rfc2047(value: str) -> str:
    """Decode RFC 2047 encoded-words; the blanks between two adjacent words go (§6.2)."""
    data = value.encode("utf-8", "surrogateescape")
    if b"=?" not in data:
        return value
    out, pos, last_was_word = [], 0, False
    for m in _ENCODED_WORD.finditer(data):
        between = data[pos:m.start()]
        decoded = _decode_word(m.group(1), m.group(2), m.group(3))
        if decoded is None:
            out.append(between.decode("utf-8", "replace") + m.group(0).decode("utf-8", "replace"))
            last_was_word = False
        else:
            if not (last_was_word and _WSP_ONLY.match(between)):
                out.append(between.decode("utf-8", "replace"))
            out.append(decoded)
            last_was_word = True
        pos = m.end()
    out.append(data[pos:].decode("utf-8", "replace"))
    return "".join(out)


# -- the forms --------------------------------------------------------------------------------

_FOLD = re.compile(r"\r?\n(?=[ \t])|\r")


def unfold(value: str) -> str:
    return _FOLD.sub("", value)


def as_text(raw: str) -> str:
    """RFC 8621 §4.1.2.2: unfolded, encoded-words decoded, outer white space trimmed."""
    return decode_rfc2047(unfold(raw)).strip()


_REGISTRY = HeaderRegistry()


_CHUNK = 32
_LONG_CHUNK = 8192


def _chunks(value: str):
    """The list cut into runs of _CHUNK addresses at top-level commas, and after each group.

    The stdlib parser's time grows with the square of a list's length: a To of thousands of
    addresses would take seconds. Commas inside quotes, comments, angle brackets or a group
    do not cut.
    """
    cuts, quoted, escaped, comment, angle, group, count = [], False, False, 0, False, False, 0
    for i, c in enumerate(value):
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif quoted:
            quoted = c != '"'
        elif c == '"':
            quoted = True
        elif c == "(":
            comment += 1
        elif c == ")" and comment:
            comment -= 1
        elif comment:
            continue
        elif c == "<":
            angle = True
        elif c == ">":
            angle = False
        elif c == ":" and not angle:
            group = True
        elif c == ";" and group:
            # A group ends its chunk: adjacent groups without a comma between them (common,
            # though RFC 5322 wants one) would otherwise be read as one broken list.
            group = False
            cuts.append(i + 1)
        elif c == "," and not angle and not group:
            count += 1
            if count % _CHUNK == 0:
                cuts.append(i)
    start = 0
    for cut in cuts:
        chunk = value[start:cut].strip(" \t,")
        if chunk:
            yield chunk
        start = cut
    chunk = value[start:].strip(" \t,")
    if chunk:
        yield chunk


def as_grouped_addresses(raw: str):
    """RFC 8621 §4.1.2.4: [{name, addresses: [{name, email}]}], name None outside a group."""
    value = unfold(raw).strip()
    if not value:
        return []
    groups = []
    for chunk in _chunks(value):
        if len(chunk) > _LONG_CHUNK:
            # A run this long without commas is no address list a person wrote: the fast,
            # looser parser keeps the import of a hostile header cheap.
            groups.append((None, list(email.utils.getaddresses([chunk]))))
            continue
        try:
            # The stdlib's RFC 5322 parser (with RFC 2047 in display names) is best-effort on
            # broken lists; it reports defects rather than failing.
            parsed = _REGISTRY("to", chunk)
            groups += [(g.display_name, [(a.display_name, a.addr_spec) for a in g.addresses])
                       for g in parsed.groups]
        except Exception:  # noqa: BLE001 - the parser has raised on odd input in past releases
            groups.append((None, list(email.utils.getaddresses([chunk]))))
    out, ungrouped = [], None
    for gname, addrs in groups:
        addresses = [{"name": decode_rfc2047(n).strip() or None, "email": e.strip().strip("<>")}
                     for n, e in addrs]
        if gname is None:
            # Consecutive addresses outside any group form one null-named group.
            if ungrouped is None:
                ungrouped = {"name": None, "addresses": []}
                out.append(ungrouped)
            ungrouped["addresses"].extend(addresses)
        else:
            ungrouped = None
            out.append({"name": decode_rfc2047(gname).strip() or None, "addresses": addresses})
    return out


def as_addresses(raw: str):
    """RFC 8621 §4.1.2.3: every address, groups flattened."""
    return [a for g in as_grouped_addresses(raw) for a in g["addresses"]]


_MSG_ID = re.compile(r"<([^<>\s]*)>")


def as_message_ids(raw: str):
    """RFC 8621 §4.1.2.5: the ids without angle brackets, or None when there is none."""
    ids = [i for i in _MSG_ID.findall(unfold(raw)) if i]
    if ids:
        return ids
    # A bare id without brackets (seen from broken agents) is still an id when it has an "@".
    bare = unfold(raw).strip()
    if bare and "@" in bare and not re.search(r"[\s<>,]", bare):
        return [bare]
    return None


def format_date(dt: datetime.datetime) -> str:
    """An RFC 3339 date-time keeping the original offset (RFC 8620 §1.4 Date)."""
    offset = dt.utcoffset()
    base = dt.replace(tzinfo=None, microsecond=0).isoformat()
    if not offset:
        return base + "Z"
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{base}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def parse_date(raw: str):
    try:
        dt = email.utils.parsedate_to_datetime(unfold(raw).strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if dt is None:
        return None
    if dt.tzinfo is None:  # "-0000": the time is UTC, the zone unknown (RFC 5322 §3.3)
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt


def as_date(raw: str):
    """RFC 8621 §4.1.2.6: the date as an RFC 3339 Date, or None when it does not parse."""
    dt = parse_date(raw)
    return format_date(dt) if dt else None


_URL = re.compile(r"<([^<>]*)>")


def as_urls(raw: str):
    """RFC 8621 §4.1.2.7: the URLs between angle brackets (RFC 2369), or None."""
    urls = [re.sub(r"\s+", "", u) for u in _URL.findall(unfold(raw))]
    urls = [u for u in urls if u]
    return urls or None


_CONVERTERS = {
    "Raw": lambda raw: raw,
    "Text": as_text,
    "Addresses": as_addresses,
    "GroupedAddresses": as_grouped_addresses,
    "MessageIds": as_message_ids,
    "Date": as_date,
    "URLs": as_urls,
}
