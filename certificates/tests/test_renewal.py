"""When a certificate is due, what `renew` does, and the `acme` command's other faces (no CA:
the order itself is stubbed here; test_pebble.py runs real ones)."""
import datetime as dt

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from certificates import services
from certificates.management.commands.acme import parse_interval
from certificates.models import AcmeProvider, Certificate
from registry import ids

pytestmark = pytest.mark.django_db
NOW = timezone.now()


def provider(**fields):
    return AcmeProvider.objects.create(**{"contact": ["a@example.org"], "domains": ["mail.example.org"], **fields})


def cert(p, elapsed_days, lifetime_days=90, names=None):
    return Certificate.objects.create(
        provider=p, names=names or p.domains, not_before=NOW - dt.timedelta(days=elapsed_days),
        not_after=NOW - dt.timedelta(days=elapsed_days) + dt.timedelta(days=lifetime_days), chain="c",
        private_key="k")


@pytest.mark.parametrize("renew_before, elapsed, due", [
    ("R12", 44, False), ("R12", 46, True),
    ("R23", 59, False), ("R23", 61, True),
    ("R34", 67, False), ("R34", 68, True),
    ("R45", 71, False), ("R45", 73, True),
])
def test_due_after_the_fraction_of_the_lifetime(renew_before, elapsed, due):
    p = provider(renew_before=renew_before)
    cert(p, elapsed)
    assert (services.due_reason(p, NOW) is not None) == due


def test_due_without_certificate_with_changed_names_or_expired():
    p = provider()
    assert services.due_reason(p, NOW) == "no certificate yet"
    cert(p, 1, names=["old.example.org"])
    assert services.due_reason(p, NOW) == "the names changed"
    cert(p, 1)
    assert services.due_reason(p, NOW) is None  # the newest counts
    q = provider(domains=["other.example.org"])
    cert(q, 100)
    assert services.due_reason(q, NOW) == "expired"


@pytest.fixture
def orders(monkeypatch):
    """Stub the ACME order: record who asked, fail for the providers listed in `fail`."""
    calls, fail = [], set()

    def obtain(p, *, actor="acme", ca_bundle=None, timeout=90):
        calls.append(p.pk)
        if p.pk in fail:
            AcmeProvider.objects.filter(pk=p.pk).update(failures=p.failures + 1, last_error="refused")
            raise services.AcmeFailure("refused")
        return cert(p, 0)

    monkeypatch.setattr(services, "obtain", obtain)
    return calls, fail


def test_renew_due_orders_only_what_is_due(orders):
    calls, fail = orders
    due, fresh, none_yet = provider(), provider(domains=["b.example.org"]), provider(domains=["c.example.org"])
    cert(due, 61)
    cert(fresh, 1)
    outcomes = services.renew_due(now=NOW)
    assert calls == [due.pk, none_yet.pk]
    assert [(o.provider.pk, o.action) for o in outcomes] == [(due.pk, "renewed"), (none_yet.pk, "renewed")]
    calls.clear()
    assert services.renew_due() == [] and calls == []


def test_failing_provider_is_skipped_after_max_retries(orders):
    calls, fail = orders
    p = provider(max_retries=1)
    fail.add(p.pk)
    assert [o.action for o in services.renew_due()] == ["failed"]
    assert [o.action for o in services.renew_due()] == ["failed"]
    skipped = services.renew_due()
    assert [o.action for o in skipped] == ["skipped"] and "refused" in skipped[0].detail
    assert calls == [p.pk, p.pk]
    # Non-HTTP-01 providers (from an imported configuration) are never ordered for.
    AcmeProvider.objects.filter(pk=p.pk).update(challenge_type="Dns01")
    assert services.renew_due() == []


# The loop closes its database connections between rounds (it sleeps for hours): on PostgreSQL
# that ends a test's enclosing transaction, so this test commits for real.
@pytest.mark.django_db(transaction=True)
def test_command_renew_status_and_loop(orders, capsys):
    calls, _ = orders
    p = provider()
    call_command("acme", "status")
    out = capsys.readouterr().out
    assert "renewal: due: no certificate yet" in out and "(not registered yet)" in out
    call_command("acme", "renew", "--loop", "--interval", "0.01s", "--rounds", "2")
    out = capsys.readouterr().out
    assert f"{ids.encode(p.pk)}: renewed: no certificate yet" in out and out.count("Nothing is due.") == 1
    assert calls == [p.pk]
    call_command("acme", "status")
    assert "expires in 89 day(s)" in capsys.readouterr().out
    with pytest.raises(CommandError):
        call_command("acme", "obtain")
    with pytest.raises(CommandError, match="No ACME provider"):
        call_command("acme", "obtain", "zz")


def test_obtain_refuses_names_this_server_would_answer_400_for(settings):
    settings.ALLOWED_HOSTS = ["localhost"]
    p = provider()
    with pytest.raises(services.AcmeFailure, match="ALLOWED_HOSTS"):
        services.obtain(p)
    p.refresh_from_db()
    assert p.failures == 1 and "ALLOWED_HOSTS" in p.last_error


def test_parse_interval():
    assert parse_interval("12h") == 43200 and parse_interval("30m") == 1800 and parse_interval("90") == 90
    assert parse_interval("1d") == 86400
    for bad in ("", "h", "-1h", "0", "12w"):
        with pytest.raises(CommandError):
            parse_interval(bad)
