"""What a script sees of a message and its envelope.

The caller (delivery) builds a `Message` once per message, with `Message.from_bytes()`, or by
hand from what its store already parsed; the same `Message` serves every recipient's script."""
from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from html.parser import HTMLParser


@dataclass
class Part:
    """One leaf of the MIME tree: its media type ("text/plain") and its decoded text."""
    content_type: str
    text: str


@dataclass
class Message:
    """`headers` are (name, value) pairs in message order, values decoded (RFC 2047) and unfolded.
    `raw_body` is the undecoded body (body :raw); `parts` the leaves (body :content / :text)."""
    headers: list = field(default_factory=list)
    raw_body: str = ""
    parts: list = field(default_factory=list)
    size: int = 0

    def header_values(self, name: str) -> list:
        name = name.lower()
        return [v for n, v in self.headers if n.lower() == name]

    @classmethod
    def from_bytes(cls, raw: bytes) -> "Message":
        """Parse a message as far as it parses: broken MIME still gives headers and a body."""
        parsed = email.message_from_bytes(raw, policy=email.policy.compat32)
        headers = [(name, _decode(value)) for name, value in parsed.items()]
        head_end = raw.find(b"\r\n\r\n")
        sep = 4
        lf_end = raw.find(b"\n\n")
        if head_end < 0 or (0 <= lf_end < head_end):
            head_end, sep = lf_end, 2
        raw_body = raw[head_end + sep:].decode("utf-8", "replace") if head_end >= 0 else ""
        parts = []
        for leaf in parsed.walk():
            if leaf.is_multipart():
                continue
            payload = leaf.get_payload(decode=True) or b""
            charset = leaf.get_content_charset() or "us-ascii"
            try:
                text = payload.decode(charset, "replace")
            except LookupError:
                text = payload.decode("utf-8", "replace")
            parts.append(Part(leaf.get_content_type(), text))
        return cls(headers=headers, raw_body=raw_body, parts=parts, size=len(raw))


def _decode(value) -> str:
    try:
        text = str(make_header(decode_header(str(value))))
    except (ValueError, LookupError, UnicodeError, AssertionError):
        text = str(value)
    # RFC 5228 §5.7: header values are compared unfolded.
    return text.replace("\r\n", "").replace("\n", "")


class _TextOf(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.chunks = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self.skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self.skip:
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip:
            self.chunks.append(data)


def html_text(html: str) -> str:
    """The text of an HTML part, for body :text (RFC 5173 §5.3 leaves the conversion open)."""
    parser = _TextOf()
    parser.feed(html)
    parser.close()
    return " ".join(" ".join(parser.chunks).split())


@dataclass
class Envelope:
    """The SMTP envelope of this delivery: `mail_from` ("" for a bounce), the one recipient
    whose script runs, and that user's other addresses (RFC 5230 §4.5: never answer oneself)."""
    mail_from: str = ""
    rcpt_to: str = ""
    user_addresses: tuple = ()
