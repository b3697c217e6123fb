"""Web Push in process: which addresses push URLs may reach (stalwart_site/egress.py), the key
checks, and that a journaled write hands its states over after the commit, with no query in the
request. The protocol end to end, with a push service, is in test_webpush_live.py."""
from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from jmapapi import webpush
from journal import notify
from journal import services as journal
from stalwart_site import egress


@pytest.mark.parametrize("address, allowed", [
    ("93.184.215.14", True), ("2606:4700::6810:84e5", True),
    ("127.0.0.1", False), ("127.8.9.10", False), ("::1", False), ("0.0.0.0", False), ("::", False),
    ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.0.1", False), ("fd00:ec2::254", False),
    ("169.254.169.254", False), ("fe80::1", False), ("100.64.0.1", False), ("192.0.2.1", False),
    ("224.0.0.1", False), ("ff02::1", False), ("::ffff:127.0.0.1", False), ("::ffff:10.0.0.1", False),
    ("::ffff:93.184.215.14", True), ("240.0.0.1", False), ("255.255.255.255", False),
    ("64:ff9b::7f00:1", False), ("64:ff9b::808:808", True), ("2002:7f00:1::1", False), ("2002:808:808::1", True),
    ("fd00::1", False), ("100.100.100.200", False),
])
def test_only_public_addresses_are_reached(address, allowed, settings):
    settings.EGRESS_ALLOWED_NETWORKS = []
    assert egress.address_allowed(address) is allowed


def test_the_operator_may_let_a_network_through(settings):
    settings.EGRESS_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    assert egress.address_allowed("10.20.3.4")
    assert not egress.address_allowed("10.21.3.4")
    assert not egress.address_allowed("127.0.0.1")


@pytest.mark.parametrize("url", [
    "http://example.com/", "HTTP://example.com/", "ftp://example.com/", "//example.com/", "https://",
    "https://user@example.com/", "https://a:b@example.com/", "https://example.com:99999/",
    "https://exa mple.com/", "https://example.com/\r\nX: y", None, 7, "https://" + "a" * 3000 + ".com/",
])
def test_urls_refused_before_any_lookup(url):
    with pytest.raises(egress.Refused):
        egress.parse(url)


def test_a_literal_private_address_is_refused_at_resolution(settings):
    settings.EGRESS_ALLOWED_NETWORKS = []
    # Loopback spelt in the forms inet_aton accepts resolves to loopback, and is refused as such.
    for url in ("https://127.0.0.1/x", "https://[::1]:8443/x", "https://169.254.169.254/latest",
                "https://0177.0.0.1/x", "https://2130706433/x", "https://0x7f000001/x", "https://[64:ff9b::7f00:1]/x"):
        with pytest.raises(egress.Refused):
            egress.resolve(url)


def test_target_origin_and_path(settings):
    settings.EGRESS_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    target = egress.resolve("https://127.0.0.1:8443/push/a?b=c")
    assert (target.origin, target.path, target.address) == ("https://127.0.0.1:8443", "/push/a?b=c", "127.0.0.1")
    assert egress.resolve("https://127.0.0.1/").origin == "https://127.0.0.1"


def test_keys_are_checked():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    webpush.check_keys(webpush.b64url(point), webpush.b64url(bytes(16)))
    for p256dh, auth in [(webpush.b64url(point[:-1]), webpush.b64url(bytes(16))),
                         (webpush.b64url(b"\x04" + bytes(64)), webpush.b64url(bytes(16))),
                         (webpush.b64url(point), webpush.b64url(bytes(15))),
                         ("+" + webpush.b64url(point)[1:], webpush.b64url(bytes(16))),  # base64, not base64url
                         (None, webpush.b64url(bytes(16)))]:
        with pytest.raises(ValueError):
            webpush.check_keys(p256dh, auth)


def test_listeners_hear_a_write_after_its_commit_and_the_request_makes_no_query_for_them(
        make_account, django_capture_on_commit_callbacks, monkeypatch):
    account = make_account("wplisten")
    monkeypatch.setattr(notify, "_listeners", [])  # this test's listener alone
    heard = []

    def listener(account_id, states):
        heard.append((account_id, dict(states)))

    notify.listen(listener)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            with transaction.atomic():
                journal.record(account.pk, "Mailbox", created=["m1"])
            assert heard == []  # not before the (outermost) commit
        assert heard and heard[-1][0] == account.pk and heard[-1][1]["Mailbox"] >= 1
        told = len(heard)
        with django_capture_on_commit_callbacks(execute=True):
            with transaction.atomic():
                journal.record(account.pk, "Mailbox", created=["m2"])
                transaction.set_rollback(True)
        assert len(heard) == told  # a rolled-back write is never told
    finally:
        notify._listeners.remove(listener)


def test_web_push_hears_the_journal_and_queues_without_a_query(db):
    assert webpush.changed in notify._listeners
    # Outside a request (LMTP, a command): queued without a query; the sending thread looks.
    with CaptureQueriesContext(connection) as queries:
        webpush.changed(10 ** 9, {"Mailbox": 5})
    assert len(queries) == 0


def _subscribe(account, verified=True):
    """A subscription as PushSubscription/set leaves it once its code was echoed."""
    import datetime as dt

    from django.utils import timezone

    from jmapapi.models import PushSubscription

    with transaction.atomic():
        PushSubscription.objects.create(account=account, device_client_id="d", url="https://push.example/x",
                                        verification_code="c", verified=verified,
                                        expires=timezone.now() + dt.timedelta(days=1))
        webpush.subscriptions_changed()


def _seen(account_id) -> bool:
    """Whether the dispatcher was ever handed the account (queued, due, or already sent)."""
    d = webpush.dispatcher
    with d._cond:
        return account_id in d._pending or account_id in d._due or account_id in d._last


@pytest.fixture
def own_dispatcher(monkeypatch):
    """A dispatcher of this test's own: what it was handed is this test's alone."""
    monkeypatch.setattr(webpush, "dispatcher", webpush.Dispatcher())
    return webpush.dispatcher


def test_an_account_without_a_subscription_costs_no_query(make_account, own_dispatcher):
    from registry import context

    subscribed, other, unverified = make_account("wpsub"), make_account("wpnone"), make_account("wpunver")
    _subscribe(subscribed)
    _subscribe(unverified, verified=False)
    # The sending thread builds the worker's set of subscribed accounts (one state read, one
    # query for the set), then only reads the state: never another account's subscriptions.
    with CaptureQueriesContext(connection) as queries:
        webpush.deliver_changes(other.pk, {"Mailbox": 1})
    assert len(queries) == 2
    assert webpush.subscribed_accounts() == {subscribed.pk}
    with CaptureQueriesContext(connection) as queries:
        webpush.deliver_changes(other.pk, {"Mailbox": 2})
    from jmapapi.models import PushSubscription

    assert len(queries) == 1 and PushSubscription._meta.db_table not in queries[0]["sql"]
    # In a request, whose edge read the state with the others (its one query), the changes of
    # accounts outside the set cost nothing, whatever their number, and are never queued.
    ctx, token = context.begin()
    try:
        with CaptureQueriesContext(connection) as queries:
            for account in (other, unverified, other):
                webpush.changed(account.pk, {"Mailbox": 3})
        assert len(queries) == 0
    finally:
        context.end(token)
    assert not _seen(other.pk) and not _seen(unverified.pk)


def test_a_verification_elsewhere_reaches_the_set(make_account, own_dispatcher):
    from registry import context

    account, other = make_account("wplater"), make_account("wpother")
    assert account.pk not in webpush.subscribed_accounts()
    # Verified by another worker or process: the state it moved is read at the next request's
    # edge, where the set, stale, is not used: a change of any account is queued (still without a
    # query), even one the stale set would drop...
    _subscribe(account)
    ctx, token = context.begin()
    try:
        with CaptureQueriesContext(connection) as queries:
            webpush.changed(other.pk, {"Mailbox": 1})
        assert len(queries) == 0
    finally:
        context.end(token)
    assert _seen(other.pk)
    # ... and the sending thread builds it again, with the account.
    assert account.pk in webpush.subscribed_accounts()
