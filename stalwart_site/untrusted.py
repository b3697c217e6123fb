"""The one JSON reader for request bodies that come from outside (JMAP, /auth/register,
/api/*): refuses, at the parse, what Python's json module accepts but the rest of the server
cannot hold.

- Invalid encodings. The body is decoded strictly, so UTF-8-encoded surrogates (which
  "surrogatepass" would let through) are refused like any other invalid byte.
- Lone surrogates written as escapes ("\\ud800"). I-JSON (RFC 7493 §2.1), which JMAP requires
  (RFC 8620 §3.3), forbids them; they cannot be encoded to UTF-8, so SQLite, PostgreSQL, the
  hashers and the audit log would each fail on them with a 500. Valid pairs pass.
- Nesting. Python's parser raises RecursionError near 1 000 levels (a 500 where not caught)
  and every walk over the value recurses as deep again; the reference's parser (serde_json)
  stops at 128.
- NaN, Infinity and numbers beyond a double: not JSON, and they cannot be written back.
- Duplicate member names (RFC 7493 §2.3: I-JSON objects MUST NOT have them). Python keeps the
  last one silently, while a proxy, a filter or a log reader before us may keep the first: the
  same body would mean two different requests.
- NUL (U+0000), optionally. PostgreSQL refuses it in text, so a string that may reach a query
  must not carry it. JMAP keeps it past the parse and refuses it per method call
  (find_nul), so that the error is the call's invalidArguments rather than the request's.

The text is only walked when it contains an escape that could produce what is refused, so an
ordinary body costs one regular-expression scan beyond the parse.
"""
from __future__ import annotations

import json
import math
import re

MAX_DEPTH = 128

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class UntrustedJSONError(ValueError):
    """Why a body was refused: reason is "syntax", "depth", "surrogate" or "nul"; path is the
    JSON pointer of the offending string, when there is one."""

    def __init__(self, reason: str, message: str, path: str | None = None):
        super().__init__(message)
        self.reason, self.path = reason, path


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _unique_members(pairs: list) -> dict:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen = set()
        name = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError(f"the member name {printable_path(name)[:60]!r} appears twice in one object")
    return value


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float,
                            object_pairs_hook=_unique_members)


def _deeper_than(value, limit: int) -> bool:
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def find_string(value, bad) -> str | None:
    """The JSON pointer of the first key or string for which bad(s) is true, or None."""
    stack = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if bad(item):
                return path or "/"
        elif isinstance(item, dict):
            for key, child in item.items():
                if bad(key):
                    return f"{path}/{_escape(key)}"
                stack.append((child, f"{path}/{_escape(key)}"))
        elif isinstance(item, list):
            stack.extend((child, f"{path}/{i}") for i, child in enumerate(item))
    return None


def _has_surrogate(text: str) -> bool:
    return _SURROGATE.search(text) is not None


def _has_nul(text: str) -> bool:
    return "\x00" in text


def find_nul(value) -> str | None:
    """The JSON pointer of the first key or string holding NUL, or None."""
    return find_string(value, _has_nul)


def may_hold_nul(body: bytes | str) -> bool:
    """Whether a JSON text can decode to a string holding NUL (a raw NUL is not valid JSON)."""
    return (b"\\u0000" in body) if isinstance(body, bytes) else ("\\u0000" in body)


def printable_path(path: str) -> str:
    """A pointer safe to put in an error message: what was refused is shown escaped."""
    return path.encode("unicode_escape", "backslashreplace").decode("ascii")[:200]


def loads(body: bytes | str, *, max_depth: int = MAX_DEPTH, allow_nul: bool = False):
    """The JSON value of an untrusted body, or UntrustedJSONError."""
    try:
        text = body.decode(json.detect_encoding(body)) if isinstance(body, bytes) else body
        value = _DECODER.decode(text)
    except UnicodeDecodeError:
        raise UntrustedJSONError("syntax", "The body is not valid UTF-8.") from None
    except RecursionError:
        raise UntrustedJSONError("depth", f"The JSON is nested more than {max_depth} levels deep.") from None
    except ValueError as exc:
        raise UntrustedJSONError("syntax", f"The body is not valid JSON: {exc}") from None
    # Counting brackets (quoted ones included) bounds the depth: most bodies skip the walk.
    if text.count("[") + text.count("{") > max_depth and _deeper_than(value, max_depth):
        raise UntrustedJSONError("depth", f"The JSON is nested more than {max_depth} levels deep.")
    if _SURROGATE_ESCAPE.search(text):
        path = find_string(value, _has_surrogate)
        if path is not None:
            raise UntrustedJSONError(
                "surrogate", f"The string at {printable_path(path)} holds a lone surrogate, which is not Unicode.",
                path)
    if not allow_nul and may_hold_nul(text):
        path = find_nul(value)
        if path is not None:
            raise UntrustedJSONError("nul", f"The string at {printable_path(path)} holds a NUL character (U+0000), "
                                            "which is not accepted.", path)
    return value
