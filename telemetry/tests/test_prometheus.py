"""/metrics/prometheus over Django's test client, and the x:Metrics settings object behind it.

These run in one process, so the default prometheus_client registry is what is exposed; the
whole-server totals across gunicorn workers are in test_prometheus_live.py.
"""
from __future__ import annotations

import base64

import pytest
from prometheus_client.parser import text_string_to_metric_families

from telemetry.models import Metrics
from tests.clients import basic

pytestmark = pytest.mark.django_db

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
URL = "/metrics/prometheus"


def creds(user, secret):
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def set_metrics(jmap, prometheus):
    return jmap.ok("x:Metrics/set", {"update": {"singleton": {"prometheus": prometheus}}})


def enable(jmap, **fields):
    got = set_metrics(jmap, {"@type": "Enabled", **fields})
    assert got["updated"] == {"singleton": None}, got


def families(text):
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(text, name, **labels):
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


# --- the endpoint ------------------------------------------------------------------------------
def test_disabled_by_default_answers_404_problem(client):
    resp = client.get(URL)
    assert resp.status_code == 404
    assert resp["Content-Type"] == "application/problem+json"
    assert resp.json() == {"type": "about:blank", "status": 404, "title": "Not Found",
                           "detail": "The requested resource does not exist on this server."}


@pytest.mark.parametrize("path", ["/metrics/otel", "/metrics", "/metrics/", "/metrics/prometheus/x"])
def test_other_paths_under_metrics_answer_404(client, jmap, path):
    enable(jmap)
    resp = client.get(path)
    assert resp.status_code == 404 and resp["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("method", ["post", "put", "delete", "patch"])
def test_other_methods_answer_405(client, jmap, method):
    enable(jmap)
    resp = getattr(client, method)(URL)
    assert resp.status_code == 405
    assert resp["Content-Type"] == "application/problem+json"
    assert resp["Allow"] == "GET, HEAD"


def test_enabled_without_credentials_is_open(client, jmap):
    enable(jmap)
    resp = client.get(URL)
    assert resp.status_code == 200
    assert resp["Content-Type"] == CONTENT_TYPE
    found = families(resp.content.decode())
    # Ours, django-prometheus's, and the gauge read from the database.
    for name in ("stalwart_http_requests", "stalwart_jmap_method_calls", "stalwart_logins", "stalwart_bans",
                 "stalwart_blocked_ips", "django_http_requests_before_middlewares"):
        assert name in found, sorted(found)
    head = client.head(URL)
    assert head.status_code == 200 and head.content == b"" and head["Content-Type"] == CONTENT_TYPE
    assert int(head["Content-Length"]) > 0


def test_value_secret_requires_basic_auth(client, jmap):
    enable(jmap, authUsername="scraper", authSecret={"@type": "Value", "secret": "s3cret-scrape"})
    missing = client.get(URL)
    assert missing.status_code == 401
    assert missing["Content-Type"] == "application/problem+json"
    assert missing.json()["detail"] == "You have to authenticate first."
    assert 'Basic realm="Stalwart Server"' in missing["WWW-Authenticate"]
    for header in (creds("scraper", "wrong"), creds("other", "s3cret-scrape"), creds("Scraper", "s3cret-scrape"),
                   "Bearer s3cret-scrape", "Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode()):
        assert client.get(URL, HTTP_AUTHORIZATION=header).status_code == 401, header
    ok = client.get(URL, HTTP_AUTHORIZATION=creds("scraper", "s3cret-scrape"))
    assert ok.status_code == 200 and ok["Content-Type"] == CONTENT_TYPE
    # The scheme is case-insensitive, as in the reference.
    lower = "basic " + creds("scraper", "s3cret-scrape").split(" ", 1)[1]
    assert client.get(URL, HTTP_AUTHORIZATION=lower).status_code == 200


def test_verdict_is_cached_per_header_and_dropped_when_the_settings_change(client, jmap, monkeypatch):
    from accounts import hashing

    enable(jmap, authUsername="scraper", authSecret={"@type": "Value", "secret": "first-secret"})
    calls = []
    real = hashing.verify_secret
    monkeypatch.setattr(hashing, "verify_secret", lambda *a: calls.append(1) or real(*a))
    header = creds("scraper", "first-secret")
    for _ in range(3):
        assert client.get(URL, HTTP_AUTHORIZATION=header).status_code == 200
    assert len(calls) == 1  # one argon2 verification, then the cached verdict
    enable(jmap, authUsername="scraper", authSecret={"@type": "Value", "secret": "second-secret"})
    assert client.get(URL, HTTP_AUTHORIZATION=header).status_code == 401
    assert client.get(URL, HTTP_AUTHORIZATION=creds("scraper", "second-secret")).status_code == 200


def test_environment_variable_secret_is_read_at_each_scrape(client, jmap, monkeypatch):
    monkeypatch.setenv("STALWART_TEST_PROM_PASS", "from-the-env")
    enable(jmap, authUsername="prom", authSecret={"@type": "EnvironmentVariable",
                                                  "variableName": "STALWART_TEST_PROM_PASS"})
    assert client.get(URL).status_code == 401
    assert client.get(URL, HTTP_AUTHORIZATION=creds("prom", "nope")).status_code == 401
    assert client.get(URL, HTTP_AUTHORIZATION=creds("prom", "from-the-env")).status_code == 200
    monkeypatch.setenv("STALWART_TEST_PROM_PASS", "rotated")
    assert client.get(URL, HTTP_AUTHORIZATION=creds("prom", "from-the-env")).status_code == 401
    assert client.get(URL, HTTP_AUTHORIZATION=creds("prom", "rotated")).status_code == 200
    # An unset variable refuses every scrape (the reference would serve the metrics to anyone).
    monkeypatch.delenv("STALWART_TEST_PROM_PASS")
    assert client.get(URL).status_code == 401
    assert client.get(URL, HTTP_AUTHORIZATION=creds("prom", "")).status_code == 401


def test_file_secret_is_read_at_each_scrape(client, jmap, tmp_path):
    secret_file = tmp_path / "prom.pass"
    secret_file.write_text("from-a-file\n")
    enable(jmap, authUsername="prom", authSecret={"@type": "File", "filePath": str(secret_file)})
    assert client.get(URL).status_code == 401
    assert client.get(URL, HTTP_AUTHORIZATION=creds("prom", "from-a-file\n")).status_code == 401
    assert client.get(URL, HTTP_AUTHORIZATION=creds("prom", "from-a-file")).status_code == 200
    secret_file.write_text("changed")
    assert client.get(URL, HTTP_AUTHORIZATION=creds("prom", "from-a-file")).status_code == 401
    assert client.get(URL, HTTP_AUTHORIZATION=creds("prom", "changed")).status_code == 200
    secret_file.unlink()
    assert client.get(URL, HTTP_AUTHORIZATION=creds("prom", "changed")).status_code == 401


def test_disabling_hides_the_endpoint_again(client, jmap):
    enable(jmap)
    assert client.get(URL).status_code == 200
    set_metrics(jmap, {"@type": "Disabled"})
    assert client.get(URL).status_code == 404


# --- what is counted ---------------------------------------------------------------------------
def test_counters_move_with_requests_jmap_calls_logins_and_bans(client, jmap, make_account):
    from security import services as security

    enable(jmap)
    before = client.get(URL).content.decode()
    jmap.ok("Core/echo", {"hello": True})
    jmap.ok("Core/echo", {"hello": True})
    jmap.error("x:Nothing/get", {})
    assert jmap.error("x:Metrics/get", {"ids": ["nope"], "properties": ["nope"]})["type"] == "invalidArguments"
    bad = client.post("/jmap/", data="{}", content_type="application/json",
                      HTTP_AUTHORIZATION=basic("admin@example.org", "wrong password"))
    assert bad.status_code == 401
    security.ban("192.0.2.7", "authFailure", None)
    security.ban("192.0.2.8", "made-up", None)
    after = client.get(URL).content.decode()

    def delta(name, **labels):
        return (sample(after, name, **labels) or 0) - (sample(before, name, **labels) or 0)

    assert delta("stalwart_jmap_method_calls_total", method="Core/echo", result="ok") == 2
    assert delta("stalwart_jmap_method_calls_total", method="unknown", result="error") == 1
    assert delta("stalwart_jmap_method_calls_total", method="x:Metrics/get", result="error") == 1
    assert delta("stalwart_logins_total", result="failure") == 1
    assert delta("stalwart_bans_total", reason="authFailure") == 1
    assert delta("stalwart_bans_total", reason="other") == 1
    assert sample(after, "stalwart_blocked_ips") == 2
    # The test client's three JMAP posts that succeeded, and the refused one, by route.
    assert delta("stalwart_http_requests_total", endpoint="/jmap/", status="200") == 4
    assert delta("stalwart_http_requests_total", endpoint="/jmap/", status="401") == 1
    # The first scrape is counted once it has answered.
    assert delta("stalwart_http_requests_total", endpoint="/metrics/prometheus", status="200") == 1
    client.get("/no/such/page")
    final = client.get(URL).content.decode()
    assert (sample(final, "stalwart_http_requests_total", endpoint="unmatched", status="404") or 0) \
        - (sample(after, "stalwart_http_requests_total", endpoint="unmatched", status="404") or 0) == 1


def test_a_cached_basic_verdict_is_not_a_new_login(client, jmap):
    """stalwart_logins_total counts verifications: a Basic header already verified (cached
    verdict, accounts.http_auth) is not verified, nor counted, again."""
    enable(jmap)
    jmap.ok("Core/echo", {})
    before = client.get(URL).content.decode()
    for _ in range(3):
        jmap.ok("Core/echo", {})
    after = client.get(URL).content.decode()
    assert sample(after, "stalwart_logins_total", result="success") == sample(before, "stalwart_logins_total",
                                                                             result="success")


def test_mfa_required_is_counted(client, jmap, make_account):
    from accounts import login
    from accounts.models import Credential

    account = make_account("carol")
    Credential.objects.filter(account=account, kind="password").update(otp_url="otpauth://totp/x?secret=JBSWY3DPEHPK3PXP")
    enable(jmap)
    before = client.get(URL).content.decode()
    with pytest.raises(login.MfaRequired):
        login.authenticate("carol@example.org", "Tr0ubador-Quartz-Lantern-91", "192.0.2.1")
    after = client.get(URL).content.decode()
    assert sample(after, "stalwart_logins_total", result="mfa_required") - \
        sample(before, "stalwart_logins_total", result="mfa_required") == 1


# --- the settings object -----------------------------------------------------------------------
def test_get_shows_the_default_and_never_the_secret(jmap):
    got = jmap.ok("x:Metrics/get", {"ids": ["singleton"]})
    assert got["list"] == [{"id": "singleton", "prometheus": {"@type": "Disabled"}}]
    enable(jmap, authUsername="scraper", authSecret={"@type": "Value", "secret": "never-shown"})
    doc = jmap.ok("x:Metrics/get", {"ids": ["singleton"]})["list"][0]
    assert doc["prometheus"] == {"@type": "Enabled", "authUsername": "scraper",
                                 "authSecret": {"@type": "Value", "secret": "****"}}
    row = Metrics.objects.get()
    assert row.prometheus_auth_secret.startswith("$argon2id$")
    assert "never-shown" not in row.prometheus_auth_secret
    from accounts import hashing
    assert hashing.verify_secret("never-shown", row.prometheus_auth_secret)
    # Nor does the audit log hold it.
    from registry.models import AuditEvent
    events = AuditEvent.objects.filter(object_type="Metrics")
    assert events and all("never-shown" not in str(e.old_value) + str(e.new_value) for e in events)
    assert all("$argon2" not in str(e.old_value) + str(e.new_value) for e in events)


def test_writing_the_mask_back_keeps_the_secret(client, jmap):
    enable(jmap, authUsername="scraper", authSecret={"@type": "Value", "secret": "kept-secret"})
    stored = Metrics.objects.get().prometheus_auth_secret
    doc = jmap.ok("x:Metrics/get", {})["list"][0]
    doc["prometheus"]["authUsername"] = "renamed"
    got = set_metrics(jmap, doc["prometheus"])
    assert got["updated"] == {"singleton": None}
    assert Metrics.objects.get().prometheus_auth_secret == stored
    got = jmap.ok("x:Metrics/set", {"update": {"singleton": {"prometheus/authUsername": "again"}}})
    assert got["updated"] == {"singleton": None}
    assert Metrics.objects.get().prometheus_auth_secret == stored
    assert client.get(URL, HTTP_AUTHORIZATION=creds("again", "kept-secret")).status_code == 200


def test_a_prehashed_secret_is_stored_as_given(client, jmap):
    from accounts import hashing

    hashed = hashing.hash_secret("pre-hashed", "argon2id")
    enable(jmap, authUsername="scraper", authSecret={"@type": "Value", "secret": hashed})
    assert Metrics.objects.get().prometheus_auth_secret == hashed
    assert client.get(URL, HTTP_AUTHORIZATION=creds("scraper", "pre-hashed")).status_code == 200


def test_switching_away_from_a_value_drops_the_hash(jmap):
    enable(jmap, authUsername="scraper", authSecret={"@type": "Value", "secret": "gone-soon"})
    enable(jmap, authUsername="scraper", authSecret={"@type": "EnvironmentVariable", "variableName": "X"})
    row = Metrics.objects.get()
    assert row.prometheus_auth_secret == "" and row.prometheus_auth_secret_variable == "X"
    # "****" with no stored secret stands for nothing.
    got = set_metrics(jmap, {"@type": "Enabled", "authUsername": "scraper",
                             "authSecret": {"@type": "Value", "secret": "****"}})
    assert got["notUpdated"]["singleton"]["type"] == "invalidProperties"
    assert got["notUpdated"]["singleton"]["properties"] == ["prometheus/authSecret/secret"]


@pytest.mark.parametrize("value, path", [
    ("Enabled", "prometheus"),
    ({"@type": "On"}, "prometheus/@type"),
    ({"@type": "Disabled", "authUsername": "x"}, "prometheus/authUsername"),
    ({"@type": "Enabled", "extra": 1}, "prometheus/extra"),
    ({"@type": "Enabled", "authUsername": 7}, "prometheus/authUsername"),
    ({"@type": "Enabled", "authUsername": "u", "authSecret": "plain"}, "prometheus/authSecret"),
    ({"@type": "Enabled", "authUsername": "u", "authSecret": {"@type": "Plain"}}, "prometheus/authSecret/@type"),
    ({"@type": "Enabled", "authUsername": "u", "authSecret": {"@type": "Value"}}, "prometheus/authSecret/secret"),
    ({"@type": "Enabled", "authUsername": "u", "authSecret": {"@type": "Value", "secret": 5}},
     "prometheus/authSecret/secret"),
    ({"@type": "Enabled", "authUsername": "u", "authSecret": {"@type": "File", "variableName": "X"}},
     "prometheus/authSecret/variableName"),
])
def test_wrong_shapes_are_set_errors(jmap, value, path):
    got = set_metrics(jmap, value)
    err = got["notUpdated"]["singleton"]
    assert err["type"] == "invalidPatch"  # the reference's error for a value that does not fit the schema
    assert err.get("properties", [""]) == [path]
    assert Metrics.load().prometheus_enabled is False


@pytest.mark.parametrize("value, prop", [
    ({"@type": "Enabled", "authUsername": "u", "authSecret": {"@type": "Value", "secret": ""}},
     "prometheus/authSecret/secret"),
    ({"@type": "Enabled", "authUsername": "u", "authSecret": {"@type": "EnvironmentVariable", "variableName": " "}},
     "prometheus/authSecret/variableName"),
    ({"@type": "Enabled", "authUsername": "u", "authSecret": {"@type": "File", "filePath": ""}},
     "prometheus/authSecret/filePath"),
    # Half-configured: the reference would serve the metrics to anyone.
    ({"@type": "Enabled", "authUsername": "u"}, "prometheus/authSecret"),
    ({"@type": "Enabled", "authUsername": "u", "authSecret": {"@type": "None"}}, "prometheus/authSecret"),
    ({"@type": "Enabled", "authSecret": {"@type": "Value", "secret": "s"}}, "prometheus/authUsername"),
    ({"@type": "Enabled", "authUsername": "", "authSecret": {"@type": "Value", "secret": "s"}},
     "prometheus/authUsername"),
])
def test_incomplete_values_are_invalid_properties(jmap, value, prop):
    got = set_metrics(jmap, value)
    err = got["notUpdated"]["singleton"]
    assert err["type"] == "invalidProperties" and err["properties"] == [prop], err
    assert Metrics.load().prometheus_enabled is False


def test_too_long_values_are_validation_errors(jmap):
    got = set_metrics(jmap, {"@type": "Enabled", "authUsername": "u" * 300,
                             "authSecret": {"@type": "Value", "secret": "s"}})
    assert got["notUpdated"]["singleton"]["type"] == "validationFailed"


def test_permissions(client, user_jmap, make_account):
    assert user_jmap.error("x:Metrics/get", {})["type"] == "forbidden"
    assert user_jmap.error("x:Metrics/set", {"update": {"singleton": {"prometheus": {"@type": "Enabled"}}}})["type"] \
        == "forbidden"
    assert Metrics.load().prometheus_enabled is False


def test_schema_and_admin_page(admin_client):
    schema = admin_client.get("/api/schema", HTTP_AUTHORIZATION=basic("admin@example.org"), follow=True).json()
    assert schema["objects"]["x:Metrics"]["type"] == "singleton"
    assert schema["objects"]["x:Metrics"]["permissionPrefix"] == "sysMetrics"
    assert schema["fields"]["x:Metrics"]["properties"]["prometheus"]["type"] == {
        "type": "object", "objectName": "MetricsPrometheus"}
    page = admin_client.get("/admin/telemetry/metrics/1/change/")
    assert page.status_code == 200
    assert b"prometheus_auth_secret" in page.content


def test_admin_page_hashes_and_masks_the_secret(admin_client):
    url = "/admin/telemetry/metrics/1/change/"
    form = {"prometheus_enabled": "on", "prometheus_auth_username": "scraper",
            "prometheus_auth_secret_kind": "value", "prometheus_auth_secret": "typed-in-admin",
            "prometheus_auth_secret_variable": "", "prometheus_auth_secret_file": ""}
    resp = admin_client.post(url, form)
    assert resp.status_code == 302, resp.content.decode()[:2000]
    stored = Metrics.objects.get().prometheus_auth_secret
    assert stored.startswith("$argon2id$")
    page = admin_client.get(url).content.decode()
    assert "typed-in-admin" not in page and stored not in page and "A value is stored; it is never shown." in page
    # Saving the page again with the field left empty keeps the secret.
    resp = admin_client.post(url, {**form, "prometheus_auth_secret": "", "prometheus_auth_username": "other"})
    assert resp.status_code == 302
    row = Metrics.objects.get()
    assert row.prometheus_auth_secret == stored and row.prometheus_auth_username == "other"


def test_changing_only_the_secret_is_audited_masked_and_moves_the_state(jmap):
    from registry.models import AuditEvent
    from registry.services import states

    enable(jmap, authUsername="scraper", authSecret={"@type": "Value", "secret": "one-secret"})
    state = states("Metrics")["Metrics"]
    enable(jmap, authUsername="scraper", authSecret={"@type": "Value", "secret": "two-secret"})
    assert states("Metrics")["Metrics"] == state + 1
    last = AuditEvent.objects.filter(object_type="Metrics").first()
    assert (last.field, last.old_value, last.new_value) == ("prometheusAuthSecret", "****", "****")
    # Writing the same object again changes nothing: no event, same state.
    count = AuditEvent.objects.count()
    enable(jmap, authUsername="scraper", authSecret={"@type": "Value", "secret": "****"})
    assert AuditEvent.objects.count() == count and states("Metrics")["Metrics"] == state + 1
