"""Identities and the vacation response end to end: gunicorn on its own database (tests/live.py)
and a third-party client, jmapc, speaking RFC 8621's Identity methods; the vacation response
with plain HTTP. The user is made by the administrator over x:Account/set."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import requests

from tests.test_jmap_live import STRONG, PlainHttpAdapter, first_run_site



@pytest.fixture(scope="module")
def site(live):
    with first_run_site(live, workers=2) as s:
        yield s


def test_jmapc_identities(site):
    import jmapc
    from jmapc import Identity
    from jmapc.methods import IdentityChanges, IdentityGet, IdentitySet

    user_id, login = site.create_user("ida")
    host = urlsplit(site.url).netloc
    client = jmapc.Client.create_with_password(host, login, STRONG)
    client.requests_session.mount(f"https://{host}/", PlainHttpAdapter())
    session = client.jmap_session
    assert "urn:ietf:params:jmap:submission" in session.capabilities.urns
    assert client.account_id == user_id

    got = client.request(IdentityGet(ids=None))
    [default] = got.data
    assert (default.email, default.may_delete) == (login, False)

    # jmapc sends its whole object back, mayDelete included (the value the server sets: accepted)
    # and leaves out what is None (htmlSignature: the default, "").
    made = client.request(IdentitySet(create={"work": Identity(
        name="Ida at work", email=login, reply_to=None, bcc=None, text_signature="-- \nIda", html_signature=None,
        may_delete=True)}))
    assert made.not_created is None, made
    forbidden = client.request(IdentitySet(create={"x": Identity(
        name="CEO", email="ceo@example.org", reply_to=None, bcc=None, text_signature="", html_signature="",
        may_delete=True)}))
    assert forbidden.not_created["x"].type == "forbiddenFrom"
    new_id = made.created["work"].id
    changes = client.request(IdentityChanges(since_state=got.state))
    assert changes.created == [new_id] and changes.destroyed == []
    listed = {i.id: i for i in client.request(IdentityGet(ids=None)).data}
    assert listed[new_id].text_signature == "-- \nIda" and listed[new_id].may_delete is True
    gone = client.request(IdentitySet(destroy=[new_id, default.id]))
    assert gone.destroyed == [new_id] and gone.not_destroyed[default.id].type == "forbidden"


def test_vacation_response_over_http(site):
    user_id, login = site.create_user("vera")
    using = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:vacationresponse"]

    session = requests.get(f"{site.url}/jmap/session", auth=(login, STRONG), timeout=30).json()
    account = session["primaryAccounts"]["urn:ietf:params:jmap:vacationresponse"]

    def call(name, args):
        args = {"accountId": account, **args}
        resp = requests.post(f"{site.url}/jmap/", json={"using": using, "methodCalls": [[name, args, "0"]]},
                             auth=(login, STRONG), timeout=30)
        assert resp.status_code == 200, resp.text
        return resp.json()["methodResponses"][0]

    _, updated, _ = call("VacationResponse/set", {"update": {"singleton": {
        "isEnabled": True, "subject": "Away", "textBody": "Back Monday", "fromDate": "2026-01-01T00:00:00Z"}}})
    assert updated.get("updated") == {"singleton": None}, updated
    _, got, _ = call("VacationResponse/get", {"ids": ["singleton"]})
    assert got["list"][0]["isEnabled"] is True and got["list"][0]["fromDate"] == "2026-01-01T00:00:00Z"
    script = site.server.shell_json(
        "from submission.vacation import vacation_script\nfrom accounts.models import Account\n"
        f"result = vacation_script(Account.objects.get(email_address={login!r}))")
    assert script.startswith('require ["vacation"];') and ':subject "Away"' in script
