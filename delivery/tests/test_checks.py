"""delivery's system checks refuse settings that would break mail in at start, not per message."""
from __future__ import annotations

import pytest
from django.core import checks

pytestmark = pytest.mark.django_db


def ids():
    return {e.id for e in checks.run_checks() if e.id.startswith("delivery.")}


def test_the_defaults_pass():
    assert ids() == set()


def test_bad_settings_are_refused(settings):
    settings.LMTP_PORT = 70000
    settings.LMTP_MAX_MESSAGE_SIZE = 10
    settings.SIEVE_LIMITS = {"max_steps": 10, "no_such_limit": 1}
    settings.SIEVE_MAX_SCRIPTS = 0
    assert ids() == {"delivery.E001", "delivery.E002", "delivery.E003", "delivery.E004"}
