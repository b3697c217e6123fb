"""SystemSettings' discovery inputs (defaultHostname, services, mailExchangers) over JMAP, the
schema and the admin page."""
import json

import pytest

from accounts.discovery import SERVICE_PROTOCOLS
from accounts.models import SystemSettings
from accounts.tests.test_admin_settings import form_data

GET = {"ids": ["singleton"], "properties": ["defaultHostname", "services", "mailExchangers"]}


def current(jmap):
    return jmap.ok("x:SystemSettings/get", GET)["list"][0]


def test_defaults(jmap):
    got = current(jmap)
    assert got["defaultHostname"] == "localhost"
    assert got["services"] == {p: {"hostname": None, "cleartext": False} for p in SERVICE_PROTOCOLS}
    assert list(got["services"]) == list(SERVICE_PROTOCOLS)
    assert got["mailExchangers"] == [{"hostname": None, "priority": 10}]


def test_set_normalises(jmap):
    got = jmap.ok("x:SystemSettings/set", {"update": {"singleton": {
        "defaultHostname": "mail.example.org",
        "services": {"smtp": {"hostname": "SMTP.Example.org", "cleartext": True}, "imap": {}},
        "mailExchangers": [{"hostname": "mx1.example.org"}, {"hostname": None, "priority": 65535}],
    }}})
    assert got["updated"] == {"singleton": None}
    assert current(jmap) == {
        "id": "singleton", "defaultHostname": "mail.example.org",
        "services": {"imap": {"hostname": None, "cleartext": False},
                     "smtp": {"hostname": "smtp.example.org", "cleartext": True}},
        "mailExchangers": [{"hostname": "mx1.example.org", "priority": 10}, {"hostname": None, "priority": 65535}],
    }
    # Stored in the normalised form, which every face reads.
    stored = SystemSettings.load()
    assert stored.services["smtp"] == {"hostname": "smtp.example.org", "cleartext": True}
    assert stored.mail_exchangers[0] == {"hostname": "mx1.example.org", "priority": 10}


def test_patch_one_service(jmap):
    jmap.ok("x:SystemSettings/set", {"update": {"singleton": {"services/imap/cleartext": True}}})
    assert current(jmap)["services"]["imap"] == {"hostname": None, "cleartext": True}
    jmap.ok("x:SystemSettings/set", {"update": {"singleton": {"services/pop3": None}}})
    assert "pop3" not in current(jmap)["services"]


@pytest.mark.parametrize("patch, prop", [
    ({"services": []}, "services"),
    ({"services": "imap"}, "services"),
    ({"services": {"exchange": {}}}, "services"),
    ({"services": {"imap": True}}, "services"),
    ({"services": {"imap": {"hostname": "bad host"}}}, "services"),
    ({"services": {"imap": {"hostname": "a" * 64 + ".example.org"}}}, "services"),
    ({"services": {"imap": {"hostname": 5}}}, "services"),
    ({"services": {"imap": {"cleartext": "yes"}}}, "services"),
    ({"services": {"imap": {"cleartext": 1}}}, "services"),
    ({"services": {"imap": {"port": 993}}}, "services"),
    ({"services/imap/hostname": "-x-"}, "services"),
    ({"mailExchangers": {}}, "mailExchangers"),
    ({"mailExchangers": [{"priority": 0}]}, "mailExchangers"),
    ({"mailExchangers": [{"priority": 65536}]}, "mailExchangers"),
    ({"mailExchangers": [{"priority": True}]}, "mailExchangers"),
    ({"mailExchangers": [{"priority": 1.5}]}, "mailExchangers"),
    ({"mailExchangers": [{"hostname": "under_score.example.org"}]}, "mailExchangers"),
    ({"mailExchangers": ["mx.example.org"]}, "mailExchangers"),
    ({"mailExchangers": [{"weight": 1}]}, "mailExchangers"),
    ({"mailExchangers": [{}] * 101}, "mailExchangers"),
])
def test_invalid_values_are_refused_whole(jmap, patch, prop):
    before = current(jmap)
    # A valid change in the same patch is not written either.
    got = jmap.ok("x:SystemSettings/set", {"update": {"singleton": {"defaultHostname": "changed.example.org", **patch}}})
    error = got["notUpdated"]["singleton"]
    assert error["type"] == "invalidProperties", error
    assert error["properties"] == [prop]
    assert error["description"]
    assert current(jmap) == before


def test_invalid_default_hostname(jmap):
    error = jmap.ok("x:SystemSettings/set", {"update": {"singleton": {"defaultHostname": "Not Valid"}}})["notUpdated"]
    assert error["singleton"]["validationErrors"][0]["property"] == "defaultHostname"


def test_schema(jmap):
    fields = jmap.client.get("/api/schema", HTTP_AUTHORIZATION=jmap.auth, follow=True).json()["fields"]
    props = fields["x:SystemSettings"]["properties"]
    assert "hostname" not in props and "defaultHostname" in props
    assert props["services"]["type"] == {"type": "map", "keyClass": {"type": "object", "objectName": "ServiceProtocol"},
                                         "valueClass": {"type": "object", "objectName": "Service"}}
    assert props["mailExchangers"]["type"] == {"type": "list", "class": {"type": "object", "objectName": "MailExchanger"}}
    assert fields["x:SystemSettings"]["defaults"]["mailExchangers"] == [{"hostname": None, "priority": 10}]


URL = "/admin/accounts/systemsettings/1/change/"


def test_admin_form(admin_client):
    html = admin_client.get(URL).content.decode()
    assert "Discovery" in html and "host name means the default host name" in html
    data = form_data(html, services=json.dumps({"imap": {"hostname": "IMAP.example.org", "cleartext": True}}),
                     mail_exchangers='[{"hostname": "mx.example.org", "priority": 5}]')
    resp = admin_client.post(URL, data)
    assert resp.status_code == 302, resp.content.decode()[:3000]
    stored = SystemSettings.load()
    assert stored.services == {"imap": {"hostname": "imap.example.org", "cleartext": True}}
    assert stored.mail_exchangers == [{"hostname": "mx.example.org", "priority": 5}]


@pytest.mark.parametrize("field, value, message", [
    ("services", '{"imap": {"hostname": "bad host"}}', "not a valid host name"),
    ("services", "{not json", "Enter a valid JSON"),
    ("mail_exchangers", '[{"priority": 0}]', "from 1 to 65535"),
])
def test_admin_form_errors_inline(admin_client, field, value, message):
    html = admin_client.get(URL).content.decode()
    before = SystemSettings.load().services
    resp = admin_client.post(URL, form_data(html, **{field: value}))
    assert resp.status_code == 200
    assert message in resp.content.decode()
    assert SystemSettings.load().services == before
