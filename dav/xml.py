"""XML in and out of the /dav tree.

In: the body is first read by defusedxml (expat, no DTD, no entity: a billion-laughs or an
external entity is refused before anything expands), then parsed by lxml with a parser that
loads nothing and resolves nothing, for the tree the handlers read. Out: lxml, with the fixed
prefixes of the reference (D: DAV, A: CalDAV, B: CardDAV, C: calendarserver.org) declared on
the root element only where they are used.
"""
from __future__ import annotations

import functools
import re
from xml.sax.saxutils import escape

import defusedxml
import defusedxml.ElementTree as SafeET
from lxml import etree

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
CARDDAV = "urn:ietf:params:xml:ns:carddav"
CS = "http://calendarserver.org/ns/"
PREFIXES = {DAV: "D", CALDAV: "A", CARDDAV: "B", CS: "C"}
_TOP_NSMAP = {prefix: ns for ns, prefix in PREFIXES.items()}

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                          huge_tree=False, remove_blank_text=False)
# Elements deeper than this are refused: nothing a client sends nests so far.
MAX_DEPTH = 64


class XmlError(Exception):
    """The body is not XML we accept."""


def d(name: str) -> str:
    return f"{{{DAV}}}{name}"


def parse(body: bytes) -> etree._Element:
    if not body.strip():
        raise XmlError("The body is empty.")
    try:
        SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (defusedxml.DefusedXmlException, SafeET.ParseError, ValueError) as exc:
        raise XmlError(str(exc)) from None
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise XmlError(str(exc)) from None
    # libxml2 stops at 256 levels; nothing a client sends nests beyond MAX_DEPTH.
    for el in root.iter():
        if len(el) == 0 and isinstance(el.tag, str):
            depth = sum(1 for _ in el.iterancestors())
            if depth > MAX_DEPTH:
                raise XmlError("The document nests too deeply.")
    return root


def children(el, tag: str | None = None):
    return [c for c in el if isinstance(c.tag, str) and (tag is None or c.tag == tag)]


def child(el, tag: str):
    for c in el:
        if c.tag == tag:
            return c
    return None


# --- building ---------------------------------------------------------------------------------
def element(tag: str, text: str | None = None, *kids) -> etree._Element:
    el = etree.Element(tag, nsmap=_nsmap_for(tag))
    if text is not None:
        el.text = text
    for k in kids:
        el.append(k)
    return el


def sub(parent, tag: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, tag, nsmap=_nsmap_for(tag))
    if text is not None:
        el.text = text
    return el


@functools.lru_cache(maxsize=1024)  # a listing asks the same few tags once per entry
def _nsmap_for(tag: str) -> dict:
    if tag.startswith("{"):
        ns = tag[1:].split("}", 1)[0]
        prefix = PREFIXES.get(ns)
        if prefix:
            return {prefix: ns}
    return {}


def href(value: str) -> etree._Element:
    return element(d("href"), value)


def serialize(root) -> bytes:
    """The document with every known namespace in use declared once, on the root: all are
    declared there, and libxml2's cleanup (in C, where a walk in Python cost a third of a large
    listing) drops those no element uses, and the repeated declarations below."""
    clean = etree.Element(root.tag, nsmap=_TOP_NSMAP, attrib=dict(root.attrib))
    clean.text = root.text
    for k in root:
        clean.append(k)
    etree.cleanup_namespaces(clean, top_nsmap=_TOP_NSMAP)
    return etree.tostring(clean, xml_declaration=True, encoding="UTF-8")


def tostring(el) -> str:
    return etree.tostring(el, encoding="unicode")


def fromstring(text: str) -> etree._Element:
    """A fragment this server stored itself (a dead property, a lock's owner)."""
    return etree.fromstring(text.encode(), _PARSER)


def clark(ns: str | None, name: str) -> str:
    return f"{{{ns}}}{name}" if ns else name


# --- a multistatus as text ---------------------------------------------------------------------
# What XML 1.0 cannot carry (lxml refuses it): a value with any of these is not written as text.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class Multistatus:
    """A multistatus body put together as text: a listing of thousands of members costs a
    tree of six elements per member in lxml, each made in Python, where the response of a
    member with text properties is one formatted string (`response_text`). Responses that are
    not (an error, a property with structure) are appended as lxml elements and serialized on
    their own, declaring the prefixes they use."""

    def __init__(self):
        self.parts: list[str] = []

    def append(self, item) -> None:
        self.parts.append(item if isinstance(item, str) else etree.tostring(item, encoding="unicode"))

    def tobytes(self) -> bytes:
        return (_MULTISTATUS_OPEN + "".join(self.parts) + "</D:multistatus>").encode()


_MULTISTATUS_OPEN = ("<?xml version='1.0' encoding='UTF-8'?>\n<D:multistatus "
                     + " ".join(f'xmlns:{prefix}="{ns}"' for ns, prefix in PREFIXES.items()) + ">")


@functools.lru_cache(maxsize=1024)
def qname(tag: str) -> str | None:
    """`D:getetag` for `{DAV:}getetag`; None outside the four namespaces of PREFIXES."""
    if tag.startswith("{"):
        ns, local = tag[1:].split("}", 1)
        prefix = PREFIXES.get(ns)
        if prefix:
            return f"{prefix}:{local}"
    return None


def text_element(tag: str, text: str | None = None) -> str | None:
    """The element `tag` with `text` (empty without), as text; None when it cannot be written
    so (a namespace without a prefix here, characters XML cannot carry)."""
    name = qname(tag)
    if name is None:
        return None
    if text is None:
        return f"<{name}/>"
    if text.isascii() and text.isprintable():  # an etag, an href, a date: the common case, in C
        if "&" in text or "<" in text or ">" in text:
            text = escape(text)
        return f"<{name}>{text}</{name}>"
    if _NOT_XML.search(text):
        return None
    # A carriage return is written as a reference, as lxml does: a parser turns a literal CR LF
    # into LF, and iCalendar and vCard lines end with CR LF.
    return f"<{name}>{escape(text, _CR)}</{name}>"


_CR = {"\r": "&#13;"}
_FOUND_TAIL = "</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>"
_MISSING_TAIL = "</D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>"


def response_text(href_: str, found: list[str], missing: list[str], minimal: bool = False) -> str | None:
    """A multistatus response: `found` property elements (text) in a 200 propstat, the
    `missing` tags in a 404 one (none with `minimal`, RFC 7240's return=minimal); None when
    something cannot be written as text."""
    parts = ["<D:response>", text_element(d("href"), href_)]
    if found or minimal or not missing:
        parts += ["<D:propstat><D:prop>", *found, _FOUND_TAIL]
    if missing and not minimal:
        parts += ["<D:propstat><D:prop>", *(text_element(tag) for tag in missing), _MISSING_TAIL]
    if None in parts:
        return None
    parts.append("</D:response>")
    return "".join(parts)
