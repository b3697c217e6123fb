"""Sieve (RFC 5228 and the extensions in CAPABILITIES): validate scripts, run them on a message.

    error = validate(text)                 # None, or SieveError (line, column, message)
    script = parse(text)                   # raises SieveError; keep it to run it many times
    result = evaluate(script, Message.from_bytes(raw), Envelope(mail_from, rcpt_to))
    result.actions                         # [Keep, FileInto, Redirect, Reject, Vacation, Discard]

A pure library: it imports nothing else of ours, so delivery and the SieveScript objects build
on it from any layer. See docs/sieve.md."""
from .capability import account_capability
from .errors import SieveError, SieveRuntimeError
from .grammar import CAPABILITIES, Script, parse, validate
from .interpreter import Discard, FileInto, Keep, Redirect, Reject, Result, Vacation, evaluate
from .limits import Limits
from .message import Envelope, Message, Part

__all__ = [
    "CAPABILITIES", "Discard", "Envelope", "FileInto", "Keep", "Limits", "Message", "Part",
    "Redirect", "Reject", "Result", "Script", "SieveError", "SieveRuntimeError", "Vacation",
    "account_capability", "evaluate", "parse", "validate",
]
