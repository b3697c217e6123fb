"""JMAP ids as the reference writes them: a number in base 32, most significant digit first,
with the alphabet a–z then 7 9 2 0 1 3 (0 is "a", 1 is "b", 32 is "ba")."""
from __future__ import annotations

ALPHABET = "abcdefghijklmnopqrstuvwxyz792013"
_INDEX = {c: i for i, c in enumerate(ALPHABET)}
MAX_ID = 2**63 - 1
SINGLETON = "singleton"


def encode(number: int) -> str:
    if number < 0:
        raise ValueError("ids are not negative")
    if number == 0:
        return "a"
    out = []
    while number:
        number, digit = divmod(number, 32)
        out.append(ALPHABET[digit])
    return "".join(reversed(out))


def decode(text) -> int | None:
    """The number an id stands for, or None when it is not a well-formed id."""
    if not isinstance(text, str) or not 0 < len(text) <= 13:
        return None
    value = 0
    for char in text:
        digit = _INDEX.get(char)
        if digit is None:
            return None
        value = value * 32 + digit
    return value if value <= MAX_ID else None
