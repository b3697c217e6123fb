"""Whatever the text, `validate` answers None or a SieveError, and a script it accepts runs to a
Result: a mangled upload is never a crash (a 5xx for JMAP, a lost message for delivery)."""
from __future__ import annotations

import random

from sieve import Envelope, Limits, Message, SieveError, account_capability, evaluate, parse, validate
from sieve.tests.test_evaluate import CASES, LIST, MULTIPART, PLAIN, SPAM

ALPHABET = list('{}[](),;:"\\#*/\n $.') + ["if", "text:\n", "${", "require", ":matches", "0", "9K", "é", "\ud800"]


def _mutations(seed: int, count: int):
    rng = random.Random(seed)
    scripts = [case[1] for case in CASES if case[1]]
    for _ in range(count):
        text = rng.choice(scripts)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(text) + 1)
            if rng.random() < 0.5:
                text = text[:at] + rng.choice(ALPHABET) + text[at:]
            else:
                text = text[:at] + text[at + rng.randint(1, 5):]
        yield text


def test_mangled_scripts_never_crash():
    messages = [Message.from_bytes(raw) for raw in (PLAIN, SPAM, LIST, MULTIPART)]
    envelope = Envelope("a@b.example", "me@example.com")
    accepted = refused = 0
    for text in _mutations(seed=5228, count=3000):
        error = validate(text)
        if error is None:
            accepted += 1
            script = parse(text)
            for message in messages:
                result = evaluate(script, message, envelope)
                assert result.actions, text
        else:
            refused += 1
            assert isinstance(error, SieveError)
            assert error.line >= 1 and error.column >= 1, (text, error)
    # Both outcomes are exercised, so the test can fail either way.
    assert accepted > 100 and refused > 100


def test_account_capability_matches_the_library():
    capability = account_capability(Limits(max_script_size=2048, max_redirects=3))
    assert capability["maxSizeScript"] == 2048 and capability["maxNumberRedirects"] == 3
    assert capability["sieveExtensions"] == sorted(capability["sieveExtensions"])
    for extension in capability["sieveExtensions"]:
        assert validate(f'require "{extension}";') is None
    assert validate('require "enotify";') is not None and capability["notificationMethods"] is None
