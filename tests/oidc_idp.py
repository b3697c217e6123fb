"""A second live instance of this project as an OpenID Connect identity provider, for the tests
of the OIDC directory (directories/tests/test_oidc_live.py, accounts/tests/test_directory_oidc_e2e.py).

The provider (gunicorn, its own database) is reached through a small pass-through proxy that counts
the requests per path and can be switched off: the provider's PUBLIC_URL is the proxy's address, so
the issuer, the discovery document and every endpoint in it point there. Counting shows what is
cached; switching it off is the provider going down. Tokens are obtained over HTTP through the
device flow, exactly as a client would get them.

Use `start_idp()` in a module-scoped fixture: one provider per module.
"""
from __future__ import annotations

import base64
import contextlib
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from jwcrypto import jwk, jwt

from tests.live import free_port, live_server

STRONG = "Tr0ubador-Quartz-Lantern-91"
GRANT_DEVICE = "urn:ietf:params:oauth:grant-type:device_code"


class Proxy:
    """Forwards every request to `target` and counts them by path; `stop()` closes the port
    (connections refused, as with a provider that is down), `start()` opens it again."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.target = ""
        self.hits: Counter[str] = Counter()
        self._server = None

    def start(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                proxy.hits[self.path.split("?")[0]] += 1
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                resp = requests.request(self.command, proxy.target + self.path, headers=headers, data=body,
                                        allow_redirects=False, timeout=30)
                self.send_response(resp.status_code)
                for k, v in resp.headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(resp.content)))
                self.end_headers()
                self.wfile.write(resp.content)

            do_GET = do_POST = _forward

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self):
        self._server.shutdown()
        self._server.server_close()

    @contextlib.contextmanager
    def down(self):
        """The provider unreachable for the block."""
        self.stop()
        try:
            yield
        finally:
            self.start()


@contextlib.contextmanager
def start_idp():
    """The provider, with one account (`idp.login`, password STRONG, description "Jane Example");
    `idp.issuer` is the proxy's URL, `idp.proxy` the proxy."""
    proxy = Proxy()
    proxy.start()
    prepare = lambda server: server.manage("bootstrap")  # noqa: E731  (the default domain)
    try:
        with live_server(workers=1, extra_env={"PUBLIC_URL": proxy.url}, prepare=prepare) as server:
            proxy.target = server.url
            got = server.shell_json(f"""
from accounts import services
from accounts.models import SystemSettings
dom = SystemSettings.load().default_domain
a = services.create_account({{"name": "jane", "domain": dom.pk, "description": "Jane Example",
                             "roles_mode": "user"}}, "test-oidc", password={STRONG!r})
result = a.email_address
""")
            server.proxy = proxy
            server.issuer = proxy.url
            server.login = got
            yield server
    finally:
        proxy.stop()


def tokens(idp, client_id: str = "stalwart") -> dict:
    """An access token (opaque) and an ID token (a JWT, aud = client_id), through the device flow."""
    start = requests.post(f"{idp.url}/auth/device", data={"client_id": client_id}, timeout=10).json()
    decided = requests.post(f"{idp.url}/api/auth", json={"type": "authDevice", "accountName": idp.login,
                                                        "accountSecret": STRONG, "code": start["user_code"]},
                            timeout=10).json()
    assert decided == {"type": "verified"}, decided
    got = requests.post(f"{idp.url}/auth/token", data={"grant_type": GRANT_DEVICE, "client_id": client_id,
                                                        "device_code": start["device_code"]}, timeout=10)
    assert got.status_code == 200, got.text
    return got.json()


def claims_of(token: str) -> dict:
    body = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def forge(claims: dict, key: jwk.JWK, alg: str, kid: str | None = "default") -> str:
    header = {"alg": alg, "typ": "JWT", **({"kid": kid} if kid is not None else {})}
    token = jwt.JWT(header=header, claims=claims)
    token.make_signed_token(key)
    return token.serialize()
