"""Who opens a live stream (network.live_token.stream_caller): every stream that takes a
`?token=` (the JMAP EventSource, the delivery test, live tracing and live metrics) answers a
token, credentials, and both at once the same way, through Django's test client."""
from __future__ import annotations

import pytest

from tests.clients import basic

# kind -> a URL of its stream (bad parameters would answer 400 only after the caller is known).
STREAMS = {
    "eventsource": "/jmap/eventsource/?types=*&closeafter=no&ping=0",
    "delivery": "/api/live/delivery/tls.test",
    "tracing": "/api/live/tracing",
    "metrics": "/api/live/metrics",
}
PERMISSION = {"eventsource": None, "delivery": "liveDeliveryTest", "tracing": "liveTracing",
              "metrics": "liveMetrics"}


@pytest.fixture
def users(make_account):
    from accounts.models import Account

    make_account("admin", roles_mode=Account.RolesMode.ADMIN)
    make_account("bob")
    return basic("admin@example.org"), basic("bob@example.org")


def mint(client, auth: str, kind: str) -> str:
    response = client.get(f"/api/token/{kind}", HTTP_AUTHORIZATION=auth)
    assert response.status_code == 200, response.content
    return response.content.decode()


def with_token(url: str, token: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}token={token}"


@pytest.mark.parametrize("kind", list(STREAMS))
def test_a_token_with_another_accounts_credentials_is_403(client, users, kind):
    admin, bob = users
    response = client.get(with_token(STREAMS[kind], mint(client, admin, kind)), HTTP_AUTHORIZATION=bob)
    assert response.status_code == 403, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["detail"] == "The token belongs to another account than the credentials sent with it."


@pytest.mark.parametrize("kind", list(STREAMS))
def test_a_token_with_credentials_that_fail_is_401(client, users, kind):
    admin, _bob = users
    response = client.get(with_token(STREAMS[kind], mint(client, admin, kind)),
                          HTTP_AUTHORIZATION=basic("admin@example.org", "wrong-password"))
    assert response.status_code == 401, response.content
    assert "WWW-Authenticate" in response


@pytest.mark.parametrize("kind", list(STREAMS))
def test_a_bad_token_is_401_with_the_challenges(client, users, kind):
    response = client.get(with_token(STREAMS[kind], "not-a-token"))
    assert response.status_code == 401, response.content
    assert response.json()["detail"] == "The token is not valid."
    assert response["WWW-Authenticate"].startswith("Bearer ")
    assert client.get(STREAMS[kind]).status_code == 401


@pytest.mark.parametrize("kind", [kind for kind in STREAMS if PERMISSION[kind]])
def test_credentials_without_the_kinds_permission_are_403_naming_it(client, users, kind):
    _admin, bob = users
    response = client.get(STREAMS[kind], HTTP_AUTHORIZATION=bob)
    assert response.status_code == 403, response.content
    assert response.json()["detail"] == f"The live {kind} stream needs the {PERMISSION[kind]} permission."
