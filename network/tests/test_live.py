"""The HTTP service as `make run` starts it (manage.py serve, gunicorn on every enabled HTTP
listener), and limits shared by several workers."""
from __future__ import annotations

import json
import ssl
import sys
import warnings

import requests
import urllib3

from tests.live import ROOT, free_port, live_server

OUTSIDE = "203.0.113.5"


def test_serve_binds_every_enabled_listener_and_rules_see_which():
    plain, internal, secure, disabled = free_port(), free_port(), free_port(), free_port()

    def prepare(server):
        server.shell_json(f"""
from network.models import NetworkListener, Http
from registry import services as registry
decl = NetworkListener._declaration
http = NetworkListener.objects.get(name="http")
registry.update(decl, http.pk, {{"bind": ["127.0.0.1:{plain}"]}}, "test")
registry.create(decl, {{"name": "internal", "bind": ["127.0.0.1:{internal}"], "protocol": "http"}}, "test")
registry.create(decl, {{"name": "secure", "bind": ["127.0.0.1:{secure}"], "protocol": "http", "use_tls": True}}, "test")
registry.create(decl, {{"name": "off", "bind": ["127.0.0.1:{disabled}"], "protocol": "http", "enabled": False}}, "test")
registry.create(decl, {{"name": "smtp", "bind": ["127.0.0.1:{free_port()}"], "protocol": "smtp"}}, "test")
from accounts.models import SystemSettings
# The test client is the proxy: its X-Forwarded-For headers are honoured.
registry.update(SystemSettings._declaration, SystemSettings.load().pk, {{"proxy_trusted_networks": ["127.0.0.1"]}},
                "test")
registry.update(Http._declaration, Http.load().pk, {{
    "use_x_forwarded": True, "enable_hsts": True,
    "allowed_endpoints": {{"match": [{{"if": "listener == 'internal' || path == '/.well-known/jmap'", "then": "200"}}],
                          "else": "403"}}}}, "test")
result = True
""")

    serve = [sys.executable, str(ROOT / "manage.py"), "serve"]
    with live_server(workers=1, prepare=prepare, command=serve, ready_url=f"http://127.0.0.1:{plain}/.well-known/jmap") \
            as server:
        # The dry run names both gunicorn servers: plain listeners together, TLS ones with a certificate.
        lines = server.manage("serve", "--dry-run").stdout.strip().splitlines()
        assert len(lines) == 2
        assert f"--bind 127.0.0.1:{plain}" in lines[0] and f"--bind 127.0.0.1:{internal}" in lines[0]
        assert f"--bind 127.0.0.1:{secure}" in lines[1] and "--certfile" in lines[1]
        assert str(disabled) not in " ".join(lines)

        outside = {"X-Forwarded-For": OUTSIDE}
        # The rule: everything through "internal", only the JMAP well-known through the others.
        got = requests.get(f"http://127.0.0.1:{plain}/admin/login/", headers=outside, timeout=30)
        assert got.status_code == 403 and got.json()["title"] == "Forbidden"
        assert requests.get(f"http://127.0.0.1:{plain}/.well-known/jmap", headers=outside, timeout=30,
                            allow_redirects=False).status_code == 307
        assert requests.get(f"http://127.0.0.1:{internal}/admin/login/", headers=outside, timeout=30).status_code == 200
        # Loopback itself is never refused.
        assert requests.get(f"http://127.0.0.1:{plain}/admin/login/", timeout=30).status_code == 200

        # The TLS listener serves a certificate (self-signed until one is issued) and HSTS;
        # the plain listeners send no HSTS.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
            tls = requests.get(f"https://127.0.0.1:{secure}/.well-known/jmap", headers=outside, timeout=30,
                               verify=False, allow_redirects=False)
        assert tls.status_code == 307
        assert tls.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
        assert (server.var_dir / "tls" / "self-signed" / "fullchain.pem").exists()
        pem = ssl.get_server_certificate(("127.0.0.1", secure))
        assert "BEGIN CERTIFICATE" in pem
        plain_resp = requests.get(f"http://127.0.0.1:{internal}/.well-known/jmap", timeout=30, allow_redirects=False)
        assert "Strict-Transport-Security" not in plain_resp.headers
        # The disabled listener and the SMTP one are not served by the HTTP service.
        try:
            requests.get(f"http://127.0.0.1:{disabled}/", timeout=3)
            raise AssertionError("a disabled listener answered")
        except requests.ConnectionError:
            pass


def test_anonymous_limit_is_global_across_workers(live):
    """Ten requests a minute from one address, over separate connections to two workers: ten
    pass, the rest get 429, whichever worker answers (the counters are shared)."""
    def set_http(props):
        live.manage("update", "http", *[arg for k, v in props.items() for arg in ("--field", f"{k}={json.dumps(v)}")])

    address = f"198.51.100.{free_port() % 200 + 20}"
    # The test client is the proxy: its X-Forwarded-For headers are honoured.
    live.manage("update", "systemsettings", "--field", 'proxyTrustedNetworks={"127.0.0.1": true}')
    set_http({"rateLimitAnonymous": {"count": 10, "period": 3_600_000}, "useXForwarded": True})
    try:
        statuses = []
        for _ in range(16):
            # A new connection each time (no session): gunicorn hands them to either worker.
            statuses.append(requests.get(live.url + "/.well-known/jmap", headers={"X-Forwarded-For": address},
                                         timeout=30, allow_redirects=False).status_code)
        assert statuses.count(307) == 10 and statuses.count(429) == 6, statuses
        assert statuses[:10] == [307] * 10
        # Another address is not affected.
        other = requests.get(live.url + "/.well-known/jmap", headers={"X-Forwarded-For": "198.51.100.250"},
                             timeout=30, allow_redirects=False)
        assert other.status_code == 307
    finally:
        set_http({"rateLimitAnonymous": {"count": 100, "period": 60000}, "useXForwarded": False})
        live.manage("update", "systemsettings", "--field", "proxyTrustedNetworks={}")
