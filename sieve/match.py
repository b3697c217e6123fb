"""Comparators (RFC 4790 as profiled by RFC 5228 §2.7.3) and match types (:is, :contains,
:matches, :regex, and RFC 5231's :value)."""
from __future__ import annotations

import re

from .grammar import compile_regex

_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
_DIGITS = re.compile(r"[0-9]*")
_INFINITY = float("inf")


def fold(text: str, comparator: str) -> str:
    """i;ascii-casemap folds A-Z only, so a folded string keeps its length: the spans of a match
    on it are the spans on the original, which match variables are cut from."""
    return text.translate(_ASCII_LOWER) if comparator == "i;ascii-casemap" else text


def numeric(text: str) -> float | int:
    """i;ascii-numeric: the leading digits as a number; none at all is positive infinity."""
    digits = _DIGITS.match(text).group()
    return int(digits) if digits else _INFINITY


def compare(value: str, key: str, relation: str, comparator: str) -> bool:
    if comparator == "i;ascii-numeric":
        a, b = numeric(value), numeric(key)
    else:
        a, b = fold(value, comparator), fold(key, comparator)
    return {"gt": a > b, "ge": a >= b, "lt": a < b, "le": a <= b, "eq": a == b, "ne": a != b}[relation]


def glob_to_regex(pattern: str) -> str:
    """A :matches pattern as a regular expression: '*' and '?' become non-greedy groups, so that
    ${1} of "[*] *" on "[a] [b] c" is "a" (RFC 5229 §3.2: the leftmost wildcard takes least)."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "*":
            out.append("(.*?)")
        elif c == "?":
            out.append("(.)")
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


class Matcher:
    """One run's matching, with its compiled patterns cached (a key is compiled once per run)."""

    def __init__(self, max_mem: int, max_cache: int = 256):
        self._cache: dict = {}
        self._max_mem = max_mem
        self._max_cache = max_cache

    def _compiled(self, kind: str, key: str, comparator: str):
        entry = (kind, key, comparator)
        pattern = self._cache.get(entry)
        if pattern is None:
            if kind == ":matches":
                # Folding the pattern as well as the value keeps the match ASCII-case-blind
                # without RE2's Unicode folding, which i;ascii-casemap does not do.
                pattern = compile_regex(glob_to_regex(fold(key, comparator)), "i;octet", self._max_mem)
            else:
                pattern = compile_regex(key, comparator, self._max_mem)
            if len(self._cache) < self._max_cache:
                self._cache[entry] = pattern
        return pattern

    def match(self, value: str, key: str, match_type: str, comparator: str, relation: str | None = None,
              compiled=None):
        """False, or True, or the list of match variables (${0}, ${1}, ...) of a :matches or
        :regex match."""
        if match_type == ":is":
            if comparator == "i;ascii-numeric":
                return numeric(value) == numeric(key)
            return fold(value, comparator) == fold(key, comparator)
        if match_type == ":contains":
            return fold(key, comparator) in fold(value, comparator)
        if match_type == ":value":
            return compare(value, key, relation, comparator)
        if match_type == ":matches":
            pattern = self._compiled(":matches", key, comparator)
            found = pattern.fullmatch(_safe(fold(value, comparator)))
            if found is None:
                return False
            return [value] + [value[s:e] for s, e in (found.span(i) for i in range(1, pattern.groups + 1))]
        if match_type == ":regex":
            pattern = compiled or self._compiled(":regex", key, comparator)
            found = pattern.search(_safe(value))
            if found is None:
                return False
            return [found.group(0)] + [found.group(i) or "" for i in range(1, pattern.groups + 1)]
        raise ValueError(match_type)


def _safe(text: str) -> str:
    # RE2 takes UTF-8: a lone surrogate (from a broken header) would make it raise.
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")

