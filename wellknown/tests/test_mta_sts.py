"""MTA-STS: the MtaSts settings over JMAP, and the policy at /.well-known/mta-sts.txt."""
import pytest

from .helpers import problem_of

URL = "/.well-known/mta-sts.txt"


def policy_lines(resp):
    assert resp.status_code == 200, resp.content
    assert resp["Content-Type"] == "text/plain"
    text = resp.content.decode("ascii")
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    return text.split("\r\n")[:-1]


def test_default_policy_uses_the_mail_exchangers(client, system):
    assert policy_lines(client.get(URL)) == ["version: STSv1", "mode: testing", "max_age: 604800",
                                             "mx: mail.example.org"]


def test_mail_exchangers_sorted_deduplicated_null_is_default_host(client, system):
    system(mail_exchangers=[{"hostname": "mx2.example.org", "priority": 20}, {"priority": 10},
                            {"hostname": "MX2.example.org", "priority": 30}, {"hostname": "a.example.org"}])
    assert policy_lines(client.get(URL))[3:] == ["mx: a.example.org", "mx: mail.example.org", "mx: mx2.example.org"]


def test_own_mx_hosts_win(client, system, mta_sts):
    mta_sts(mode="enforce", max_age=__import__("datetime").timedelta(days=1),
            mx_hosts=["*.example.net", "mx.Example.org", "mx.example.org"])
    assert policy_lines(client.get(URL)) == ["version: STSv1", "mode: enforce", "max_age: 86400",
                                             "mx: *.example.net", "mx: mx.example.org"]


def test_mode_none_withdraws(client, system, mta_sts):
    mta_sts(mode="none")
    assert policy_lines(client.get(URL))[1] == "mode: none"


def test_disabled_or_no_mx_is_not_found(client, system, mta_sts):
    mta_sts(mode="disable")
    problem_of(client.get(URL), 404)
    mta_sts(mode="enforce")
    assert client.get(URL).status_code == 200
    system(mail_exchangers=[])
    problem_of(client.get(URL), 404)


def test_policy_id_follows_the_text(system, mta_sts):
    from wellknown.services import current_policy

    first = current_policy()
    assert first.txt_record() == f"v=STSv1; id={first.id}"
    assert len(first.id) == 16 and int(first.id, 16) >= 0
    assert current_policy().id == first.id
    mta_sts(mode="enforce")
    assert current_policy().id != first.id


def test_cached_between_changes(client, system):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(URL)
    with CaptureQueriesContext(connection) as queries:
        policy_lines(client.get(URL))
    # Only state counters are read (by the request pipeline and by the policy cache key).
    tables = " ".join(q["sql"] for q in queries.captured_queries).lower()
    assert "wellknown_mtasts" not in tables and "accounts_systemsettings" not in tables
    assert queries.captured_queries


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_wrong_methods(client, system, method):
    resp = client.generic(method, URL)
    problem_of(resp, 405)
    assert resp["Allow"] == "GET, HEAD, OPTIONS"


def test_head_and_preflight(client, system):
    assert client.head(URL).status_code == 200
    resp = client.options(URL)
    assert resp.status_code == 204 and resp["Access-Control-Allow-Origin"] == "*"


# --- x:MtaSts over JMAP ---------------------------------------------------------------------
def test_jmap_get_defaults(jmap):
    got = jmap.ok("x:MtaSts/get", {"ids": ["singleton"]})
    assert got["list"] == [{"id": "singleton", "mode": "testing", "maxAge": 604800000, "mxHosts": {}}]


def test_jmap_set_and_publish(jmap, client, system):
    got = jmap.ok("x:MtaSts/set", {"update": {"singleton": {
        "mode": "enforce", "maxAge": 3600_000, "mxHosts": {"mx1.example.org": True, "*.mx.example.org": True}}}})
    assert got["updated"] == {"singleton": None}
    assert jmap.ok("x:MtaSts/get", {"ids": ["singleton"]})["list"][0] == {
        "id": "singleton", "mode": "enforce", "maxAge": 3600000,
        "mxHosts": {"*.mx.example.org": True, "mx1.example.org": True}}
    assert policy_lines(client.get(URL)) == ["version: STSv1", "mode: enforce", "max_age: 3600",
                                             "mx: *.mx.example.org", "mx: mx1.example.org"]


@pytest.mark.parametrize("patch, prop, kind", [
    ({"mode": "strict"}, "mode", "validationFailed"),
    ({"maxAge": 999}, "maxAge", "validationFailed"),
    ({"maxAge": 31557601000}, "maxAge", "validationFailed"),
    ({"maxAge": "7d"}, "maxAge", "invalidPatch"),
    ({"mxHosts": {"not a host": True}}, "mxHosts", "invalidProperties"),
    ({"mxHosts": {"*.org": True}}, "mxHosts", "invalidProperties"),
    ({"mxHosts": {"a.*.example.org": True}}, "mxHosts", "invalidProperties"),
    ({"mxHosts": {"mx.example.org": False}}, "mxHosts", "invalidPatch"),
    ({"mxHosts": ["mx.example.org"]}, "mxHosts", "invalidPatch"),
    ({"mxHosts": {f"mx{i}.example.org": True for i in range(101)}}, "mxHosts", "invalidProperties"),
])
def test_jmap_invalid_values(jmap, client, system, patch, prop, kind):
    """Schema errors (enum, bounds) are validationFailed, a wrongly typed value invalidPatch, a bad
    host name invalidProperties, as for every declared object; nothing is written."""
    before = client.get(URL).content
    got = jmap.ok("x:MtaSts/set", {"update": {"singleton": {**patch, "mode": patch.get("mode", "enforce")}}})
    error = got["notUpdated"]["singleton"]
    assert error["type"] == kind, error
    named = error.get("properties", []) + [e["property"] for e in error.get("validationErrors", [])]
    assert named == [prop], error
    assert "JSON" not in error["description"]
    assert client.get(URL).content == before
    assert jmap.ok("x:MtaSts/get", {"ids": ["singleton"]})["list"][0]["mode"] == "testing"


def test_jmap_permissions(user_jmap):
    assert user_jmap.error("x:MtaSts/get", {"ids": ["singleton"]})["type"] == "forbidden"


def test_schema_describes_it(jmap):
    resp = jmap.client.get("/api/schema", HTTP_AUTHORIZATION=jmap.auth, follow=True)
    fields = resp.json()["fields"]["x:MtaSts"]
    assert set(fields["properties"]) == {"mode", "maxAge", "mxHosts"}
    assert fields["defaults"] == {"mode": "testing", "maxAge": 604800000, "mxHosts": {}}
