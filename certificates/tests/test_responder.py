"""GET /.well-known/acme-challenge/<token>: the HTTP-01 responder (spec discovery §9.2)."""
import datetime as dt

import pytest
from django.utils import timezone

from certificates import services
from certificates.models import AcmeChallenge, AcmeProvider

pytestmark = pytest.mark.django_db

TOKEN = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"
PROOF = TOKEN + ".9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"
URL = f"/.well-known/acme-challenge/{TOKEN}"


def provider(challenge_type="Http01"):
    # Written directly: the services refuse anything but Http01, yet a database may hold other
    # types (a configuration carried over from the reference).
    return AcmeProvider.objects.create(challenge_type=challenge_type, contact=["a@example.org"],
                                       domains=["mail.example.org"])


def assert_problem(resp, status):
    assert resp.status_code == status
    assert resp["Content-Type"] == "application/problem+json"
    body = resp.json()
    assert body["status"] == status and body["type"] == "about:blank"
    return body


def test_published_key_authorization_is_served_as_plain_text(client):
    services.publish(TOKEN, PROOF)
    resp = client.get(URL)
    assert resp.status_code == 200
    assert resp["Content-Type"] == "text/plain"
    assert resp.content.decode() == PROOF
    # Only the first segment after acme-challenge/ is the token, as in the reference.
    assert client.get(URL + "/ignored/rest").content.decode() == PROOF


def test_unknown_expired_and_withdrawn_tokens_are_404(client):
    assert_problem(client.get("/.well-known/acme-challenge/unknownToken"), 404)
    AcmeChallenge.objects.create(token="old", key_authorization="old.x",
                                 expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert_problem(client.get("/.well-known/acme-challenge/old"), 404)
    services.publish(TOKEN, PROOF)
    services.withdraw([TOKEN])
    assert_problem(client.get(URL), 404)


@pytest.mark.parametrize("bad", ["a.b", "tok%21en", "tok=", "", "x" * 256])
def test_malformed_tokens_are_404_without_lookup(client, bad):
    # Stored under the malformed token itself: the syntax check must refuse before the lookup.
    if bad:
        AcmeChallenge.objects.create(token=bad[:255], key_authorization="leak",
                                     expires_at=timezone.now() + dt.timedelta(hours=1))
    assert_problem(client.get(f"/.well-known/acme-challenge/{bad}"), 404)


def test_other_methods_are_405_and_options_is_a_preflight(client):
    services.publish(TOKEN, PROOF)
    for method in ("post", "put", "delete", "head"):
        resp = getattr(client, method)(URL)
        assert resp.status_code == 405
        if method != "head":
            assert_problem(resp, 405)
        assert "GET" in resp["Allow"]
    resp = client.options(URL)
    assert resp.status_code == 204 and resp["Access-Control-Allow-Origin"] == "*"


def test_active_only_with_an_http01_provider_or_none(client):
    services.publish(TOKEN, PROOF)
    assert client.get(URL).status_code == 200  # no provider at all: active (optimistic default)
    dns = provider("Dns01")
    assert_problem(client.get(URL), 404)  # only non-HTTP-01 providers: off
    provider("Http01")
    assert client.get(URL).status_code == 200
    dns.delete()
    assert client.get(URL).status_code == 200


def test_publish_replaces_and_purges_expired(db):
    AcmeChallenge.objects.create(token="stale", key_authorization="s", expires_at=timezone.now())
    services.publish(TOKEN, "first")
    services.publish(TOKEN, PROOF)
    assert services.published_key_authorization(TOKEN) == PROOF
    assert not AcmeChallenge.objects.filter(token="stale").exists()
    row = AcmeChallenge.objects.get(token=TOKEN)
    assert dt.timedelta(seconds=3590) < row.expires_at - timezone.now() <= dt.timedelta(seconds=3600)
