"""`manage.py relay test` against an aiosmtpd sink: the probe, a test message with a refused
recipient (exit status 1), a dead relay, a missing route; the secret never printed."""
from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from submission.models import MtaRoute
from tests.live import free_port

from .sinks import PASSWORD, USER, self_signed, server_context, sink

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def ehlo_name(settings):
    settings.SUBMISSION_EHLO_NAME = "mail.example.org"


def run(*args) -> str:
    out = io.StringIO()
    call_command("relay", "test", *args, stdout=out)
    return out.getvalue()


def test_probe_and_send(tmp_path):
    tls = server_context(*self_signed(tmp_path))
    with sink(starttls=tls, auth=True) as (handler, port):
        MtaRoute.objects.create(name="relay", address="127.0.0.1", port=port, start_tls="require",
                                allow_invalid_certs=True, auth_username=USER, auth_secret_kind="value",
                                auth_secret=PASSWORD, timeout=dt.timedelta(seconds=5))
        probed = run()
        assert "relay: 127.0.0.1" in probed and "STARTTLS" in probed and PASSWORD not in probed
        assert handler.received == []
        sent = run("--from", "bob@example.org", "--to", "carol@example.net")
        assert "carol@example.net: sent (data, 250)" in sent
        with pytest.raises(SystemExit) as exit_:
            run("--from", "bob@example.org", "--to", "carol@example.net", "--to", "permfail@example.net")
        assert exit_.value.code == 1
    assert [r.rcpt_tos for r in handler.received] == [["carol@example.net"], ["carol@example.net"]]
    assert b"Subject: Relay test" in handler.received[0].content


def test_dead_relay_and_missing_route():
    with pytest.raises(CommandError, match='No route named "relay"'):
        run()
    MtaRoute.objects.create(name="backup", address="127.0.0.1", port=free_port(), start_tls="disable",
                            timeout=dt.timedelta(seconds=5))
    with pytest.raises(CommandError, match="backup: connect: cannot connect"):
        run("--route", "backup")
    with pytest.raises(CommandError, match="--to needs --from"):
        run("--route", "backup", "--to", "x@example.net")
