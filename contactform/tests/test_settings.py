"""The HttpForm settings singleton over JMAP (x:HttpForm/get|set), /api/schema, manage.py and the
admin page "Settings › Network › HTTP › Contact form" (spec http.md §10.1)."""
from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command

from contactform.models import HttpForm
from registry.models import AuditEvent
from tests.clients import basic

URL = "/admin/contactform/httpform/1/change/"
DEFAULTS = {
    "id": "singleton", "enable": False, "deliverTo": {}, "maxSize": 102400,
    "rateLimit": {"count": 5, "period": 3600000}, "validateDomain": True, "fieldHoneyPot": None,
    "fieldEmail": None, "defaultFromAddress": "postmaster@localhost", "fieldName": None,
    "defaultName": "Anonymous", "fieldSubject": None, "defaultSubject": "Contact form submission",
}


def set_form(jmap, **patch):
    return jmap.ok("x:HttpForm/set", {"update": {"singleton": patch}})


def refusal(jmap, **patch):
    got = set_form(jmap, **patch)
    assert "singleton" not in (got.get("updated") or {}), got
    return got["notUpdated"]["singleton"]


class TestJmap:
    def test_get_defaults(self, jmap):
        got = jmap.ok("x:HttpForm/get", {"ids": ["singleton"]})
        assert got["list"] == [DEFAULTS]
        assert got["notFound"] == []

    def test_enable_with_recipients(self, jmap):
        got = set_form(jmap, enable=True, deliverTo={"Sales@Example.org": True, "ops@example.org": True},
                       fieldEmail="email", fieldHoneyPot="website",
                       rateLimit={"count": 10, "period": 60000})
        assert got["updated"] == {"singleton": None}, got
        row = HttpForm.objects.get()
        assert row.enable is True
        assert row.deliver_to == ["ops@example.org", "sales@example.org"]  # normalised, sorted
        assert (row.rate_limit_count, row.rate_limit_period) == (10, timedelta(minutes=1))
        listed = jmap.ok("x:HttpForm/get", {"ids": ["singleton"]})["list"][0]
        assert listed["deliverTo"] == {"ops@example.org": True, "sales@example.org": True}
        assert listed["rateLimit"] == {"count": 10, "period": 60000}
        assert AuditEvent.objects.filter(object_type="HttpForm", field="enable", new_value=True).exists()

    def test_enable_without_recipients_is_refused(self, jmap):
        err = refusal(jmap, enable=True)
        assert err["type"] == "invalidProperties"
        assert err["properties"] == ["deliverTo"]
        assert "at least one recipient" in err["description"]
        assert HttpForm.load().enable is False
        # Emptying the recipients of an enabled form is refused the same way.
        set_form(jmap, enable=True, deliverTo={"desk@example.org": True})
        assert refusal(jmap, deliverTo={})["properties"] == ["deliverTo"]
        assert HttpForm.load().deliver_to == ["desk@example.org"]

    def test_recipients_must_be_addresses(self, jmap):
        err = refusal(jmap, deliverTo={"not an address": True})
        assert err["type"] == "validationFailed"
        assert err["validationErrors"] == [{"type": "Invalid", "property": "deliverTo", "value": "not an address"}]
        assert refusal(jmap, deliverTo=["a@example.org"])["type"] == "invalidPatch"

    def test_rate_limit_null_turns_it_off(self, jmap):
        assert set_form(jmap, rateLimit=None)["updated"] == {"singleton": None}
        row = HttpForm.load()
        assert row.rate_limit_count is None  # the period is kept for when a limit is set again
        assert jmap.ok("x:HttpForm/get", {"ids": ["singleton"]})["list"][0]["rateLimit"] is None

    @pytest.mark.parametrize("rate, kind, prop", [
        ({"count": 5}, "invalidPatch", "rateLimit/period"),
        ({"count": "5", "period": 1000}, "invalidPatch", "rateLimit/count"),
        ({"count": 5, "period": 1000, "burst": 2}, "invalidPatch", "rateLimit/burst"),
        (5, "invalidPatch", "rateLimit"),
    ])
    def test_rate_limit_shape(self, jmap, rate, kind, prop):
        err = refusal(jmap, rateLimit=rate)
        assert err["type"] == kind
        assert err["properties"] == [prop]

    def test_rate_limit_bounds(self, jmap):
        err = refusal(jmap, rateLimit={"count": 0, "period": 60000})
        assert err["validationErrors"][0] == {"type": "MinValue", "property": "rateLimitCount", "required": 1}
        err = refusal(jmap, rateLimit={"count": 5, "period": 10})
        assert err["validationErrors"][0] == {"type": "MinValue", "property": "rateLimitPeriod", "required": 1000}

    def test_max_size_bounds(self, jmap):
        assert refusal(jmap, maxSize=10)["validationErrors"][0]["type"] == "MinValue"
        assert refusal(jmap, maxSize=100 * 1024 * 1024)["validationErrors"][0]["type"] == "MaxValue"
        assert set_form(jmap, maxSize=4096)["updated"] == {"singleton": None}

    def test_honeypot_cannot_be_a_real_field(self, jmap):
        """The reference's documented example (honeypot = subject field) refuses every submission."""
        err = refusal(jmap, fieldSubject="subject", fieldHoneyPot="subject")
        assert err["properties"] == ["fieldHoneyPot"]

    def test_default_sender_must_be_an_address(self, jmap):
        assert refusal(jmap, defaultFromAddress="nobody")["validationErrors"][0]["property"] == "defaultFromAddress"

    def test_permissions(self, user_jmap):
        err = user_jmap.error("x:HttpForm/get", {"ids": ["singleton"]})
        assert err["type"] == "forbidden"
        err = user_jmap.error("x:HttpForm/set", {"update": {"singleton": {"enable": True}}})
        assert err["type"] == "forbidden"
        assert HttpForm.load().enable is False


def test_schema(admin_client):
    schema = admin_client.get("/api/schema", HTTP_AUTHORIZATION=basic("admin@example.org"), follow=True).json()
    obj = schema["objects"]["x:HttpForm"]
    assert obj["type"] == "singleton"
    assert obj["permissionPrefix"] == "sysHttpForm"
    assert obj["operations"] == ["Get", "Update"]
    assert obj["section"] == "Settings › Network › HTTP › Contact form"
    props = schema["fields"]["x:HttpForm"]["properties"]
    assert props["rateLimit"]["type"] == {"type": "object", "objectName": "Rate"}
    assert props["deliverTo"]["type"] == {"type": "set", "class": {"type": "string", "format": "emailAddress"}}
    assert props["maxSize"]["type"]["min"] == 1024
    assert "rateLimitCount" not in props


def test_manage_py_verbs(db):
    out = io.StringIO()
    call_command("get", "httpform", stdout=out)
    assert "postmaster@localhost" in out.getvalue()
    call_command("update", "httpform", "--field", "defaultName=Website visitor", stdout=io.StringIO())
    assert HttpForm.load().default_name == "Website visitor"


class TestAdminPage:
    def test_page_and_menu(self, admin_client):
        page = admin_client.get(URL)
        assert page.status_code == 200
        html = page.content.decode()
        for name in ("enable", "deliver_to", "max_size", "rate_limit_count", "rate_limit_period", "field_honey_pot"):
            # A duration is a number and a unit (rate_limit_period_amount, _unit).
            assert f'name="{name}"' in html or f'name="{name}_amount"' in html, name
        assert "/admin/contactform/httpform/" in admin_client.get("/admin/").content.decode()

    def form(self, **changes):
        data = {"enable": "", "deliver_to": "", "max_size": "102400", "rate_limit_count": "5",
                "rate_limit_period": "01:00:00", "validate_domain": "on", "field_email": "",
                "default_from_address": "postmaster@localhost", "field_name": "", "default_name": "Anonymous",
                "field_subject": "", "default_subject": "Contact form submission", "field_honey_pot": ""}
        data.update(changes)
        return {k: v for k, v in data.items() if v != "" or k not in ("enable", "validate_domain")}

    def test_enabling_without_recipients_is_an_inline_error(self, admin_client):
        resp = admin_client.post(URL, self.form(enable="on"))
        assert resp.status_code == 200
        assert "An enabled contact form needs at least one recipient." in resp.content.decode()
        assert HttpForm.load().enable is False

    def test_enabling_with_recipients(self, admin_client):
        resp = admin_client.post(URL, self.form(enable="on", deliver_to="desk@example.org\nops@example.org",
                                                rate_limit_count=""))
        assert resp.status_code == 302, resp.content.decode()[:3000]
        row = HttpForm.load()
        assert row.enable and row.deliver_to == ["desk@example.org", "ops@example.org"]
        assert row.rate_limit_count is None
        assert row.field_email is None  # an empty optional field is stored as "not set"

    def test_user_without_permission_cannot_see_it(self, user_client):
        resp = user_client.get(URL)
        assert resp.status_code == 302 and resp["Location"].startswith("/admin/login/")
