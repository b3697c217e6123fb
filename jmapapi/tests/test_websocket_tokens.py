"""The WebSocket token's grant and the pushState codec (jmapapi.websocket); the connection itself
is tested live, through a real client (tests/test_websocket_live.py)."""
from __future__ import annotations

import pytest
from django.core import signing

from accounts import login
from accounts.authz import account_permissions
from accounts.http_auth import Principal
from jmapapi import push, push_views, websocket


def principal_of(account, permissions=None) -> Principal:
    return Principal(account_id=account.pk, name=account.email_address,
                     permissions=frozenset(account_permissions(account) if permissions is None else permissions))


def test_a_token_carries_the_credentials_permissions_and_no_more(make_account):
    account = make_account("wstok")
    full = account_permissions(account)
    account_id, granted = websocket.token_grant(websocket.mint_token(principal_of(account)))
    assert (account_id, granted) == (account.pk, full)
    # A credential limited to mail mints a token limited to mail.
    narrow = {"authenticate", "jmapMailboxGet", "jmapEmailGet"}
    _, granted = websocket.token_grant(websocket.mint_token(principal_of(account, narrow)))
    assert granted == narrow & full
    caller = websocket.Caller(account.pk, "127.0.0.1", granted=granted)
    assert caller.verify().permissions == narrow & full
    # Used, it never gives what the account itself lost.
    account.is_active = False
    account.save()
    with pytest.raises(login.AuthError):
        caller.verify()


def test_tokens_of_another_kind_or_altered_are_refused(make_account):
    account = make_account("wstok2")
    es_token = push_views.mint_token(principal_of(account))
    with pytest.raises(websocket.TokenError):
        websocket.token_grant(es_token)
    with pytest.raises(push_views.TokenError):
        push_views.token_caller(websocket.mint_token(principal_of(account)))
    ws_token = websocket.mint_token(principal_of(account))
    for bad in (ws_token[:-3] + "abc", ws_token + "x", "", "x" * 3000,
                signing.dumps({"k": "websocket", "a": account.pk, "c": 0, "p": "__8"}, salt=websocket.TOKEN_SALT)):
        with pytest.raises(websocket.TokenError):
            websocket.token_grant(bad)


def test_an_expired_token_is_refused(make_account, settings):
    account = make_account("wstok3")
    token = websocket.mint_token(principal_of(account))
    settings.EVENTSOURCE_TOKEN_TTL = -1
    with pytest.raises(websocket.TokenError, match="expired"):
        websocket.token_grant(token)


def test_push_state_round_trip_and_garbage():
    known = {"Mailbox": 17, "Email": 4, "CalendarAlert": 0}
    encoded = websocket.encode_push_state(known)
    assert websocket.decode_push_state(encoded) == known
    assert websocket.decode_push_state("") == {}
    for garbage in (None, 5, "x", "1:", ":1", "99:1", "1:-1", "1:1e3", "1:" + "9" * 20, "٣:1", "a" * 2000):
        assert websocket.decode_push_state(garbage) is None, garbage
    assert set(push.DATA_TYPES) >= set(known)
