"""The password policy of the Authentication settings."""
from __future__ import annotations

from dataclasses import dataclass, field

from zxcvbn import zxcvbn

from .models import STRENGTH_SCORE, Authentication

# zxcvbn's matching grows quickly with length; beyond this many characters the prefix is scored
# (a long password is not weak unless its beginning already is).
_ZXCVBN_MAX = 100


@dataclass
class PolicyViolation(Exception):
    rule: str  # "maxLength" | "minLength" | "strength"
    message: str
    suggestions: list[str] = field(default_factory=list)
    warning: str = ""

    def __str__(self):
        return self.message


def check_password(password: str, settings: Authentication | None = None, user_inputs=()) -> None:
    """Raise PolicyViolation when `password` breaks the policy.

    Lengths count UTF-8 bytes, as the reference does. zxcvbn is given the account's own names
    and addresses, so that a password made of them is judged weak.
    """
    settings = settings or Authentication.load()
    size = len(password.encode("utf-8"))
    if size > settings.password_max_length:
        raise PolicyViolation("maxLength", f"Password must be at most {settings.password_max_length} characters long.")
    if size < settings.password_min_length:
        raise PolicyViolation("minLength", f"Password must be at least {settings.password_min_length} characters long.")
    minimum = STRENGTH_SCORE[settings.password_min_strength]
    if minimum == 0:
        return
    inputs = [str(item) for item in user_inputs if item]
    for item in list(inputs):
        inputs.extend(part for part in item.replace("@", " ").replace(".", " ").split() if len(part) > 2)
    sample = password[:_ZXCVBN_MAX]
    result = zxcvbn(sample, user_inputs=inputs, max_length=len(sample))
    if result["score"] < minimum:
        feedback = result.get("feedback") or {}
        warning = feedback.get("warning") or ""
        suggestions = list(feedback.get("suggestions") or [])
        message = " ".join(["Password is too weak.", warning, *suggestions]).strip()
        raise PolicyViolation("strength", message, suggestions=suggestions, warning=warning)
