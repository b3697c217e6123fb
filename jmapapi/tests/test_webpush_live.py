"""JMAP Web Push (RFC 8620 §7.2 over RFC 8030, RFC 8291 encryption, RFC 8292 VAPID) against
gunicorn with two workers, docs/push.md#web-push.

The push service is a small HTTPS server in this process, with a certificate from a CA made
here; the server trusts that CA through SSL_CERT_FILE (OpenSSL's own variable: its system store
is replaced for this server only) and may reach 127.0.0.1 because EGRESS_ALLOWED_NETWORKS names
it, as an operator names a push service on their own network. Nothing else about loopback is
relaxed: 127.0.0.2, ::1 and http URLs are still refused. Each message is decrypted here with
`http_ece` and the subscription's private key, and its VAPID token verified with the key the
session advertises.
"""
from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import queue
import secrets
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from jwcrypto import jwk, jwt

from tests.live import live_server

CORE = ["urn:ietf:params:jmap:core"]
MAIL = [*CORE, "urn:ietf:params:jmap:mail"]
VAPID = "urn:ietf:params:jmap:webpush-vapid"
PASSWORD = "Tr0ubador-Quartz-Lantern-91"
DOMAIN = "webpush.example"
CONTACT = "mailto:push-admin@webpush.example"
MAX_ATTEMPTS = 3
MAX_SUBSCRIPTIONS = 4
MAX_EXPIRES = 3600


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- the push service ---------------------------------------------------------------------------
def _certificates(tmp_path):
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webpush test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "push")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(pem))
    (tmp_path / "leaf.key").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    return tmp_path / "ca.pem", tmp_path / "leaf.pem", tmp_path / "leaf.key"


class PushService:
    """Records every POST by path; answers by the path's first segment: ok 201, fail 500,
    gone 410, redirect 302 to /ok/<rest>-target."""

    def __init__(self, cert, key):
        self.received: dict[str, queue.Queue] = {}
        self._lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                service._box(self.path).put((dict(self.headers), body, time.monotonic()))
                kind = self.path.split("/")[1]
                if kind == "redirect":
                    self.send_response(302)
                    self.send_header("Location", f"{service.base}/ok/{self.path.split('/', 2)[2]}-target")
                else:
                    self.send_response({"ok": 201, "fail": 500, "gone": 410}.get(kind, 404))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.base = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def _box(self, path: str) -> queue.Queue:
        with self._lock:
            return self.received.setdefault(path, queue.Queue())

    def url(self, kind: str) -> str:
        return f"{self.base}/{kind}/{secrets.token_hex(6)}"

    def next(self, url: str, timeout: float = 20):
        path = url[len(self.base):]
        try:
            return self._box(path).get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"nothing pushed to {path} within {timeout} s")

    def count(self, url: str) -> int:
        return self._box(url[len(self.base):]).qsize()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Device:
    """A client's RFC 8291 keys, and the decryption of what is pushed to it."""

    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = secrets.token_bytes(16)

    @property
    def keys(self) -> dict:
        point = self.key.public_key().public_bytes(serialization.Encoding.X962,
                                                   serialization.PublicFormat.UncompressedPoint)
        return {"p256dh": b64url(point), "auth": b64url(self.auth)}

    def open(self, headers: dict, body: bytes) -> dict:
        assert headers["Content-Encoding"] == "aes128gcm"
        return json.loads(http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth, version="aes128gcm"))


# --- the server ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("webpush")
    ca, cert, key = _certificates(tmp)
    vapid = ec.generate_private_key(ec.SECP256R1())
    (tmp / "vapid.pem").write_bytes(vapid.private_bytes(serialization.Encoding.PEM,
                                                        serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    push = PushService(cert, key)
    env = {"SSL_CERT_FILE": str(ca), "EGRESS_ALLOWED_NETWORKS": "127.0.0.1/32",
           "WEBPUSH_VAPID_KEY_FILE": str(tmp / "vapid.pem"), "WEBPUSH_CONTACT": CONTACT,
           "WEBPUSH_RETRY_WAIT_MS": "100", "WEBPUSH_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
           "WEBPUSH_THROTTLE_MS": "0", "WEBPUSH_MAX_SUBSCRIPTIONS": str(MAX_SUBSCRIPTIONS),
           "WEBPUSH_MAX_EXPIRES": str(MAX_EXPIRES)}
    try:
        with live_server(workers=2, extra_env=env) as server:
            server.push = push
            server.vapid_public = b64url(vapid.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))
            yield server
    finally:
        push.close()


def make_user(server) -> tuple[str, str]:
    """A new user: (JMAP account id, login)."""
    name = f"wp{secrets.token_hex(3)}"
    return tuple(server.shell_json(f"""
from accounts import services
from accounts.models import Domain
from registry import ids, services as registry
dom = Domain.objects.filter(name={DOMAIN!r}).first() or registry.create(
    Domain._declaration, {{"name": {DOMAIN!r}, "description": "webpush tests"}}, "test")
acct = services.create_account({{"name": {name!r}, "domain": dom.pk, "roles_mode": "user", "kind": "user"}},
                               "test", password={PASSWORD!r})
result = [ids.encode(acct.pk), acct.email_address]
"""))


def auth(login: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{login}:{PASSWORD}".encode()).decode()}


def call(server, login: str, name: str, args: dict, using=CORE):
    resp = requests.post(server.url + "/jmap/", json={"using": using, "methodCalls": [[name, args, "0"]]},
                         headers=auth(login), timeout=30)
    assert resp.status_code == 200, resp.text
    [[got, result, _]] = resp.json()["methodResponses"]
    assert got == name, result
    return result


def subscribe(server, login: str, url: str, device: Device | None = None, **extra) -> dict:
    body = {"deviceClientId": secrets.token_hex(4), "url": url, **extra}
    if device is not None:
        body["keys"] = device.keys
    result = call(server, login, "PushSubscription/set", {"create": {"s": body}})
    assert result["created"] and "s" in result["created"], result
    assert "accountId" not in result and "newState" not in result
    return result["created"]["s"]


def refused(server, login: str, body: dict) -> dict:
    result = call(server, login, "PushSubscription/set", {"create": {"s": body}})
    assert not result["created"], result
    return result["notCreated"]["s"]


def change_mailboxes(server, account: str, login: str) -> str:
    result = call(server, login, "Mailbox/set",
                  {"accountId": account, "create": {"m": {"name": f"box-{secrets.token_hex(3)}"}}}, using=MAIL)
    assert result["created"], result
    return result["newState"]


def verification(server, device: Device, url: str) -> dict:
    headers, body, _ = server.push.next(url)
    message = device.open(headers, body)
    assert message["@type"] == "PushVerification", message
    return message


def verify(server, login: str, sub_id: str, code: str) -> None:
    result = call(server, login, "PushSubscription/set", {"update": {sub_id: {"verificationCode": code}}})
    assert result["updated"] == {sub_id: None}, result


def listed(server, login: str) -> list[str]:
    return [s["id"] for s in call(server, login, "PushSubscription/get", {"ids": None})["list"]]


def wait_gone(server, login: str, sub_id: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while sub_id in listed(server, login):
        assert time.monotonic() < deadline, f"{sub_id} still there after {timeout} s"
        time.sleep(0.2)


def verified_device(server, login: str, **extra) -> tuple[Device, str, str]:
    device, url = Device(), server.push.url("ok")
    created = subscribe(server, login, url, device, **extra)
    message = verification(server, device, url)
    verify(server, login, created["id"], message["verificationCode"])
    return device, url, created["id"]


# --- the session --------------------------------------------------------------------------------
def test_the_session_advertises_the_vapid_key(world):
    _, login = make_user(world)
    session = requests.get(world.url + "/jmap/session", headers=auth(login), timeout=30).json()
    assert session["capabilities"][VAPID] == {"applicationServerKey": world.vapid_public}


# --- verification, then encrypted and signed StateChanges ---------------------------------------
def test_verification_comes_first_and_nothing_before_the_code_is_echoed(world):
    account, login = make_user(world)
    # A verified subscription made first: each change reaches it, so once it has one the
    # dispatcher has passed over the unverified one (subscriptions are served in order).
    sentinel, sentinel_url, _ = verified_device(world, login)
    device, url = Device(), world.push.url("ok")
    created = subscribe(world, login, url, device, types=["Mailbox"])
    headers, body, _ = world.push.next(url)
    message = device.open(headers, body)
    assert message == {"@type": "PushVerification", "pushSubscriptionId": created["id"],
                       "verificationCode": message["verificationCode"]}
    assert len(message["verificationCode"]) >= 16
    # The server's code is never readable through /get: it must come by push.
    [got] = call(world, login, "PushSubscription/get", {"ids": [created["id"]]})["list"]
    assert got["verificationCode"] is None and "url" not in got and "keys" not in got

    first = change_mailboxes(world, account, login)
    assert sentinel.open(*world.push.next(sentinel_url)[:2])["changed"][account]["Mailbox"] == first
    assert world.push.count(url) == 0, "pushed before the verification code was echoed"

    wrong = call(world, login, "PushSubscription/set", {"update": {created["id"]: {"verificationCode": "nope"}}})
    assert wrong["notUpdated"][created["id"]]["type"] == "invalidProperties"
    verify(world, login, created["id"], message["verificationCode"])
    [got] = call(world, login, "PushSubscription/get", {"ids": [created["id"]]})["list"]
    assert got["verificationCode"] is None
    resp = requests.post(world.url + "/jmap/", headers=auth(login), timeout=30, json={
        "using": CORE, "methodCalls": [["PushSubscription/get", {"properties": ["id", "url"]}, "0"]]})
    assert resp.json()["methodResponses"][0][:2] == ["error", {
        "type": "forbidden", "description": "The 'url' and 'keys' properties are not readable."}]

    second = change_mailboxes(world, account, login)
    headers, body, _ = world.push.next(url)
    assert device.open(headers, body) == {"@type": "StateChange", "changed": {account: {"Mailbox": second}}}
    assert headers["Content-Encoding"] == "aes128gcm" and int(headers["TTL"]) > 0
    # RFC 8292: the token is signed by the advertised key, for this push service's origin.
    scheme, _, params = headers["Authorization"].partition(" ")
    assert scheme == "vapid"
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    assert fields["k"] == world.vapid_public
    point = unb64url(fields["k"])
    public = jwk.JWK(kty="EC", crv="P-256", x=b64url(point[1:33]), y=b64url(point[33:]))
    claims = json.loads(jwt.JWT(jwt=fields["t"], key=public, algs=["ES256"]).claims)
    assert claims["aud"] == world.push.base and claims["sub"] == CONTACT
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600


def test_a_tampered_vapid_token_does_not_verify(world):
    """The check above can fail: a token signed by another key is refused by the same code."""
    other = jwk.JWK.generate(kty="EC", crv="P-256")
    token = jwt.JWT(header={"alg": "ES256", "typ": "JWT"}, claims={"aud": "x", "exp": int(time.time()) + 60})
    token.make_signed_token(other)
    point = unb64url(world.vapid_public)
    public = jwk.JWK(kty="EC", crv="P-256", x=b64url(point[1:33]), y=b64url(point[33:]))
    with pytest.raises(Exception):
        jwt.JWT(jwt=token.serialize(), key=public, algs=["ES256"])


def test_the_types_filter(world):
    account, login = make_user(world)
    typed, typed_url, _ = verified_device(world, login, types=["Email"])
    sentinel, sentinel_url, _ = verified_device(world, login, types=["Mailbox"])
    state = change_mailboxes(world, account, login)
    assert sentinel.open(*world.push.next(sentinel_url)[:2])["changed"] == {account: {"Mailbox": state}}
    assert world.push.count(typed_url) == 0
    # types changed through /set: now Mailbox too.
    result = call(world, login, "PushSubscription/set",
                  {"update": {listed(world, login)[0]: {"types": ["Email", "Mailbox"]}}})
    assert result["notUpdated"] is None, result
    state = change_mailboxes(world, account, login)
    assert typed.open(*world.push.next(typed_url)[:2])["changed"] == {account: {"Mailbox": state}}


def test_expires_is_clamped_and_a_past_one_refused(world):
    _, login = make_user(world)
    created = subscribe(world, login, world.push.url("ok"), expires="2099-01-01T00:00:00Z")
    expires = dt.datetime.fromisoformat(created["expires"].replace("Z", "+00:00"))
    assert abs((expires - dt.datetime.now(dt.timezone.utc)).total_seconds() - MAX_EXPIRES) < 120
    soon = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = call(world, login, "PushSubscription/set", {"update": {created["id"]: {"expires": soon}}})
    assert result["updated"] == {created["id"]: None}, result
    [got] = call(world, login, "PushSubscription/get", {"ids": [created["id"]]})["list"]
    assert got["expires"] == soon
    past = call(world, login, "PushSubscription/set", {"update": {created["id"]: {"expires": "2001-01-01T00:00:00Z"}}})
    assert past["notUpdated"][created["id"]]["type"] == "invalidProperties"
    error = refused(world, login, {"deviceClientId": "d", "url": world.push.url("ok"),
                                   "expires": "2001-01-01T00:00:00Z"})
    assert error["type"] == "invalidProperties" and error["properties"] == ["expires"]


# --- failures -------------------------------------------------------------------------------------
def test_a_failing_push_service_is_tried_then_the_subscription_dropped(world):
    _, login = make_user(world)
    url = world.push.url("fail")
    created = subscribe(world, login, url, Device())
    wait_gone(world, login, created["id"])
    assert world.push.count(url) == MAX_ATTEMPTS


def test_410_drops_the_subscription_at_once(world):
    _, login = make_user(world)
    url = world.push.url("gone")
    created = subscribe(world, login, url, Device())
    wait_gone(world, login, created["id"])
    assert world.push.count(url) == 1


def test_a_redirect_is_a_failure_and_never_followed(world):
    _, login = make_user(world)
    url = world.push.url("redirect")
    created = subscribe(world, login, url, Device())
    wait_gone(world, login, created["id"])
    assert world.push.count(url) == MAX_ATTEMPTS
    assert world.push.count(url.replace("/redirect/", "/ok/") + "-target") == 0


# --- the attacker ---------------------------------------------------------------------------------
@pytest.mark.parametrize("url", [
    "http://127.0.0.1/push",             # not https
    "ftp://example.com/push",
    "https://127.0.0.2/push",            # loopback (only 127.0.0.1/32 is allowed here)
    "https://[::1]/push",
    "https://[::ffff:127.0.0.2]/push",   # IPv4-mapped loopback
    "https://10.0.0.1/push",             # private
    "https://192.168.1.1/push",
    "https://169.254.169.254/latest/meta-data/",  # link-local: cloud metadata
    "https://100.64.0.1/push",           # shared address space
    "https://0.0.0.0/push",
    "https://user:pw@example.com/push",  # user information
    "https:///push",
    "not a url",
])
def test_urls_the_server_must_not_reach_are_refused(world, url):
    _, login = make_user(world)
    error = refused(world, login, {"deviceClientId": "d", "url": url})
    assert error["type"] == "invalidProperties" and error["properties"] == ["url"], error
    assert listed(world, login) == []


@pytest.mark.parametrize("keys", [
    {"p256dh": "AAAA", "auth": b64url(bytes(16))},                      # too short
    {"p256dh": b64url(b"\x04" + bytes(64)), "auth": b64url(bytes(16))},  # not on the curve
    {"p256dh": "!!notbase64!!", "auth": b64url(bytes(16))},
    {"p256dh": None, "auth": None},
    {"auth": b64url(bytes(16))},
    "keys",
])
def test_bad_keys_are_refused(world, keys):
    _, login = make_user(world)
    body = {"deviceClientId": "d", "url": world.push.url("ok"), "keys": keys}
    assert refused(world, login, body)["type"] == "invalidProperties"


def test_a_bad_auth_secret_is_refused(world):
    _, login = make_user(world)
    keys = {**Device().keys, "auth": b64url(bytes(8))}
    error = refused(world, login, {"deviceClientId": "d", "url": world.push.url("ok"), "keys": keys})
    assert error["type"] == "invalidProperties" and error["properties"] == ["keys"]


def test_other_properties_cannot_be_set(world):
    _, login = make_user(world)
    url = world.push.url("ok")
    for body in ({"deviceClientId": "d", "url": url, "verificationCode": "x"},
                 {"deviceClientId": "d", "url": url, "id": "x"},
                 {"deviceClientId": "d", "url": url, "colour": "red"},
                 {"deviceClientId": "d", "url": url, "types": ["NotAType"]},
                 {"url": url},
                 {"deviceClientId": "d"}):
        assert refused(world, login, body)["type"] == "invalidProperties", body
    created = subscribe(world, login, url)
    for patch in ({"url": world.push.url("ok")}, {"keys": Device().keys}, {"deviceClientId": "e"}, {"id": "x"}):
        result = call(world, login, "PushSubscription/set", {"update": {created["id"]: patch}})
        assert result["notUpdated"][created["id"]]["type"] == "invalidProperties", (patch, result)


def test_another_accounts_subscription_is_not_found(world):
    _, owner = make_user(world)
    _, thief = make_user(world)
    device, url = Device(), world.push.url("ok")
    created = subscribe(world, owner, url, device)
    code = verification(world, device, url)["verificationCode"]
    got = call(world, thief, "PushSubscription/get", {"ids": [created["id"]]})
    assert got["list"] == [] and got["notFound"] == [created["id"]]
    result = call(world, thief, "PushSubscription/set", {"update": {created["id"]: {"verificationCode": code}},
                                                         "destroy": [created["id"]]})
    assert result["notUpdated"][created["id"]]["type"] == "notFound"
    assert result["notDestroyed"][created["id"]]["type"] == "notFound"
    [mine] = call(world, owner, "PushSubscription/get", {"ids": [created["id"]]})["list"]
    assert mine["verificationCode"] is None
    # The owner destroys it; it is gone.
    result = call(world, owner, "PushSubscription/set", {"destroy": [created["id"]]})
    assert result["destroyed"] == [created["id"]]
    assert listed(world, owner) == []


def test_too_many_subscriptions(world):
    _, login = make_user(world)
    for _ in range(MAX_SUBSCRIPTIONS):
        subscribe(world, login, world.push.url("ok"))
    error = refused(world, login, {"deviceClientId": "d", "url": world.push.url("ok")})
    assert error["type"] == "overQuota"
    assert len(listed(world, login)) == MAX_SUBSCRIPTIONS
