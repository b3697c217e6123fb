"""The message parser: raw RFC 5322 / MIME octets -> everything an Email store keeps.

`parse()` runs once, when a message is imported; its result (`ParsedMessage.as_dict()`) is
JSON-able metadata stored beside the raw blob. Every body part records where its content lies in
the raw message (`bodyStart`, `bodyEnd`: octet offsets) and its transfer encoding, so a body
value or a download later reads a slice of the blob through `body_value()` / `decoded_content()`
rather than parsing the message again.

The MIME tree is split here, on octets, because Python's `email` package does not say where a
part lies in the input; the parameters of Content-Type and Content-Disposition (RFC 2045,
RFC 2231 continuations and charsets) go through `email.message.Message`, which is tolerant of
broken input. Nothing here raises on bad input: broken MIME parses as far as it can.
This module imports nothing of ours.
"""

import binascii
import dataclasses
import datetime
import re
from email.message import Message

from . import headers as h
from .htmltext import html_to_text

PREVIEW_LENGTH = 256
# HTML beyond this is not converted to text (inscriptis takes about a second per megabyte), and
# the search text of the body parts stops here: a hostile message must not cost minutes or
# store its whole size twice. Both are far above any message a person writes.
MAX_HTML_TO_TEXT = 2 * 1024 * 1024
MAX_SEARCH_BODY = 4 * 1024 * 1024
MAX_DEPTH = 32  # nesting beyond this is read as one opaque part (a MIME bomb is not a tree)
MAX_PARTS = 5000

# The EmailBodyPart properties of RFC 8621 §4.1.4 that the parser fills (blobId is the store's).
PART_PROPERTIES = ("partId", "size", "headers", "name", "type", "charset", "disposition", "cid",
                   "language", "location", "subParts")
DEFAULT_BODY_PROPERTIES = ("partId", "blobId", "size", "name", "type", "charset", "disposition",
                           "cid", "language", "location")

_LINE_END = re.compile(rb"\r\n|\n")
_WSP = re.compile(r"\s+")


@dataclasses.dataclass
class ParsedMessage:
    """What `parse()` computes once. Every field is JSON-able; `as_dict()` is what is stored."""

    size: int
    headers: list  # [{"name", "value"}] of the top-level header, Raw form, in order
    messageId: list | None
    inReplyTo: list | None
    references: list | None
    sender: list | None
    from_: list | None
    to: list | None
    cc: list | None
    bcc: list | None
    replyTo: list | None
    subject: str | None
    sentAt: str | None  # RFC 3339 Date with the sender's offset
    sentAtUtc: str | None  # the same instant in UTC ("…Z"), for sorting and before/after filters
    hasAttachment: bool
    preview: str
    bodyStructure: dict
    textBody: list  # partIds
    htmlBody: list
    attachments: list
    # Threading (RFC 5256 §2.1 base subject, case-folded) and the ids a thread is joined by.
    threadSubject: str
    threadIds: list
    # Sort keys of Email/query (RFC 8621 §4.4.2) and the text its filters search.
    sortFrom: str
    sortTo: str
    sortSubject: str
    search: dict

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["from"] = d.pop("from_")
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ParsedMessage":
        d = dict(d)
        d["from_"] = d.pop("from")
        return cls(**d)

    def parts(self) -> dict:
        """partId -> leaf part."""
        return parts_by_id(self.bodyStructure)


def parts_by_id(structure: dict) -> dict:
    out, stack = {}, [structure]
    while stack:
        part = stack.pop()
        if part.get("partId") is not None:
            out[part["partId"]] = part
        stack.extend(part.get("subParts") or ())
    return out


def public_part(part: dict, properties=DEFAULT_BODY_PROPERTIES, blob_id=None) -> dict:
    """An EmailBodyPart as Email/get answers it: only the asked properties, recursively.

    `blob_id(part)` gives a part's blobId (the store's business); `header:` properties are
    computed from the part's stored headers.
    """
    out = {}
    for prop in properties:
        if prop == "blobId":
            out[prop] = blob_id(part) if blob_id and part.get("partId") is not None else None
        elif prop.startswith("header:"):
            name, form, all_ = h.parse_property(prop)
            out[prop] = h.header(part["headers"], name, form, all_)
        elif prop == "subParts":
            if part.get("subParts") is not None:
                out[prop] = [public_part(p, properties, blob_id) for p in part["subParts"]]
        else:
            out[prop] = part.get(prop)
    if "subParts" in properties and part.get("subParts") is None:
        out.pop("subParts", None)
    return out


# -- splitting --------------------------------------------------------------------------------

def _split_header(raw: bytes, start: int, end: int):
    """[(name, raw value)] of the header block at `start`, and where the body starts.

    The block ends at the first empty line, or (as Python's feedparser does) at the first line
    that is neither a field nor a continuation: that line starts the body.
    """
    fields = []
    pos = start
    # An mbox "From " separator before the header is not a field.
    if raw.startswith(b"From ", start):
        m = _LINE_END.search(raw, pos, end)
        pos = m.end() if m else end
    while pos < end:
        m = _LINE_END.search(raw, pos, end)
        line_end, next_pos = (m.start(), m.end()) if m else (end, end)
        line = raw[pos:line_end]
        if not line:
            return fields, next_pos
        if line[:1] in (b" ", b"\t"):
            if fields:
                name, vstart, _ = fields[-1]
                fields[-1] = (name, vstart, line_end)
                pos = next_pos
                continue
            return fields, pos  # a continuation of nothing: this is body
        colon = line.find(b":")
        if colon <= 0 or not re.match(rb"^[\x21-\x39\x3b-\x7e]+[ \t]*$", line[:colon]):
            return fields, pos
        fields.append((line[:colon].rstrip(b" \t"), pos + colon + 1, line_end))
        pos = next_pos
    return fields, end


def _decode_name(name: bytes) -> str:
    return name.decode("ascii", "replace")


class _Builder:
    def __init__(self, raw: bytes):
        self.raw = raw
        self.count = 0

    def part(self, start: int, end: int, depth: int, default_type: str = "text/plain") -> dict:
        raw = self.raw
        fields, body_start = _split_header(raw, start, end)
        headers = [{"name": _decode_name(n), "value": h.raw_to_str(raw[a:b])} for n, a, b in fields]
        self.count += 1
        by_name = {}
        for hd in headers:  # the last instance wins, as for header:…
            by_name[hd["name"].lower()] = hd["value"]

        msg = Message()
        ctype_raw = by_name.get("content-type")
        if ctype_raw is not None and h.unfold(ctype_raw).strip():
            msg["Content-Type"] = h.unfold(ctype_raw)
            # compat32 answers text/plain for a value that is not type/subtype (RFC 2045 §5.2).
            ctype = msg.get_content_type()
        else:
            ctype = default_type
        disp_raw = by_name.get("content-disposition")
        if disp_raw is not None:
            msg["Content-Disposition"] = h.unfold(disp_raw)
        try:
            # Content-Disposition's filename, else Content-Type's name; RFC 2231 collapsed.
            name = msg.get_filename()
        except Exception:  # noqa: BLE001 - email's RFC 2231 decoding raises on odd input
            name = None
        if name is not None:
            name = h.decode_rfc2047(str(name)).strip() or None
        disposition = None
        if disp_raw is not None:
            disposition = h.unfold(disp_raw).split(";", 1)[0].strip().lower() or None
        charset = None
        if ctype.startswith("text/"):
            charset = msg.get_param("charset")
            if isinstance(charset, tuple):
                charset = charset[2]
            charset = (str(charset).strip().lower() or None) if charset else None
            charset = charset or "us-ascii"
        cid = by_name.get("content-id")
        if cid is not None:
            cid = h.unfold(cid).strip().strip("<>").strip() or None
        language = by_name.get("content-language")
        if language is not None:
            language = [x.strip() for x in h.unfold(language).split(",") if x.strip()] or None
        location = by_name.get("content-location")
        if location is not None:
            location = h.as_text(location) or None
        encoding = (h.unfold(by_name.get("content-transfer-encoding") or "").strip().lower()
                    or "7bit")

        part = {
            "partId": None, "headers": headers, "name": name, "type": ctype,
            "charset": charset, "disposition": disposition, "cid": cid, "language": language,
            "location": location,
        }
        if ctype.startswith("multipart/") and depth < MAX_DEPTH and self.count < MAX_PARTS:
            boundary = msg.get_param("boundary")
            if isinstance(boundary, tuple):
                boundary = boundary[2]
            spans = self._children(body_start, end, boundary) if boundary else None
            if spans is not None:
                child_default = "message/rfc822" if ctype == "multipart/digest" else "text/plain"
                part["subParts"] = [self.part(a, b, depth + 1, child_default) for a, b in spans]
                # A multipart has no blob of its own; its size is that of its raw body.
                part["size"] = max(0, end - body_start)
                return part
            # No usable boundary, or too deep: the content is read as one text part (as
            # Python's email reads it), so its text is not lost.
            part["type"], part["charset"] = "text/plain", "us-ascii"
        part["encoding"] = encoding
        part["bodyStart"], part["bodyEnd"] = body_start, max(body_start, end)
        part["size"] = len(transfer_decode(raw[body_start:end], encoding)[0])
        return part

    def _children(self, start: int, end: int, boundary: str):
        """The (start, end) spans of a multipart body's parts, or None without any delimiter."""
        try:
            b = str(boundary).encode("utf-8", "replace")
        except Exception:  # noqa: BLE001 - a boundary param can be anything
            return None
        if not b:
            return None
        raw, marker = self.raw, b"--" + b
        spans, open_at, pos = [], None, start
        while True:
            at = raw.find(marker, pos, end)
            if at < 0:
                break
            pos = at + len(marker)
            if at > start and raw[at - 1:at] != b"\n":
                continue  # a delimiter starts a line (RFC 2046 §5.1.1)
            nl = _LINE_END.search(raw, pos, end)
            line_end, next_line = (nl.start(), nl.end()) if nl else (end, end)
            rest = raw[pos:line_end]
            closing = rest.startswith(b"--")
            if rest[2 if closing else 0:].strip(b" \t"):
                continue  # "--boundary" followed by more than blanks is another boundary
            if open_at is not None:
                # The line break before a delimiter belongs to the delimiter.
                stop = at
                if stop > open_at and raw[stop - 1:stop] == b"\n":
                    stop -= 2 if raw[stop - 2:stop] == b"\r\n" else 1
                spans.append((open_at, max(open_at, stop)))
            if closing:
                open_at = None
                break
            open_at = pos = next_line
            if len(spans) >= MAX_PARTS:
                return spans
        if open_at is not None:  # no closing delimiter: the last part runs to the end
            spans.append((open_at, end))
        return spans or None


def _number(part: dict, counter: list) -> None:
    if part.get("subParts") is not None:
        for p in part["subParts"]:
            _number(p, counter)
    else:
        counter[0] += 1
        part["partId"] = str(counter[0])


# -- RFC 8621 §4.1.4: textBody, htmlBody, attachments ----------------------------------------

def _inline_media(t: str) -> bool:
    return t.startswith(("image/", "audio/", "video/"))


def _structure(parts, multipart_type, in_alternative, html_body, text_body, attachments):
    """The RFC's parseStructure, line by line (None stands for its null lists)."""
    text_length = len(text_body) if text_body is not None else -1
    html_length = len(html_body) if html_body is not None else -1
    for i, part in enumerate(parts):
        ptype = part["type"]
        is_inline = (part["disposition"] != "attachment"
                     and (ptype in ("text/plain", "text/html") or _inline_media(ptype))
                     and (i == 0 or (multipart_type != "related"
                                     and (_inline_media(ptype) or not part["name"]))))
        if part.get("subParts") is not None:
            sub_type = ptype.split("/", 1)[1]
            _structure(part["subParts"], sub_type, in_alternative or sub_type == "alternative",
                       html_body, text_body, attachments)
        elif is_inline:
            if multipart_type == "alternative":
                if ptype == "text/plain":
                    text_body.append(part)
                elif ptype == "text/html":
                    html_body.append(part)
                else:
                    attachments.append(part)
                continue
            if in_alternative:
                if ptype == "text/plain":
                    html_body = None
                if ptype == "text/html":
                    text_body = None
            if text_body is not None:
                text_body.append(part)
            if html_body is not None:
                html_body.append(part)
            if (text_body is None or html_body is None) and _inline_media(ptype):
                attachments.append(part)
        else:
            attachments.append(part)
    if multipart_type == "alternative" and text_body is not None and html_body is not None:
        if text_length == len(text_body) and html_length != len(html_body):
            text_body.extend(html_body[html_length:])
        if html_length == len(html_body) and text_length != len(text_body):
            html_body.extend(text_body[text_length:])


# -- content ----------------------------------------------------------------------------------

_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")


def transfer_decode(data: bytes, encoding: str) -> tuple[bytes, bool]:
    """Content-Transfer-Encoding decoding -> (octets, problem?); never raises."""
    if encoding == "base64":
        head, _, tail = data.translate(None, b" \t\r\n").partition(b"=")
        problem = bool(tail.strip(b"="))
        if _B64_JUNK.search(head):
            head, problem = _B64_JUNK.sub(b"", head), True
        if len(head) % 4 == 1:  # one stray character cannot encode anything
            head, problem = head[:-1], True
        try:
            return binascii.a2b_base64(head + b"=" * (-len(head) % 4)), problem
        except (binascii.Error, ValueError):
            return b"", True
    if encoding == "quoted-printable":
        try:
            return binascii.a2b_qp(data), False
        except (binascii.Error, ValueError):
            return data, True
    if encoding in ("7bit", "8bit", "binary", ""):
        return data, False
    return data, True  # an unknown encoding: the octets as they are (RFC 2045 §6.4)


def decoded_content(raw: bytes, part: dict) -> bytes:
    """A leaf part's content after transfer decoding: what a download of its blob returns."""
    return transfer_decode(raw[part["bodyStart"]:part["bodyEnd"]], part["encoding"])[0]


def body_value(raw: bytes, part: dict, max_bytes: int = 0) -> dict:
    """An EmailBodyValue (RFC 8621 §4.1.4): value, isEncodingProblem, isTruncated.

    `max_bytes` > 0 truncates the value to at most that many UTF-8 octets, on a character
    boundary (RFC 8621 §4.2 maxBodyValueBytes).
    """
    data, problem = transfer_decode(raw[part["bodyStart"]:part["bodyEnd"]], part["encoding"])
    text, charset_problem = h.decode_bytes(data, part.get("charset") or "us-ascii")
    truncated = False
    if max_bytes and max_bytes > 0:
        encoded = text.encode("utf-8")
        if len(encoded) > max_bytes:
            # Dropping the cut character's leading octets leaves a whole-character prefix.
            text = encoded[:max_bytes].decode("utf-8", "ignore")
            truncated = True
    return {"value": text, "isEncodingProblem": problem or charset_problem,
            "isTruncated": truncated}


def part_text(raw: bytes, part: dict) -> str:
    """A text part's words as plain text: HTML is converted, other text/* read as is."""
    value = body_value(raw, part)["value"]
    if part["type"] == "text/html":
        return html_to_text(value[:MAX_HTML_TO_TEXT])
    return value


# -- RFC 5256 §2.1 base subject ---------------------------------------------------------------

_BLOB = r"\[[^\[\]]*\][ \t]*"
# subj-leader is *subj-blob subj-refwd; its blobs are skipped one at a time below, which is the
# same (a blob before a "Re:" always leaves something) and keeps each match short.
_LEADER = re.compile(r"[ \t]*(?:re|fwd?)[ \t]*(?:" + _BLOB + r")?:[ \t]*", re.I)
_LEADING_BLOB = re.compile(r"[ \t]*" + _BLOB)
_TRAILERS = re.compile(r"(?:[ \t]*\(fwd\)|[ \t])+$", re.I)
_MAX_FWD_WRAPS = 64


def base_subject(subject: str | None) -> str:
    """The base subject of RFC 5256 §2.1 (not case-folded).

    Linear in the subject's length (a hostile "Re: Re: …" of a megabyte must not cost seconds):
    leaders and blobs are skipped by position instead of by slicing the string each time.
    """
    s = _WSP.sub(" ", subject or "")
    for _ in range(_MAX_FWD_WRAPS):
        s = _TRAILERS.sub("", s)  # (2) "(fwd)" and blanks at the end
        pos = 0
        while True:  # (3)-(4) leaders, and leading blobs as long as something remains
            m = _LEADER.match(s, pos)
            if m:
                pos = m.end()
                continue
            m = _LEADING_BLOB.match(s, pos)
            if m and m.end() < len(s):  # s ends with no blank: something remains
                pos = m.end()
                continue
            break
        s = s[pos:].lstrip(" \t")  # a lone blank is a subj-leader too
        if s[:5].lower() == "[fwd:" and s.endswith("]"):  # (5) and again from (2)
            s = s[5:-1]
            continue
        break
    return s.strip()


# -- parse ------------------------------------------------------------------------------------

def _first_name_or_email(addresses) -> str:
    if not addresses:
        return ""
    a = addresses[0]
    return (a["name"] or a["email"] or "").casefold()


def _addresses_text(addresses) -> str:
    return " ".join(f"{a['name'] or ''} <{a['email']}>".strip() for a in addresses or ())


def parse(raw: bytes) -> ParsedMessage:
    """Parse a message once, at import. Never raises on bad input."""
    raw = bytes(raw)
    builder = _Builder(raw)
    root = builder.part(0, len(raw), 0)
    _number(root, [0])
    text_body, html_body, attachments = [], [], []
    _structure([root], "mixed", False, html_body, text_body, attachments)
    top = root["headers"]

    def hd(name, form):
        return h.header(top, name, form)

    subject = hd("Subject", "Text")
    date_raw = hd("Date", "Raw")
    sent = h.parse_date(date_raw) if date_raw is not None else None
    message_id = hd("Message-ID", "MessageIds")
    in_reply_to = hd("In-Reply-To", "MessageIds")
    references = hd("References", "MessageIds")
    from_ = hd("From", "Addresses")
    to = hd("To", "Addresses")

    # Each body part's text once: the preview and the search text share it.
    texts = {p["partId"]: part_text(raw, p) for p in text_body + html_body
             if p["type"].startswith("text/")}
    preview_src = next((p["partId"] for p in text_body + html_body if p["partId"] in texts), None)
    preview = _WSP.sub(" ", texts[preview_src][:PREVIEW_LENGTH * 8]).strip()[:PREVIEW_LENGTH] \
        if preview_src else ""
    body_text = "\n".join(texts.values())[:MAX_SEARCH_BODY]
    # An inline image a related HTML body refers to by its cid is part of the body, not an
    # attachment the user sees (the reference and common clients count it so too).
    has_attachment = any(not (p["disposition"] != "attachment" and p["cid"]
                              and _inline_media(p["type"])) for p in attachments)
    cc, bcc = hd("Cc", "Addresses"), hd("Bcc", "Addresses")
    # Unique, first occurrence first (a dict keeps insertion order).
    thread_ids = list(dict.fromkeys(i for ids in (message_id, in_reply_to, references)
                                    for i in ids or ()))
    base = base_subject(subject)
    return ParsedMessage(
        size=len(raw),
        headers=top,
        messageId=message_id,
        inReplyTo=in_reply_to,
        references=references,
        sender=hd("Sender", "Addresses"),
        from_=from_,
        to=to,
        cc=cc,
        bcc=bcc,
        replyTo=hd("Reply-To", "Addresses"),
        subject=subject,
        sentAt=h.format_date(sent) if sent else None,
        sentAtUtc=h.format_date(sent.astimezone(datetime.timezone.utc)) if sent else None,
        hasAttachment=has_attachment,
        preview=preview,
        bodyStructure=root,
        textBody=[p["partId"] for p in text_body],
        htmlBody=[p["partId"] for p in html_body],
        attachments=[p["partId"] for p in attachments],
        threadSubject=base.casefold(),
        threadIds=thread_ids,
        sortFrom=_first_name_or_email(from_),
        sortTo=_first_name_or_email(to),
        sortSubject=base.casefold(),
        search={
            "from": _addresses_text(from_),
            "to": _addresses_text(to),
            "cc": _addresses_text(cc),
            "bcc": _addresses_text(bcc),
            "subject": subject or "",
            "body": body_text,
            "attachmentNames": " ".join(p["name"] for p in attachments if p["name"]),
        },
    )
