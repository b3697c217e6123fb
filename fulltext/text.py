"""Words, the query tree and its translation to each database's query language.

One tokenizer for both databases: the text is cut into words here, in Python, and the database
only ever sees words joined by spaces (SQLite FTS5) or a tsvector literal built here
(PostgreSQL). That is what makes matching the same on both: diacritics, case, CJK and
punctuation are decided once, not by two engines with two Unicode tables and two parsers.

A word is a run of letters, digits and marks, normalised by NFKD, with every mark dropped, then
case-folded and recomposed (NFC): "Crème" and "CREME" are the word "creme". A Han, Hiragana,
Katakana or Hangul character is a word of its own, so that text written without spaces can be
searched: a CJK query word is the phrase of its characters (substring matching).
"""
from __future__ import annotations

import dataclasses
import functools
import unicodedata

import regex

# The fields a document may have, as mail.mime.parse() names them in its `search` dict, with the
# tag PostgreSQL prefixes to each word of the field (one tsvector holds every field) and the
# FTS5 column (FTS5 column names are barewords in a MATCH expression; "from" would not be).
FIELDS = {
    "subject": ("s", "subject"),
    "from": ("f", "addr_from"),
    "to": ("t", "addr_to"),
    "cc": ("c", "addr_cc"),
    "bcc": ("b", "addr_bcc"),
    "attachmentNames": ("a", "attachments"),
    "body": ("x", "body"),
}
ANY = "text"  # the condition on every field

# A longer "word" is a base64 line or a hash, nobody searches for it: it is not indexed (and a
# query word as long matches nothing), which keeps PostgreSQL's lexemes far below their limit.
MAX_WORD = 64
# Shorter prefixes are taken as whole words: "a*" would read a large part of the index.
MIN_PREFIX = 2
# Words per condition and conditions per query: a query is bounded before any SQL is built.
MAX_QUERY_WORDS = 64
MAX_QUERY_NODES = 256

_CJK = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}"
_WORD = regex.compile(rf"[{_CJK}]|[[\p{{L}}\p{{N}}\p{{M}}]--[{_CJK}]]+", regex.V1)
_CJK_CHAR = regex.compile(rf"[{_CJK}]", regex.V1)


@functools.lru_cache(maxsize=65536)
def _fold(word: str) -> tuple[str, ...]:
    """One matched run -> its words (a compatibility form may split: "½" -> "1", "2")."""
    if word.isascii():
        return (word.lower(),)
    decomposed = unicodedata.normalize("NFKD", word)
    bare = "".join(c for c in decomposed if unicodedata.category(c)[0] != "M")
    folded = unicodedata.normalize("NFC", bare.casefold())
    return tuple(_WORD.findall(folded))


def spans(text: str):
    """(start, end, word) for every word of `text`, in order; `word` is normalised."""
    for m in _WORD.finditer(text):
        for w in _fold(m.group()):
            if len(w) <= MAX_WORD:
                yield m.start(), m.end(), w


def words(text: str) -> list[str]:
    return [w for _, _, w in spans(text)]


# --- The query tree ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Match:
    """`text` (what a user typed) is found in `field` ("text": in any field).

    Every word of `text` must occur in the field (AND). "Quoted words" must occur in that order,
    next to each other (a phrase); so must the parts of one word that punctuation splits
    ("alice@example.org" is the phrase alice example org). A word ending in `*` is a prefix
    (at least 2 characters). Nothing else in `text` is syntax: `"` only pairs, and AND, OR,
    NEAR(, :, ^, &, |, !, parentheses are ordinary characters (punctuation, i.e. spaces).
    A text with no word in it matches no document.
    """
    field: str
    text: str

    def __post_init__(self):
        if self.field != ANY and self.field not in FIELDS:
            raise ValueError(f"unknown full-text field {self.field!r}")
        if not isinstance(self.text, str):
            raise TypeError("Match.text must be a string")


@dataclasses.dataclass(frozen=True, init=False)
class And:
    items: tuple

    def __init__(self, *items):
        object.__setattr__(self, "items", tuple(items))


@dataclasses.dataclass(frozen=True, init=False)
class Or:
    items: tuple

    def __init__(self, *items):
        object.__setattr__(self, "items", tuple(items))


@dataclasses.dataclass(frozen=True)
class Not:
    item: object


class TooComplex(ValueError):
    """The query has more conditions or words than MAX_QUERY_NODES / MAX_QUERY_WORDS.

    The JMAP face answers it as `unsupportedFilter` (RFC 8621 §4.4.1 leaves the limits to the
    server)."""


@dataclasses.dataclass(frozen=True)
class Group:
    """Words that must be adjacent, in order; the last one a prefix if `prefix`."""
    words: tuple
    prefix: bool = False


def groups(text: str) -> list[Group]:
    """The parsed `Match.text`: each group must occur (AND)."""
    out = []
    count = 0
    for i, chunk in enumerate(text.split('"')):
        # Odd chunks were between quotes (an unpaired quote opens a phrase to the end).
        if i % 2:
            found = [Group(tuple(words(chunk)))]
        else:
            found = []
            for token in chunk.split():
                prefix = token.endswith("*")
                w = tuple(words(token))
                if not w:
                    continue
                # A CJK word is a phrase of characters; searching its prefix is the phrase itself.
                prefix = prefix and len(w[-1]) >= MIN_PREFIX and not _CJK_CHAR.match(w[-1])
                found.append(Group(w, prefix))
        for g in found:
            if g.words:
                count += len(g.words)
                out.append(g)
    if count > MAX_QUERY_WORDS:
        raise TooComplex(f"more than {MAX_QUERY_WORDS} words in one condition")
    return out


def check(query) -> None:
    """Raise TooComplex or ValueError before anything is built."""
    seen = 0
    stack = [query]
    while stack:
        node = stack.pop()
        seen += 1
        if seen > MAX_QUERY_NODES:
            raise TooComplex(f"more than {MAX_QUERY_NODES} conditions")
        if isinstance(node, (And, Or)):
            stack.extend(node.items)
        elif isinstance(node, Not):
            stack.append(node.item)
        elif isinstance(node, Match):
            groups(node.text)
        else:
            raise TypeError(f"not a full-text query node: {node!r}")


def positive(query, field: str) -> list[Group]:
    """The groups that can make a document match in `field`: what a snippet highlights.
    Conditions under a Not are left out (they are what the document does not contain)."""
    out, stack = [], [query]
    while stack:
        node = stack.pop()
        if isinstance(node, (And, Or)):
            stack.extend(node.items)
        elif isinstance(node, Match) and node.field in (ANY, field):
            out.extend(groups(node.text))
    return out


# --- SQLite FTS5 ------------------------------------------------------------------------------

def fts5_match(match: Match) -> str | None:
    """The FTS5 MATCH expression of one condition, or None if it can match nothing.

    Every word is inside double quotes and is letters and digits only, so no user character
    reaches FTS5's syntax."""
    found = groups(match.text)
    if not found:
        return None
    column = "" if match.field == ANY else "{%s} : " % FIELDS[match.field][1]
    return " AND ".join(f'{column}"{" ".join(g.words)}"' + (" *" if g.prefix else "") for g in found)


def fts5_row(fields: dict) -> list[str]:
    """The FTS5 columns' values, in FIELDS order: the words joined by spaces."""
    return [" ".join(words(fields.get(name) or "")) for name in FIELDS]


# --- PostgreSQL -------------------------------------------------------------------------------

# tsvector limits (PostgreSQL's ts_type.h): positions stop at 16383, 256 positions per lexeme,
# and the lexemes with their positions must fit in 1 MB. The budget leaves room for the header.
PG_MAX_POS = 16383
PG_MAX_POSITIONS = 256
PG_BUDGET = 1_000_000


def pg_tsvector(fields: dict) -> str:
    """The tsvector literal of a document: each word tagged with its field ("s:hello").

    Positions count within each field, so a phrase never spans two fields. A document beyond
    the 1 MB budget keeps its first words (a new lexeme past the budget is not added)."""
    lexemes: dict[str, list[int]] = {}
    size = 0
    for name, (tag, _) in FIELDS.items():
        pos = 0
        for w in words(fields.get(name) or ""):
            pos = min(pos + 1, PG_MAX_POS)
            lexeme = f"{tag}:{w}"
            found = lexemes.get(lexeme)
            if found is None:
                cost = len(lexeme.encode()) + 8
                if size + cost > PG_BUDGET:
                    continue
                size += cost
                lexemes[lexeme] = [pos]
            elif len(found) < PG_MAX_POSITIONS and found[-1] != pos:
                if size + 2 > PG_BUDGET:
                    continue
                size += 2
                found.append(pos)
    return " ".join(f"'{lex}':{','.join(map(str, ps))}" for lex, ps in lexemes.items())


def pg_tsquery(match: Match) -> str | None:
    """The tsquery literal of one condition, or None if it can match nothing.

    Lexemes are quoted and are a tag and letters and digits only: no user character reaches
    tsquery's syntax."""
    found = groups(match.text)
    if not found:
        return None
    tags = [t for t, _ in FIELDS.values()] if match.field == ANY else [FIELDS[match.field][0]]

    def phrase(tag: str, g: Group) -> str:
        last = len(g.words) - 1
        return " <-> ".join(f"'{tag}:{w}'" + (":*" if g.prefix and i == last else "")
                            for i, w in enumerate(g.words))

    return " & ".join("(" + " | ".join(f"({phrase(tag, g)})" for tag in tags) + ")" for g in found)

# A snippet looks for the first match within this much of the body (a match further in a huge
# body still makes the document match; its preview is then null).
MAX_SEARCH_SCAN = 1_000_000
