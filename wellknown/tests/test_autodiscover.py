"""Microsoft autodiscover: v1 (POX, Outlook and ActiveSync request schemas) and v2 (JSON)."""
import pytest

from .helpers import parse_xml, problem_of

OUTLOOK_REQ = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
OUTLOOK_RESP = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
MOBILE_REQ = "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/requestschema/2006"
MOBILE_RESP = "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"
WRAPPER = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"


def outlook_request(email="jane@example.org", ns=OUTLOOK_REQ):
    return f"""<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="{ns}">
  <Request>
    <LegacyDN>/o=x</LegacyDN>
    <EMailAddress>{email}</EMailAddress>
    <AcceptableResponseSchema>{OUTLOOK_RESP}</AcceptableResponseSchema>
  </Request>
</Autodiscover>"""


def post(client, body, path="/autodiscover/autodiscover.xml", content_type="text/xml"):
    return client.post(path, data=body, content_type=content_type)


def q(ns, *names):
    return "/".join(f"{{{ns}}}{n}" for n in names)


def protocols(doc):
    account = doc.find(q(OUTLOOK_RESP, "Response", "Account"))
    out = []
    for p in account.findall(q(OUTLOOK_RESP, "Protocol")):
        fields = {child.tag.split("}")[1]: child.text for child in p}
        out.append(fields)
    return out


def test_outlook_answer(client, system):
    system(services={"imap": {"cleartext": True}, "pop3": {}, "smtp": {"hostname": "smtp.example.org"}, "jmap": {}})
    resp = post(client, outlook_request("Jane@Example.org"))
    assert resp.status_code == 200
    doc = parse_xml(resp)
    assert doc.tag == f"{{{WRAPPER}}}Autodiscover"
    user = doc.find(q(OUTLOOK_RESP, "Response", "User"))
    assert user.findtext(q(OUTLOOK_RESP, "DisplayName")) == "jane@example.org"
    assert user.findtext(q(OUTLOOK_RESP, "AutoDiscoverSMTPAddress")) == "jane@example.org"
    assert user.findtext(q(OUTLOOK_RESP, "DeploymentId")) == "644560b8-a1ce-429c-8ace-23395843f701"
    account = doc.find(q(OUTLOOK_RESP, "Response", "Account"))
    assert account.findtext(q(OUTLOOK_RESP, "AccountType")) == "email"
    assert account.findtext(q(OUTLOOK_RESP, "Action")) == "settings"
    common = {"LoginName": "jane@example.org", "AuthRequired": "on", "DirectoryPort": "0", "ReferralPort": "0",
              "SPA": "off"}
    assert protocols(doc) == [
        {"Type": "IMAP", "Server": "mail.example.org", "Port": "143", **common, "SSL": "off"},
        {"Type": "IMAP", "Server": "mail.example.org", "Port": "993", **common, "SSL": "on", "Encryption": "TLS"},
        {"Type": "POP3", "Server": "mail.example.org", "Port": "995", **common, "SSL": "on", "Encryption": "TLS"},
        {"Type": "SMTP", "Server": "smtp.example.org", "Port": "465", **common, "SSL": "on", "Encryption": "TLS"},
    ]
    # Element order inside a Protocol is the reference's.
    first = account.find(q(OUTLOOK_RESP, "Protocol"))
    assert [c.tag.split("}")[1] for c in first] == [
        "Type", "Server", "Port", "LoginName", "AuthRequired", "DirectoryPort", "ReferralPort", "SSL", "SPA"]


def test_calendars_and_contacts_are_not_in_outlook_autodiscover_but_at_the_rfc_6764_well_knowns(client, system):
    """Outlook's schema has protocol types for mail only (no CalDAV or CardDAV type exists), so
    even with both advertised the answer lists mail; clients find calendars and contacts at
    /.well-known/caldav and /.well-known/carddav (docs/discovery.md)."""
    system(services={"imap": {}, "smtp": {}, "caldav": {}, "carddav": {}})
    doc = parse_xml(post(client, outlook_request()))
    assert [p["Type"] for p in protocols(doc)] == ["IMAP", "SMTP"]
    for kind, target in (("caldav", "/dav/cal"), ("carddav", "/dav/card")):
        resp = client.generic("PROPFIND", f"/.well-known/{kind}", HTTP_DEPTH="0")
        assert resp.status_code == 307 and resp["Location"] == target


@pytest.mark.parametrize("body", [
    # no namespace at all
    outlook_request(ns="").replace(' xmlns=""', ""),
    # prefixed elements
    f'<a:Autodiscover xmlns:a="{OUTLOOK_REQ}"><a:Request><a:EMailAddress>jane@example.org</a:EMailAddress>'
    f"</a:Request></a:Autodiscover>",
    # other letter case, as the reference's parser accepts
    f'<autodiscover xmlns="{OUTLOOK_REQ}"><request><emailaddress> jane@example.org </emailaddress></request>'
    f"</autodiscover>",
])
def test_request_shapes(client, system, body):
    doc = parse_xml(post(client, body))
    assert doc.find(q(OUTLOOK_RESP, "Response", "User", "AutoDiscoverSMTPAddress")).text == "jane@example.org"


@pytest.mark.parametrize("path", ["/Autodiscover/Autodiscover.xml", "/AutoDiscover/AUTODISCOVER.XML",
                                  "/autodiscover/AutoDiscover.xml"])
def test_path_variants(client, system, path):
    assert post(client, outlook_request(), path=path).status_code == 200


def test_other_first_segments_are_not_routed(client, system):
    assert post(client, outlook_request(), path="/AUTODISCOVER/autodiscover.xml").status_code == 404


@pytest.mark.parametrize("variant", ["namespace", "schema"])
def test_activesync_gets_a_mobilesync_error(client, system, variant):
    if variant == "namespace":
        body = (f'<Autodiscover xmlns="{MOBILE_REQ}"><Request><EMailAddress>jane@example.org</EMailAddress>'
                f"<AcceptableResponseSchema>{MOBILE_RESP}</AcceptableResponseSchema></Request></Autodiscover>")
    else:
        body = (f"<Autodiscover><Request><EMailAddress>jane@example.org</EMailAddress>"
                f"<AcceptableResponseSchema>{MOBILE_RESP}</AcceptableResponseSchema></Request></Autodiscover>")
    resp = post(client, body)
    assert resp.status_code == 200
    doc = parse_xml(resp)
    assert doc.tag == f"{{{WRAPPER}}}Autodiscover"
    response = doc.find(q(MOBILE_RESP, "Response"))
    assert response is not None and doc.find(q(OUTLOOK_RESP, "Response")) is None
    error = response.find(q(MOBILE_RESP, "Error"))
    assert error.findtext(q(MOBILE_RESP, "ErrorCode")) == "601"
    assert error.findtext(q(MOBILE_RESP, "Message")) == "Requested schema version not supported"
    assert b"jane@example.org" not in resp.content


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<Autodiscover><Request><EMailAddress>&lol9;@example.org</EMailAddress></Request></Autodiscover>"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE Autodiscover [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<Autodiscover><Request><EMailAddress>&x;@example.org</EMailAddress></Request></Autodiscover>"""

EXTERNAL_DTD = """<?xml version="1.0"?>
<!DOCTYPE Autodiscover SYSTEM "http://127.0.0.1:9/evil.dtd">
<Autodiscover><Request><EMailAddress>jane@example.org</EMailAddress></Request></Autodiscover>"""

PLAIN_DTD = """<!DOCTYPE Autodiscover>
<Autodiscover><Request><EMailAddress>jane@example.org</EMailAddress></Request></Autodiscover>"""

PARAMETER_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE Autodiscover [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>
<Autodiscover><Request><EMailAddress>jane@example.org</EMailAddress></Request></Autodiscover>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD, PLAIN_DTD, PARAMETER_ENTITY],
                         ids=["billion-laughs", "external-entity", "external-dtd", "dtd", "parameter-entity"])
def test_dtds_and_entities_are_refused_unexpanded(client, system, body):
    resp = post(client, body)
    detail = problem_of(resp, 400)["detail"]
    assert "Failed to parse autodiscover request" in detail
    assert b"lollol" not in resp.content and b"root:" not in resp.content


@pytest.mark.parametrize("body", [
    b"", b"   ", b"not xml at all", b"<Autodiscover><Request>", b"{\"json\": true}",
    b"<Other><Request><EMailAddress>jane@example.org</EMailAddress></Request></Other>",
    b"<Autodiscover><EMailAddress>jane@example.org</EMailAddress></Autodiscover>",
    b"<Autodiscover><Request><LegacyDN>x</LegacyDN></Request></Autodiscover>",
    b"<Autodiscover><Request><EMailAddress></EMailAddress></Request></Autodiscover>",
    b"\xff\xfe\x00garbage",
], ids=["empty", "blank", "text", "unclosed", "json", "other-root", "no-request", "no-address", "empty-address",
        "bad-bytes"])
def test_malformed_requests(client, system, body):
    problem_of(post(client, body), 400)


@pytest.mark.parametrize("address", ["jane", "@example.org", "jane@", "ja ne@example.org", "jane@exa_mple.org",
                                     "x" * 65 + "@example.org"])
def test_malformed_addresses(client, system, address):
    problem_of(post(client, outlook_request(address)), 400)


def test_control_character_in_address(client, system):
    # XML 1.0 cannot carry most control characters; a character reference to one is refused too.
    problem_of(post(client, outlook_request("ja&#1;ne@example.org")), 400)
    problem_of(post(client, outlook_request("ja&#x85;ne@example.org")), 400)


def test_escaping_of_the_address(client, system):
    address = '"a<b&c\\"d"@example.org'
    escaped = address.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
    resp = post(client, outlook_request(escaped))
    assert resp.status_code == 200
    assert b"<b&c" not in resp.content
    doc = parse_xml(resp)
    assert doc.find(q(OUTLOOK_RESP, "Response", "User", "DisplayName")).text == address
    assert {p["LoginName"] for p in protocols(doc)} == {address}


def test_size_limit(client, system):
    padding = "<!-- " + "x" * 8192 + " -->"
    body = outlook_request().replace("<Request>", "<Request>" + padding)
    assert len(body.encode()) > 8192
    assert "larger than 8192" in problem_of(post(client, body), 400)["detail"]
    fits = outlook_request().replace("<Request>", "<Request><!-- " + "x" * (8192 - len(outlook_request()) - 20) + " -->")
    assert len(fits.encode()) <= 8192
    assert post(client, fits).status_code == 200


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete", "head", "options"])
def test_only_post(client, system, method):
    resp = getattr(client, method)("/autodiscover/autodiscover.xml")
    assert resp.status_code == 405
    assert resp["Allow"] == "POST"


def test_csrf_exempt(system):
    from django.test import Client

    resp = post(Client(enforce_csrf_checks=True), outlook_request())
    assert resp.status_code == 200


# --- v2 (JSON) ------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["get", "post", "put"])
def test_v2_points_to_v1(client, system, method):
    system(public_url="https://mail.example.org")
    resp = getattr(client, method)("/autodiscover/autodiscover.json/v1.0/Jane@Example.org?Protocol=autodiscoverv1")
    assert resp.status_code == 200
    assert resp["Content-Type"] == "application/json; charset=utf-8"
    assert resp.json() == {"Protocol": "AutodiscoverV1",
                           "Url": "https://mail.example.org/autodiscover/autodiscover.xml"}


def test_v2_url_is_derived_like_every_advertised_url(client, system, settings):
    """Without publicUrl (nor PUBLIC_URL) the v1 address is where the client asked, scheme and
    Host (checked against ALLOWED_HOSTS); with publicUrl set, that; never the bare hostname."""
    settings.PUBLIC_URL_CONFIGURED = ""
    system(public_url="")
    path = "/autodiscover/autodiscover.json?Email=jane@example.org&Protocol=AutodiscoverV1"
    assert client.get(path, HTTP_HOST="localhost:18380").json()["Url"] == \
        "http://localhost:18380/autodiscover/autodiscover.xml"
    assert client.get(path, HTTP_HOST="localhost:18380", secure=True).json()["Url"] == \
        "https://localhost:18380/autodiscover/autodiscover.xml"
    assert client.get(path, HTTP_HOST="evil.example").status_code == 400
    system(public_url="https://mx.example.net:8443")
    assert client.get(path, HTTP_HOST="localhost:18380").json()["Url"] == \
        "https://mx.example.net:8443/autodiscover/autodiscover.xml"


def test_v2_email_from_the_query_and_percent_decoded_path(client, system):
    assert client.get("/Autodiscover/autodiscover.json?Email=jane@example.org&Protocol=AutodiscoverV1").status_code == 200
    assert client.get("/autodiscover/AUTODISCOVER.JSON/v1.0/jane%40example.org?Protocol=AutodiscoverV1").status_code == 200


@pytest.mark.parametrize("protocol, shown", [("ActiveSync", "ActiveSync"), ("", ""), ("<Ews>&x", "Ewsx")])
def test_v2_other_protocols(client, system, protocol, shown):
    resp = client.get("/autodiscover/autodiscover.json/v1.0/jane@example.org", {"Protocol": protocol})
    assert resp.status_code == 400
    assert resp["Content-Type"] == "application/json; charset=utf-8"
    assert resp.json() == {
        "ErrorCode": "InvalidProtocol",
        "ErrorMessage": f"The given protocol value '{shown}' is invalid. Supported values are 'AutodiscoverV1'"}


@pytest.mark.parametrize("path", ["/autodiscover/autodiscover.json", "/autodiscover/autodiscover.json/v1.0/jane",
                                  "/autodiscover/autodiscover.json?Email=jane@",
                                  "/autodiscover/autodiscover.json?Email=ja%00ne@example.org"])
def test_v2_missing_or_bad_address(client, system, path):
    problem_of(client.get(path + ("&" if "?" in path else "?") + "Protocol=AutodiscoverV1"), 400)


@pytest.mark.parametrize("encoding", ["x-no-such-encoding", "utf-9", "\u00e9"])
@pytest.mark.django_db
def test_unknown_encoding_in_the_xml_declaration_is_a_400(client, encoding):
    body = (f'<?xml version="1.0" encoding="{encoding}"?><Autodiscover><Request>'
            '<EMailAddress>a@example.org</EMailAddress></Request></Autodiscover>').encode()
    resp = client.post("/autodiscover/autodiscover.xml", data=body, content_type="text/xml")
    assert resp.status_code == 400
