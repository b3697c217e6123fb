"""The expression language of Stalwart's configuration "Expression" values (used here by
``Http.allowedEndpoints``), re-implemented in plain Python.

Public surface:

* ``compile_expression(source, variables) -> Expr``: tokenize + parse + compile once; raises
  ``ExprError(message, position)`` with a 0-based character offset.
* ``Expr.evaluate(ctx) -> value``: evaluate against a mapping of variable values; any failure
  is raised as ``EvalError``.
* ``compile_rule(obj, variables=HTTP_VARIABLES) -> Rule`` for ``{"match": [...], "else": ...}``
  (``match`` may also be an object keyed "0", "1", ...); ``Rule.evaluate(ctx)``.
* ``to_integer(value)`` / ``to_status(value)``: the reference's conversion of a rule's result.

Values are ``str``, ``int``, ``float`` and ``list``. As in the reference, booleans are the
integers 1 and 0, the "empty" value is ``""``, and a missing variable reads as ``""``.

Compilation produces a tree of small closures (constant sub-expressions are folded, the common
``fn(variable, 'literal')`` shapes are specialised), so a typical rule costs a few
microseconds per request. The grammar, precedence, coercions and functions follow Stalwart's
``crates/common/src/expr``; the differences are listed in docs/access-control.md.
"""
from __future__ import annotations

import functools
import hashlib
import re
import socket
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping

import re2

__all__ = [
    "HTTP_VARIABLES", "FUNCTIONS", "ExprError", "EvalError", "Expr", "Rule",
    "compile_expression", "compile_rule", "to_integer", "to_status", "truthy",
    "MAX_SOURCE_LENGTH", "MAX_NESTING", "MAX_REGEX_LENGTH",
]

HTTP_VARIABLES = frozenset({
    "listener", "remote_ip", "remote_port", "local_ip", "local_port", "protocol", "is_tls",
    "url", "path", "headers", "method",
})

MAX_SOURCE_LENGTH = 4096   # characters of one expression
MAX_NESTING = 32           # parentheses, brackets, calls and unary operators inside each other
MAX_REGEX_LENGTH = 1024    # characters of a matches() pattern

I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1
_U64 = (1 << 64) - 1


# --- errors ----------------------------------------------------------------------------------
class ExprError(ValueError):
    """A source that does not compile. ``position`` is a 0-based character offset into the
    source (None for errors of a rule's shape); ``part`` names the piece of a rule
    (``match/0/if``, ``else``) when raised by ``compile_rule``."""

    def __init__(self, message: str, position: int | None = None, part: str | None = None, limit: bool = False):
        self.message = message
        self.position = position
        self.part = part
        # A size or nesting limit, not a mistake in the expression's grammar.
        self.limit = limit
        super().__init__(str(self))

    def __str__(self) -> str:
        text = self.message if self.position is None else f"{self.message} at position {self.position}"
        return f"{self.part}: {text}" if self.part else text


class EvalError(Exception):
    """Evaluation failed (an unusable variable value, or any unexpected error underneath)."""


# --- values ------------------------------------------------------------------------------------
_INT_RE = re.compile(r"[+-]?[0-9]+")
_UINT_RE = re.compile(r"\+?[0-9]+")
_FLOAT_RE = re.compile(
    r"[+-]?(?:[0-9]+\.?[0-9]*(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)",
    re.IGNORECASE)
# char::is_whitespace (Unicode White_Space), which Rust's trim/split_whitespace use.
_WS = ("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
       "\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
_WS_SET = frozenset(_WS)
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def truthy(v) -> bool:
    """Empty string, 0, 0.0 and the empty array are false; everything else is true."""
    return bool(v)


def _sat(n: int) -> int:
    if I64_MIN <= n <= I64_MAX:
        return n
    return I64_MAX if n > 0 else I64_MIN


def _norm(v):
    """A variable's value as one of the language's types."""
    c = v.__class__
    if c is str or c is int or c is float:
        return v
    if c is bool:
        return int(v)
    if v is None:
        return ""
    if c is list or c is tuple:
        if c is list and all(x.__class__ is str for x in v):
            return v
        return [_norm(x) for x in v]
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, str):
        return str(v)
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return float(v)
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    raise EvalError(f"unsupported value of type {type(v).__name__}")


def _float_str(f: float) -> str:
    """Shortest round-trip text, as the reference's to_str (ryu-like) writes floats."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "inf" if f > 0 else "-inf"
    text = repr(f)
    if "e" in text:
        mant, _, exp = text.partition("e")
        sign = "-" if exp.startswith("-") else ""
        text = f"{mant}e{sign}{exp.lstrip('+-').lstrip('0') or '0'}"
    return text


def _float_display(f: float) -> str:
    """Rust's Display for f64 (used when concatenating): no exponent, no trailing '.0'."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "inf" if f > 0 else "-inf"
    text = format(Decimal(repr(f)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _to_str(v) -> str:
    c = v.__class__
    if c is str:
        return v
    if c is int:
        return str(v)
    if c is float:
        return _float_str(v)
    if c is list:
        return "\r\n".join("" if x.__class__ is list else _to_str(x) for x in v)
    return str(v)


def _display(v) -> str:
    c = v.__class__
    if c is float:
        return _float_display(v)
    if c is list:
        return "\n".join(_display(x) for x in v)
    return _to_str(v)


def _parse_number(v):
    """A value as a number: numeric strings parse, other strings are 0, an array is 1 when empty."""
    c = v.__class__
    if c is int or c is float:
        return v
    if c is str:
        if not v:
            return 0
        if _INT_RE.fullmatch(v):
            n = int(v)
            if I64_MIN <= n <= I64_MAX:
                return n
            return float(v)
        if _FLOAT_RE.fullmatch(v):
            return float(v)
        return 0
    if c is list:
        return 1 if not v else 0
    return 0


def to_integer(v) -> int | None:
    """The reference's Variable::to_integer: ints, truncated floats and integer strings."""
    c = v.__class__
    if c is bool:
        return int(v)
    if c is int:
        return v
    if c is float:
        if v != v:
            return 0
        if v >= 9.223372036854775807e18:
            return I64_MAX
        if v <= -9.223372036854775808e18:
            return I64_MIN
        return int(v)
    if c is str and v and _INT_RE.fullmatch(v):
        n = int(v)
        return n if I64_MIN <= n <= I64_MAX else None
    return None


def to_status(v) -> int | None:
    """A rule's result as an HTTP status (100-999) the way the reference converts it, else None."""
    n = to_integer(v)
    if n is None:
        return None
    n &= 0xFFFF  # `as u16`
    return n if 100 <= n <= 999 else None


def _to_usize(v) -> int | None:
    c = v.__class__
    if c is int:
        return v & _U64  # a negative index wraps to a huge one, i.e. out of range
    if c is float:
        if v != v or v <= 0:
            return 0
        return min(int(v), _U64)
    if c is str and v and _UINT_RE.fullmatch(v):
        n = int(v)
        return n if n <= _U64 else None
    return None


def _eq(a, b) -> bool:
    ca, cb = a.__class__, b.__class__
    if ca is cb:
        if ca is list:
            return len(a) == len(b) and all(_eq(x, y) for x, y in zip(a, b))
        return a == b
    if ca is list or cb is list:
        return False
    if ca is str:
        return _eq(_parse_number(a), b)
    if cb is str:
        return _eq(a, _parse_number(b))
    return a == b  # int and float


def _cmp(a, b) -> int | None:
    """The reference's partial ordering: -1, 0, 1, or None when unordered (NaN)."""
    ca, cb = a.__class__, b.__class__
    num_a = ca is int or ca is float
    num_b = cb is int or cb is float
    if num_a and num_b:
        if a < b:
            return -1
        if a > b:
            return 1
        return 0 if a == b else None
    if ca is str and cb is str:
        return -1 if a < b else (1 if a > b else 0)
    if ca is str and num_b:
        return _cmp(_parse_number(a), b)
    if num_a and cb is str:
        return _cmp(a, _parse_number(b))
    if ca is list and cb is list:
        for x, y in zip(a, b):
            r = _cmp(x, y)
            if r != 0:
                return r
        return -1 if len(a) < len(b) else (1 if len(a) > len(b) else 0)
    if ca is list or ca is str:
        return 1
    return -1


def _sort_key_cmp(a, b) -> int:
    r = _cmp(a, b)
    return 1 if r is None else r


def _add(a, b):
    ca, cb = a.__class__, b.__class__
    if ca is int and cb is int:
        return _sat(a + b)
    if (ca is int or ca is float) and (cb is int or cb is float):
        return float(a) + float(b)
    if ca is list:
        return a + b if cb is list else a + [b]
    if cb is list:
        return [a] + b
    if ca is str:
        return a + _display(b) if a else b
    if cb is str:
        return _display(a) + b if b else a
    return a


def _sub_number(a, b):
    ca, cb = a.__class__, b.__class__
    if ca is int and cb is int:
        return _sat(a - b)
    if (ca is int or ca is float) and (cb is int or cb is float):
        return float(a) - float(b)
    return _sub_number(_parse_number(a), _parse_number(b))


def _sub(a, b):
    if a.__class__ is list:
        return [x for x in a if not _eq(x, b)]
    if b.__class__ is list:
        return [x for x in b if not _eq(x, a)]
    return _sub_number(a, b)


def _mul(a, b):
    ca, cb = a.__class__, b.__class__
    if ca is int and cb is int:
        return _sat(a * b)
    if (ca is int or ca is float) and (cb is int or cb is float):
        return float(a) * float(b)
    return _mul(_parse_number(a), _parse_number(b))


def _div(a, b):
    ca, cb = a.__class__, b.__class__
    if (ca is int or ca is float) and (cb is int or cb is float):
        if b == 0:
            return 0.0  # the reference divides by zero to 0.0
        return float(a) / float(b) if ca is float or cb is float else a / b
    return _div(_parse_number(a), _parse_number(b))


def _neg(v):
    c = v.__class__
    if c is int:
        return I64_MIN if v == I64_MIN else _sat(-v)  # wrapping_neg
    if c is float:
        return -v
    return _neg(_parse_number(v))


def _index(v, i):
    n = _to_usize(i)
    if n is None:
        n = 0
    if v.__class__ is list:
        return v[n] if n < len(v) else ""
    if n == 0 and v != "":
        return v
    return ""


def _into_array(v) -> list:
    if v.__class__ is list:
        return list(v)
    return [] if v == "" else [v]


def _transform(v, f: Callable[[str], Any]):
    """Apply a text function to a string, or to each element of an array."""
    if v.__class__ is str:
        return f(v)
    if v.__class__ is list:
        return [f(_to_str(x)) for x in v]
    return f(_to_str(v))


# --- IP addresses ------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4096)
def _parse_ip(text: str):
    """(4, int) or (6, int), or None; strict like Rust's IpAddr parser (no zone, no zeros-padding)."""
    if not text or len(text) > 45:
        return None
    try:
        if ":" in text:
            return 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except (OSError, ValueError):
        return None


_U128 = (1 << 128) - 1


@functools.lru_cache(maxsize=1024)
def _parse_mask(text: str):
    """(version, addr, mask) of "ip" or "ip/prefix" (prefix 8-32 / 8-128), or None."""
    if "/" in text:
        addr_text, _, prefix_text = text.rpartition("/")
        ip = _parse_ip(addr_text.strip(_WS))
        prefix_text = prefix_text.strip(_WS)
        if ip is None or not _UINT_RE.fullmatch(prefix_text):
            return None
        prefix = int(prefix_text)
        version, addr = ip
        bits = 32 if version == 4 else 128
        if not 8 <= prefix <= bits:
            return None
        full = (1 << bits) - 1
        return version, addr, full ^ ((1 << (bits - prefix)) - 1)
    ip = _parse_ip(text.strip(_WS))
    if ip is None:
        return None
    version, addr = ip
    return version, addr, (0xFFFFFFFF if version == 4 else _U128)


def _mask_matches(mask, ip) -> bool:
    mversion, maddr, mbits = mask
    version, addr = ip
    if mversion == 4:
        if mbits == 0xFFFFFFFF:
            if version == 4:
                return addr == maddr
            return addr >> 32 == 0xFFFF and (addr & 0xFFFFFFFF) == maddr  # IPv4-mapped only
        if version == 6:
            high = addr >> 32
            if high != 0 and high != 0xFFFF:  # Ipv6Addr::to_ipv4: compatible or mapped
                return False
            addr &= 0xFFFFFFFF
        return addr & mbits == maddr & mbits
    if version == 4:
        addr |= 0xFFFF << 32  # to_ipv6_mapped
    if mbits == _U128:
        return addr == maddr
    return addr & mbits == maddr & mbits


def _fn_is_ip_in_cidr(value, mask):
    ip = _parse_ip(_to_str(value))
    if ip is None:
        return 0
    parsed = _parse_mask(_to_str(mask))
    return 1 if parsed is not None and _mask_matches(parsed, ip) else 0


def _fn_ip_reverse_name(value):
    ip = _parse_ip(_to_str(value))
    if ip is None:
        return ""
    version, addr = ip
    if version == 4:
        return ".".join(str(b) for b in reversed(addr.to_bytes(4, "big")))
    return ".".join(reversed(format(addr, "032x")))


# --- text helpers ------------------------------------------------------------------------------
def _split_empty(s: str, limit: int | None = None) -> list:
    """Rust's str::split("") / splitn(limit, ""): "", each character, ""."""
    full = [""] + list(s) + [""]
    if limit is None or limit >= len(full):
        return full
    if limit <= 1:
        return [s]
    return full[:limit - 1] + [s[limit - 2:]]


def _lines(s: str) -> list:
    if not s:
        return []
    parts = s.split("\n")
    if parts[-1] == "":
        parts.pop()
    return [p[:-1] if p.endswith("\r") else p for p in parts]


def _is_email(value) -> int:
    data = _to_str(value).encode("utf-8", "surrogatepass")
    last = 0
    in_quote = False
    at_count = dot_count = lp_len = value_len = 0
    plain = set(b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!#$%&'*+-/=?^_`{|}~")
    for ch in data:
        if ch in plain or ch >= 0x7F:
            value_len += 1
        elif ch == 0x2E and not in_quote:  # '.'
            if last != 0x2E and last != 0x40 and value_len != 0:
                value_len += 1
                if at_count == 1:
                    dot_count += 1
            else:
                return 0
        elif ch == 0x40 and not in_quote:  # '@'
            at_count += 1
            lp_len = value_len
            value_len = 0
        elif ch in b">:, " and in_quote:
            value_len += 1
        elif ch == 0x22 and (not in_quote or last != 0x5C):  # '"'
            in_quote = not in_quote
        elif ch == 0x5C and in_quote and last != 0x5C:  # '\\'
            pass
        elif not in_quote:
            return 0
        last = ch
    return 1 if at_count == 1 and dot_count > 0 and lp_len > 0 and value_len > 0 else 0


def _email_part(value, part):
    which = _to_str(part)

    def pick(s: str):
        if "@" not in s:
            return ""
        local, _, domain = s.rpartition("@")
        if which == "local":
            return local.strip(_WS)
        if which == "domain":
            return domain.strip(_WS)
        return ""

    return _transform(value, pick)


def _fn_contains(haystack, needle):
    c = haystack.__class__
    if c is str:
        return 1 if _to_str(needle) in haystack else 0
    if c is list:
        return 1 if any(_eq(x, needle) for x in haystack) else 0
    return 1 if _to_str(needle) in _to_str(haystack) else 0


def _fn_contains_ignore_case(haystack, needle):
    n = _to_str(needle)
    c = haystack.__class__
    if c is str:
        return 1 if n.lower() in haystack.lower() else 0
    if c is list:
        low = n.translate(_ASCII_LOWER)
        return 1 if any(x.__class__ is str and x.translate(_ASCII_LOWER) == low for x in haystack) else 0
    return 1 if n in _to_str(haystack) else 0


def _fn_split_n(value, sep, count):
    s, sep = _to_str(value), _to_str(sep)
    n = to_integer(count) or 0
    n &= _U64  # `as usize`
    if sep == "":
        return _split_empty(s, min(n + 1, _U64))
    return s.split(sep, n if n < (1 << 62) else -1)


def _fn_dedup(value):
    items = _into_array(value)
    if all(x.__class__ is str for x in items):
        return list(dict.fromkeys(items))
    out: list = []
    for x in items:
        if not any(_eq(x, y) for y in out):
            out.append(x)
    return out


def _fn_is_intersect(a, b):
    la, lb = a.__class__ is list, b.__class__ is list
    if la and lb:
        if all(x.__class__ is str for x in a) and all(y.__class__ is str for y in b):
            return 1 if not set(a).isdisjoint(b) else 0
        return 1 if any(_eq(x, y) for x in a for y in b) else 0
    if la:
        return 1 if any(_eq(x, b) for x in a) else 0
    if lb:
        return 1 if any(_eq(a, y) for y in b) else 0
    return 0


def _fn_sort(value, ascending):
    items = _into_array(value)
    reverse = not truthy(ascending)
    if all(x.__class__ is str for x in items):
        return sorted(items, reverse=reverse)
    return sorted(items, key=functools.cmp_to_key(_sort_key_cmp), reverse=reverse)


def _fn_hash(value, algorithm):
    name = _to_str(algorithm)
    if name not in ("md5", "sha1", "sha256", "sha512"):
        return ""
    return hashlib.new(name, _to_str(value).encode("utf-8", "surrogatepass")).hexdigest()


def _fn_len(value):
    c = value.__class__
    if c is list:
        return len(value)
    s = value if c is str else _to_str(value)
    return len(s) if s.isascii() else len(s.encode("utf-8", "surrogatepass"))


def _fn_substring(value, start, count):
    s = _to_str(value)
    a = _to_usize(start) or 0
    n = _to_usize(count) or 0
    return s[a:a + n]


def _fn_strip_prefix(value, prefix):
    p = _to_str(prefix)
    return _transform(value, lambda s: s[len(p):] if s.startswith(p) else "")


def _fn_strip_suffix(value, suffix):
    p = _to_str(suffix)
    return _transform(value, lambda s: s[:len(s) - len(p)] if s.endswith(p) else "")


def _fn_split(value, sep):
    s, sep = _to_str(value), _to_str(sep)
    return _split_empty(s) if sep == "" else s.split(sep)


def _fn_rsplit(value, sep):
    s, sep = _to_str(value), _to_str(sep)
    if sep == "":
        return _split_empty(s)[::-1]
    return s.rsplit(sep)[::-1]


def _fn_split_once(value, sep):
    s, sep = _to_str(value), _to_str(sep)
    if sep == "":
        return ["", s]
    head, found, tail = s.partition(sep)
    return [head, tail] if found else ""


def _fn_rsplit_once(value, sep):
    s, sep = _to_str(value), _to_str(sep)
    if sep == "":
        return [s, ""]
    head, found, tail = s.rpartition(sep)
    return [head, tail] if found else ""


def _fn_split_words(value):
    s = _to_str(value)
    words = []
    word: list = []
    for ch in s + " ":
        if ch in _WS_SET:
            if word:
                w = "".join(word)
                if w.isalnum():
                    words.append(w)
                word = []
        else:
            word.append(ch)
    return words


def _fn_is_uppercase(value):
    return _transform(value, lambda s: 1 if all(c.isupper() for c in s if c.isalpha()) else 0)


def _fn_is_lowercase(value):
    return _transform(value, lambda s: 1 if all(c.islower() for c in s if c.isalpha()) else 0)


def _fn_has_digits(value):
    return _transform(value, lambda s: 1 if any("0" <= c <= "9" for c in s) else 0)


def _fn_eq_ignore_case(a, b):
    return 1 if _to_str(a).translate(_ASCII_LOWER) == _to_str(b).translate(_ASCII_LOWER) else 0


def _fn_is_empty(value):
    c = value.__class__
    if c is str or c is list:
        return 0 if value else 1
    return 0


def _fn_bit_and(a, b):
    x, y = to_integer(a), to_integer(b)
    return x & y if x is not None and y is not None else 0


def _ip_kind(version: int | None):
    def f(value):
        ip = _parse_ip(_to_str(value))
        return 1 if ip is not None and (version is None or ip[0] == version) else 0
    return f


# name -> (number of arguments, implementation over evaluated arguments)
FUNCTIONS: dict[str, tuple[int, Callable]] = {
    # arrays
    "count": (1, lambda v: len(v) if v.__class__ is list else (0 if v == "" else 1)),
    "sort": (2, _fn_sort),
    "dedup": (1, _fn_dedup),
    "winnow": (1, lambda v: [x for x in v if x != ""] if v.__class__ is list else v),
    "is_intersect": (2, _fn_is_intersect),
    # email
    "is_email": (1, _is_email),
    "email_part": (2, _email_part),
    # misc
    "is_empty": (1, _fn_is_empty),
    "is_number": (1, lambda v: 1 if v.__class__ is int or v.__class__ is float else 0),
    "bit_and": (2, _fn_bit_and),
    "is_ip_addr": (1, _ip_kind(None)),
    "is_ipv4_addr": (1, _ip_kind(4)),
    "is_ipv6_addr": (1, _ip_kind(6)),
    "is_ip_in_cidr": (2, _fn_is_ip_in_cidr),
    "ip_reverse_name": (1, _fn_ip_reverse_name),
    "if_then": (3, lambda c, a, b: a if truthy(c) else b),
    # text
    "trim": (1, lambda v: _transform(v, lambda s: s.strip(_WS))),
    "trim_end": (1, lambda v: _transform(v, lambda s: s.rstrip(_WS))),
    "trim_start": (1, lambda v: _transform(v, lambda s: s.lstrip(_WS))),
    "len": (1, _fn_len),
    "to_lowercase": (1, lambda v: _transform(v, str.lower)),
    "to_uppercase": (1, lambda v: _transform(v, str.upper)),
    "is_uppercase": (1, _fn_is_uppercase),
    "is_lowercase": (1, _fn_is_lowercase),
    "has_digits": (1, _fn_has_digits),
    "count_spaces": (1, lambda v: sum(1 for c in _to_str(v) if c in _WS_SET)),
    "count_uppercase": (1, lambda v: sum(1 for c in _to_str(v) if c.isalpha() and c.isupper())),
    "count_lowercase": (1, lambda v: sum(1 for c in _to_str(v) if c.isalpha() and c.islower())),
    "count_chars": (1, lambda v: len(_to_str(v))),
    "contains": (2, _fn_contains),
    "contains_ignore_case": (2, _fn_contains_ignore_case),
    "eq_ignore_case": (2, _fn_eq_ignore_case),
    "starts_with": (2, lambda a, b: 1 if _to_str(a).startswith(_to_str(b)) else 0),
    "ends_with": (2, lambda a, b: 1 if _to_str(a).endswith(_to_str(b)) else 0),
    "lines": (1, lambda v: _lines(v) if v.__class__ is str else v),
    "substring": (3, _fn_substring),
    "strip_prefix": (2, _fn_strip_prefix),
    "strip_suffix": (2, _fn_strip_suffix),
    "split": (2, _fn_split),
    "rsplit": (2, _fn_rsplit),
    "split_once": (2, _fn_split_once),
    "rsplit_once": (2, _fn_rsplit_once),
    "split_n": (3, _fn_split_n),
    "split_words": (1, _fn_split_words),
    "hash": (2, _fn_hash),
    # special form: matches('<regex literal>', value), compiled at parse time
    "matches": (2, None),
}

# Functions of the reference that need a directory, a store, DNS, SQL or server state.
UNAVAILABLE_FUNCTIONS = frozenset({
    "is_local_domain", "is_local_address", "key_get", "key_exists", "key_set", "counter_incr",
    "counter_get", "dns_query", "sql_query", "system", "metric",
})

_DURATION = re.compile(r"([0-9]+)(ms|s|m|h|d|w)")
_DURATION_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


# --- tokenizer ---------------------------------------------------------------------------------
_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_$.")
_ALPHA = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_$")
_FLOAT_LITERAL = re.compile(r"[0-9]+\.[0-9]*|\.[0-9]+")
_SPACE = frozenset(" \t\r\n")

# token kinds
NUM, STR, IDENT, OP, PUNCT, EOF = "number", "string", "identifier", "operator", "punct", "end"


class _Tok:
    __slots__ = ("kind", "value", "pos", "text")

    def __init__(self, kind, value, pos, text):
        self.kind, self.value, self.pos, self.text = kind, value, pos, text

    def describe(self) -> str:
        if self.kind == EOF:
            return "end of expression"
        text = self.text if len(self.text) <= 40 else self.text[:37] + "..."
        return f"'{text}'" if self.kind != STR else text


def _tokenize(src: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(src)
    while i < n:
        ch = src[i]
        if ch in _SPACE:
            i += 1
            continue
        start = i
        if ch in _WORD_CHARS:
            while i < n and src[i] in _WORD_CHARS:
                i += 1
            word = src[start:i]
            has_alpha = any(c in _ALPHA for c in word)
            has_digit = any("0" <= c <= "9" for c in word)
            if has_digit and not has_alpha:
                if "." in word:
                    if not _FLOAT_LITERAL.fullmatch(word):
                        raise ExprError(f"invalid number '{word}'", start)
                    toks.append(_Tok(NUM, float(word), start, word))
                else:
                    value = int(word)
                    if value > I64_MAX:
                        raise ExprError(f"integer '{word}' is out of range", start)
                    toks.append(_Tok(NUM, value, start, word))
            elif not has_alpha:
                raise ExprError(f"unexpected character '{ch}'", start)
            else:
                toks.append(_Tok(IDENT, word, start, word))
            continue
        if ch == "'" or ch == '"':
            i += 1
            out: list[str] = []
            while True:
                if i >= n:
                    raise ExprError("unterminated string", start)
                c = src[i]
                if c == ch:
                    i += 1
                    break
                if c == "\\" and i + 1 < n:
                    nxt = src[i + 1]
                    if nxt == "n":
                        out.append("\n")
                    elif nxt == "r":
                        out.append("\r")
                    elif nxt == "t":
                        out.append("\t")
                    elif nxt == ch:
                        out.append(ch)
                    else:  # kept as written, so regular expressions keep their escapes
                        out.append(c + nxt)
                    i += 2
                    continue
                out.append(c)
                i += 1
            toks.append(_Tok(STR, "".join(out), start, src[start:i]))
            continue
        two = src[i:i + 2]
        if two in ("&&", "||", "==", "!=", ">=", "<=", "=>", "=<"):
            op = {"=>": ">=", "=<": "<="}.get(two, two)
            toks.append(_Tok(OP, op, start, two))
            i += 2
            continue
        if ch in "&|=!^<>+-*/":
            op = {"&": "&&", "|": "||", "=": "=="}.get(ch, ch)
            toks.append(_Tok(OP, op, start, ch))
            i += 1
            continue
        if ch in "()[],":
            toks.append(_Tok(PUNCT, ch, start, ch))
            i += 1
            continue
        raise ExprError(f"unexpected character {ch!r}", start)
    toks.append(_Tok(EOF, None, n, ""))
    return toks


# --- compiled nodes ----------------------------------------------------------------------------
class _Node:
    """A compiled sub-expression: ``fn(ctx)``; constant nodes also carry their value."""

    __slots__ = ("fn", "const", "value", "var")

    def __init__(self, fn, const=False, value=None, var=None):
        self.fn, self.const, self.value, self.var = fn, const, value, var


def _const(value) -> _Node:
    return _Node(lambda ctx: value, True, value)


def _var_node(name: str) -> _Node:
    def load(ctx):
        try:
            v = ctx[name]
        except KeyError:
            return ""
        c = v.__class__
        if c is str or c is int:
            return v
        return _norm(v)
    return _Node(load, var=name)


# binary operators: precedence (higher binds tighter)
_LEVELS = {"||": 1, "&&": 2, "^": 3, "==": 4, "!=": 4, "<": 5, ">": 5, "<=": 5, ">=": 5,
           "+": 6, "-": 6, "*": 7, "/": 7}
_MAX_LEVEL = 7


def _compare_op(op: str) -> Callable[[Any, Any], int]:
    if op == "==":
        return lambda a, b: 1 if _eq(a, b) else 0
    if op == "!=":
        return lambda a, b: 0 if _eq(a, b) else 1
    if op == "<":
        return lambda a, b: 1 if _cmp(a, b) == -1 else 0
    if op == ">":
        return lambda a, b: 1 if _cmp(a, b) == 1 else 0
    if op == "<=":
        return lambda a, b: 1 if _cmp(a, b) in (-1, 0) else 0
    return lambda a, b: 1 if _cmp(a, b) in (1, 0) else 0


_ARITH = {"+": _add, "-": _sub, "*": _mul, "/": _div}


def _binary_impl(op: str) -> Callable[[Any, Any], Any]:
    if op in _ARITH:
        return _ARITH[op]
    if op == "^":
        return lambda a, b: 1 if bool(a) ^ bool(b) else 0
    return _compare_op(op)


def _chain(left: _Node, rest: list[tuple[str, _Node]]) -> _Node:
    """Left-associative operators of one precedence level, evaluated as one flat fold (so a long
    chain never makes a deep tree)."""
    op0 = rest[0][0]
    if op0 in ("&&", "||"):
        fns = [left.fn] + [node.fn for _, node in rest]
        if all(n.const for n in [left] + [node for _, node in rest]):
            return _const(_logic_fold(op0, [left.value] + [node.value for _, node in rest]))
        if op0 == "&&":
            if len(fns) == 2:
                a, b = fns

                def and2(ctx):
                    v = a(ctx)
                    if not v:
                        return v
                    return 1 if b(ctx) else 0
                return _Node(and2)

            def and_n(ctx):
                v = fns[0](ctx)
                for f in fns[1:]:
                    if not v:
                        return v
                    v = 1 if f(ctx) else 0
                return v
            return _Node(and_n)
        if len(fns) == 2:
            a, b = fns

            def or2(ctx):
                v = a(ctx)
                if v:
                    return v
                return 1 if b(ctx) else 0
            return _Node(or2)

        def or_n(ctx):
            v = fns[0](ctx)
            for f in fns[1:]:
                if v:
                    return v
                v = 1 if f(ctx) else 0
            return v
        return _Node(or_n)

    if len(rest) == 1:
        return _binary(rest[0][0], left, rest[0][1])
    if left.const and all(node.const for _, node in rest):
        try:
            value = left.value
            for op, node in rest:
                value = _binary_impl(op)(value, node.value)
            return _const(value)
        except Exception:
            pass
    start = left.fn
    steps = [(_binary_impl(op), node.fn) for op, node in rest]

    def fold(ctx):
        v = start(ctx)
        for impl, f in steps:
            v = impl(v, f(ctx))
        return v
    return _Node(fold)


def _logic_fold(op: str, values: list):
    v = values[0]
    for w in values[1:]:
        if op == "&&":
            if not v:
                return v
        elif v:
            return v
        v = 1 if w else 0
    return v


def _binary(op: str, left: _Node, right: _Node) -> _Node:
    impl = _binary_impl(op)
    if left.const and right.const:
        try:
            return _const(impl(left.value, right.value))
        except Exception:  # left to fail (as EvalError) at run time
            pass
    a, b = left.fn, right.fn
    if right.const:
        k = right.value
        if op in ("==", "!=") and k.__class__ is str:
            hit, miss = (1, 0) if op == "==" else (0, 1)

            def eq_str(ctx):
                v = a(ctx)
                if v.__class__ is str:
                    return hit if v == k else miss
                return hit if _eq(v, k) else miss
            return _Node(eq_str)
        return _Node(lambda ctx: impl(a(ctx), k))
    if left.const:
        k = left.value
        return _Node(lambda ctx: impl(k, b(ctx)))
    return _Node(lambda ctx: impl(a(ctx), b(ctx)))


def _call(name: str, args: list[_Node]) -> _Node:
    arity, impl = FUNCTIONS[name]
    if name == "if_then":
        c, t, e = args
        if c.const:
            return t if truthy(c.value) else e
        cf, tf, ef = c.fn, t.fn, e.fn
        return _Node(lambda ctx: tf(ctx) if cf(ctx) else ef(ctx))
    if all(a.const for a in args):
        try:
            return _const(impl(*[a.value for a in args]))
        except Exception:  # left to fail (as EvalError) at run time
            pass
    special = _specialise(name, args)
    if special is not None:
        return special
    fns = [a.fn for a in args]
    if arity == 1:
        f0 = fns[0]
        return _Node(lambda ctx: impl(f0(ctx)))
    if arity == 2:
        f0, f1 = fns
        if args[1].const:
            k1 = args[1].value
            return _Node(lambda ctx: impl(f0(ctx), k1))
        return _Node(lambda ctx: impl(f0(ctx), f1(ctx)))
    f0, f1, f2 = fns
    return _Node(lambda ctx: impl(f0(ctx), f1(ctx), f2(ctx)))


def _specialise(name: str, args: list[_Node]) -> _Node | None:
    """Fast closures for the shapes rules are made of: fn(value, 'literal')."""
    if len(args) != 2:
        return None
    first, second = args
    if second.const and name in ("starts_with", "ends_with") and second.value.__class__ is str:
        k = second.value
        f = first.fn
        method = str.startswith if name == "starts_with" else str.endswith

        def text_test(ctx):
            v = f(ctx)
            if v.__class__ is not str:
                v = _to_str(v)
            return 1 if method(v, k) else 0
        return _Node(text_test)
    if second.const and name == "contains" and second.value.__class__ is str:
        k = second.value
        f = first.fn

        def contains_text(ctx):
            v = f(ctx)
            if v.__class__ is str:
                return 1 if k in v else 0
            return _fn_contains(v, k)
        return _Node(contains_text)
    if first.const and name == "contains" and first.value.__class__ is list:
        items = first.value
        f = second.fn
        if all(x.__class__ is str for x in items):
            members = frozenset(items)

            def in_set(ctx):
                v = f(ctx)
                if v.__class__ is str:
                    return 1 if v in members else 0
                return _fn_contains(items, v)
            return _Node(in_set)
        return None
    if second.const and name == "is_ip_in_cidr":
        mask = _parse_mask(_to_str(second.value))
        if mask is None:
            return None  # refused by the parser before we get here
        f = first.fn

        def in_cidr(ctx):
            v = f(ctx)
            ip = _parse_ip(v if v.__class__ is str else _to_str(v))
            return 1 if ip is not None and _mask_matches(mask, ip) else 0
        return _Node(in_cidr)
    return None


def _index_node(value: _Node, index: _Node) -> _Node:
    if value.const and index.const:
        return _const(_index(value.value, index.value))
    f = value.fn
    if index.const and index.value.__class__ is int and index.value >= 0:
        k = index.value

        def index_const(ctx):
            v = f(ctx)
            if v.__class__ is list:
                return v[k] if k < len(v) else ""
            return _index(v, k)
        return _Node(index_const)
    g = index.fn
    return _Node(lambda ctx: _index(f(ctx), g(ctx)))


def _array_node(items: list[_Node]) -> _Node:
    if all(i.const for i in items):
        return _const([i.value for i in items])
    fns = [i.fn for i in items]
    return _Node(lambda ctx: [f(ctx) for f in fns])


def _unary(op: str, operand: _Node) -> _Node:
    if op == "!":
        if operand.const:
            return _const(0 if operand.value else 1)
        f = operand.fn
        return _Node(lambda ctx: 0 if f(ctx) else 1)
    if operand.const:
        return _const(_neg(operand.value))
    f = operand.fn
    return _Node(lambda ctx: _neg(f(ctx)))


# --- parser ------------------------------------------------------------------------------------
class _Parser:
    def __init__(self, src: str, variables: frozenset):
        self.src = src
        self.toks = _tokenize(src)
        self.i = 0
        self.variables = variables
        self.depth = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def advance(self) -> _Tok:
        t = self.toks[self.i]
        if t.kind != EOF:
            self.i += 1
        return t

    def is_punct(self, value: str) -> bool:
        t = self.toks[self.i]
        return t.kind == PUNCT and t.value == value

    def expect(self, value: str, what: str | None = None) -> _Tok:
        t = self.tok
        if t.kind == PUNCT and t.value == value:
            return self.advance()
        raise ExprError(f"expected {what or repr(value)}", t.pos)

    def enter(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise ExprError(f"expression is nested too deeply (more than {MAX_NESTING} levels)", pos, limit=True)

    def leave(self) -> None:
        self.depth -= 1

    def parse(self) -> _Node:
        if self.tok.kind == EOF:
            raise ExprError("empty expression", 0)
        node = self.expression()
        t = self.tok
        if t.kind != EOF:
            raise ExprError(f"unexpected {t.describe()}", t.pos)
        return node

    def expression(self) -> _Node:
        return self.level(1)

    def level(self, lvl: int) -> _Node:
        if lvl > _MAX_LEVEL:
            return self.unary()
        left = self.level(lvl + 1)
        rest: list[tuple[str, _Node]] = []
        while True:
            t = self.tok
            if t.kind != OP or _LEVELS.get(t.value) != lvl:
                break
            self.advance()
            if self.tok.kind == EOF:
                raise ExprError(f"expected an operand after '{t.text}'", self.tok.pos)
            rest.append((t.value, self.level(lvl + 1)))
        return _chain(left, rest) if rest else left

    def unary(self) -> _Node:
        t = self.tok
        if t.kind == OP and t.value in ("!", "-"):
            self.advance()
            self.enter(t.pos)
            operand = self.unary()
            self.leave()
            return _unary(t.value, operand)
        return self.postfix()

    def postfix(self) -> _Node:
        node = self.primary()
        count = 0
        while self.is_punct("["):
            t = self.advance()
            count += 1
            if count > MAX_NESTING:
                raise ExprError(f"too many array indexes in a row (more than {MAX_NESTING})", t.pos)
            self.enter(t.pos)
            if self.is_punct("]"):
                raise ExprError("missing array index", self.tok.pos)
            index = self.expression()
            self.expect("]", "']'")
            self.leave()
            node = _index_node(node, index)
        return node

    def primary(self) -> _Node:
        t = self.tok
        if t.kind == NUM or t.kind == STR:
            self.advance()
            return _const(t.value)
        if t.kind == PUNCT and t.value == "(":
            self.advance()
            self.enter(t.pos)
            if self.is_punct(")"):
                raise ExprError("empty parentheses", self.tok.pos)
            node = self.expression()
            self.expect(")", "')'")
            self.leave()
            return node
        if t.kind == PUNCT and t.value == "[":
            self.advance()
            self.enter(t.pos)
            items = self.arguments("]")
            self.leave()
            return _array_node(items)
        if t.kind == IDENT:
            return self.identifier()
        if t.kind == EOF:
            raise ExprError("unexpected end of expression", t.pos)
        raise ExprError(f"unexpected {t.describe()}", t.pos)

    def arguments(self, close: str) -> list[_Node]:
        """Comma-separated expressions up to ``close``; the opening bracket is consumed."""
        items: list[_Node] = []
        if self.is_punct(close):
            self.advance()
            return items
        while True:
            items.append(self.expression())
            t = self.tok
            if t.kind == PUNCT and t.value == close:
                self.advance()
                return items
            if t.kind == PUNCT and t.value == ",":
                self.advance()
                continue
            if t.kind == EOF:
                raise ExprError(f"expected '{close}'", t.pos)
            raise ExprError(f"expected ',' or '{close}'", t.pos)

    def identifier(self) -> _Node:
        t = self.advance()
        name = t.value
        calls = self.is_punct("(")
        if calls:
            if name in FUNCTIONS:
                return self.call(t)
            if name in UNAVAILABLE_FUNCTIONS:
                raise ExprError(f"function '{name}' is not available in this context", t.pos)
            raise ExprError(f"unknown function '{name}'", t.pos)
        if name == "true":
            return _const(1)
        if name == "false":
            return _const(0)
        if name in self.variables:
            return _var_node(name)
        if name in FUNCTIONS or name in UNAVAILABLE_FUNCTIONS:
            raise ExprError(f"expected '(' after function '{name}'", self.tok.pos)
        if name.startswith("$"):
            raise ExprError(f"positional and global variables such as '{name}' are not supported", t.pos)
        m = _DURATION.fullmatch(name)
        if m:
            return _const(int(m.group(1)) * _DURATION_MS[m.group(2)])
        raise ExprError(f"unknown variable '{name}'", t.pos)

    def call(self, name_tok: _Tok) -> _Node:
        name = name_tok.value
        open_tok = self.advance()  # '('
        self.enter(open_tok.pos)
        arity, _ = FUNCTIONS[name]
        if name == "matches":
            node = self.call_matches(name_tok)
            self.leave()
            return node
        arg_toks: list[_Tok] = []
        args: list[_Node] = []
        if self.is_punct(")"):
            self.advance()
        else:
            while True:
                arg_toks.append(self.tok)
                args.append(self.expression())
                t = self.tok
                if t.kind == PUNCT and t.value == ")":
                    self.advance()
                    break
                if t.kind == PUNCT and t.value == ",":
                    self.advance()
                    continue
                if t.kind == EOF:
                    raise ExprError("expected ')'", t.pos)
                raise ExprError("expected ',' or ')'", t.pos)
        self.leave()
        if len(args) != arity:
            plural = "argument" if arity == 1 else "arguments"
            raise ExprError(f"function '{name}' takes {arity} {plural}, got {len(args)}", name_tok.pos)
        if name == "is_ip_in_cidr" and args[1].const and _parse_mask(_to_str(args[1].value)) is None:
            raise ExprError(
                f"invalid network {_to_str(args[1].value)!r} (expected an IP address or CIDR such as "
                "'10.0.0.0/8'; prefixes are 8-32 for IPv4, 8-128 for IPv6)", arg_toks[1].pos)
        return _call(name, args)

    def call_matches(self, name_tok: _Tok) -> _Node:
        pattern_tok = self.tok
        if pattern_tok.kind != STR:
            if pattern_tok.kind == PUNCT and pattern_tok.value == ")":
                raise ExprError("function 'matches' takes 2 arguments, got 0", name_tok.pos)
            raise ExprError("function 'matches' needs a string literal (the regular expression) as its "
                            "first argument", pattern_tok.pos)
        self.advance()
        pattern = pattern_tok.value
        if len(pattern) > MAX_REGEX_LENGTH:
            raise ExprError(f"regular expression is too long ({len(pattern)} characters, at most "
                            f"{MAX_REGEX_LENGTH})", pattern_tok.pos)
        try:
            regex = _compile_linear(pattern)
        except (re2.error, OverflowError, RecursionError, ValueError, TypeError) as exc:
            raise ExprError(f"invalid regular expression: {_re2_message(exc)}", pattern_tok.pos) from None
        t = self.tok
        if t.kind == PUNCT and t.value == ")":
            raise ExprError("function 'matches' takes 2 arguments, got 1", name_tok.pos)
        if not (t.kind == PUNCT and t.value == ","):
            raise ExprError("expected ','" if t.kind != EOF else "expected ')'", t.pos)
        self.advance()
        args = self.arguments(")")
        if len(args) != 1:
            raise ExprError(f"function 'matches' takes 2 arguments, got {len(args) + 1}", name_tok.pos)
        value = args[0]
        re2_search = regex.search

        def search(text):
            try:
                return re2_search(text)
            except UnicodeEncodeError:
                # RE2 works on UTF-8, which cannot carry a lone surrogate (from a JSON literal).
                return re2_search(text.encode("utf-8", "replace").decode("utf-8"))

        if value.const:
            return _const(1 if search(_to_str(value.value)) else 0)
        f = value.fn

        def matches(ctx):
            v = f(ctx)
            return 1 if search(v if v.__class__ is str else _to_str(v)) else 0
        return _Node(matches)


# Rules run on every request, so a pattern such as '^/(a+)+$' must not backtrack (Python's re
# took seconds on a 27-character path). RE2 matches in time linear in the input, like the
# reference's Rust regex crate, and likewise refuses back-references and look-around.
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


def _compile_linear(pattern: str):
    return re2.compile(pattern, options=_RE2_OPTIONS)


def _re2_message(exc) -> str:
    detail = exc.args[0] if exc.args else exc
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", "replace")
    return str(detail)


# --- public API --------------------------------------------------------------------------------
class Expr:
    """One compiled expression."""

    __slots__ = ("source", "_fn", "is_constant", "_value")

    def __init__(self, source: str, node: _Node):
        self.source = source
        self._fn = node.fn
        self.is_constant = node.const
        self._value = node.value

    def evaluate(self, ctx: Mapping[str, Any]):
        if self.is_constant:
            return self._value
        try:
            return self._fn(ctx)
        except EvalError:
            raise
        except Exception as exc:  # RecursionError and MemoryError included
            raise EvalError(f"{type(exc).__name__}: {exc}") from exc

    def __repr__(self) -> str:
        return f"Expr({self.source!r})"


def compile_expression(source: str, variables: Iterable[str] = HTTP_VARIABLES) -> Expr:
    if not isinstance(source, str):
        raise ExprError("an expression must be a string", 0)
    if len(source) > MAX_SOURCE_LENGTH:
        raise ExprError(f"expression is too long ({len(source)} characters, at most {MAX_SOURCE_LENGTH})",
                        MAX_SOURCE_LENGTH, limit=True)
    if "\x00" in source:
        raise ExprError("unexpected character '\\x00'", source.index("\x00"))
    names = variables if isinstance(variables, frozenset) else frozenset(variables)
    try:
        node = _Parser(source, names).parse()
    except RecursionError:
        raise ExprError("expression is nested too deeply", 0) from None
    return Expr(source, node)


class Rule:
    """A compiled Expression object: the first ``then`` whose ``if`` is true, else ``else``."""

    __slots__ = ("branches", "otherwise")

    def __init__(self, branches: list[tuple[Expr, Expr]], otherwise: Expr):
        self.branches = branches
        self.otherwise = otherwise

    def evaluate(self, ctx: Mapping[str, Any]):
        for condition, then in self.branches:
            if condition.evaluate(ctx):
                return then.evaluate(ctx)
        return self.otherwise.evaluate(ctx)

    def __repr__(self) -> str:
        return f"Rule({len(self.branches)} branches, else {self.otherwise.source!r})"


def _compile_part(value, part: str, names: frozenset) -> Expr:
    if not isinstance(value, str):
        raise ExprError(f"must be a string holding an expression, not {_json_type(value)}", None, part)
    try:
        return compile_expression(value, names)
    except ExprError as exc:
        exc.part = part
        raise


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def compile_rule(obj, variables: Iterable[str] = HTTP_VARIABLES) -> Rule:
    """Compile ``{"match": [{"if": ..., "then": ...}, ...], "else": ...}``. ``match`` may be a
    list or an object keyed "0", "1", ... (taken in numeric order) and may be absent."""
    names = variables if isinstance(variables, frozenset) else frozenset(variables)
    if not isinstance(obj, Mapping):
        raise ExprError(f"an expression must be an object with 'match' and 'else', not {_json_type(obj)}")
    for key in obj:
        if key not in ("match", "else"):
            raise ExprError(f"unknown property {key!r} (expected 'match' and 'else')", None, str(key))
    raw = obj.get("match")
    entries: list[tuple[str, Any]] = []
    if raw is None:
        pass
    elif isinstance(raw, (list, tuple)):
        entries = [(str(i), item) for i, item in enumerate(raw)]
    elif isinstance(raw, Mapping):
        keyed = []
        for key, item in raw.items():
            if not isinstance(key, str) or not key.isascii() or not key.isdigit():
                raise ExprError(f"keys must be \"0\", \"1\", ..., not {key!r}", None, "match")
            keyed.append((int(key), key, item))
        keyed.sort(key=lambda entry: entry[0])
        entries = [(key, item) for _, key, item in keyed]
    else:
        raise ExprError(f"must be a list of {{\"if\", \"then\"}} objects, not {_json_type(raw)}", None, "match")
    branches: list[tuple[Expr, Expr]] = []
    for key, item in entries:
        part = f"match/{key}"
        if not isinstance(item, Mapping):
            raise ExprError(f"must be an object with 'if' and 'then', not {_json_type(item)}", None, part)
        for k in item:
            if k not in ("if", "then"):
                raise ExprError(f"unknown property {k!r} (expected 'if' and 'then')", None, part)
        for k in ("if", "then"):
            if k not in item:
                raise ExprError(f"missing '{k}'", None, part)
        branches.append((_compile_part(item["if"], f"{part}/if", names),
                         _compile_part(item["then"], f"{part}/then", names)))
    if "else" not in obj:
        raise ExprError("missing 'else'", None, "else")
    otherwise = _compile_part(obj["else"], "else", names)
    return Rule(branches, otherwise)
