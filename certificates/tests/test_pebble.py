"""The ACME round trip against Pebble, a test CA (Debian's `pebble` package; `make pebble`).

Everything stays on loopback: Pebble listens on 127.0.0.1 with a certificate made here, asks
pebble-challtestsrv (its mock DNS) where the names are, which answers 127.0.0.1 for every
name, and validates HTTP-01 against our live gunicorn. Then a second gunicorn, with our
ssl_context hook, serves the issued certificates by SNI, and picks up a renewal without a
restart.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import stat
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.live import BIN, ROOT, free_port, live_server, stop_process

from . import pki

pytestmark = pytest.mark.skipif(
    not (shutil.which("pebble") and shutil.which("pebble-challtestsrv")),
    reason="pebble is not installed (make pebble, or apt-get install pebble)")

NAMES_A = ["mail.example.test"]
NAMES_B = ["autoconfig.example.test", "mta-sts.example.test"]
CHALLENGE_LINE = re.compile(r'"GET /\.well-known/acme-challenge/([A-Za-z0-9_-]+) HTTP/1\.1" (\d{3})')


def _wait(check, what: str, timeout: float = 20):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{what} did not come up: {last}")


def _start(args, log: Path, env=None):
    return subprocess.Popen([str(a) for a in args], stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            env=env, cwd=ROOT)


def _admin(server, login, password, *args):
    return server.manage(*args, "--url", server.url, "--user", login, "--password", password)


@pytest.fixture(scope="module")
def pebble(tmp_path_factory):
    """Pebble and its mock DNS, on loopback ports; its directory URL and the CA to trust."""
    tmp = tmp_path_factory.mktemp("pebble")
    ca_key, ca_cert = pki.ca("Pebble listener test CA")
    k, c = pki.leaf(ca_key, ca_cert, ["localhost"], ["127.0.0.1"])
    (tmp / "ca.pem").write_text(pki.cert_pem(ca_cert))
    (tmp / "cert.pem").write_text(pki.cert_pem(c))
    (tmp / "key.pem").write_text(pki.key_pem(k))
    dns_port, dns_mgmt = free_port(), free_port()
    acme_port, mgmt_port, tls_port = free_port(), free_port(), free_port()
    procs = []
    try:
        procs.append(_start(["pebble-challtestsrv", "-dns01", f"127.0.0.1:{dns_port}", "-http01", "", "-https01", "",
                             "-tlsalpn01", "", "-management", f"127.0.0.1:{dns_mgmt}",
                             "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""], tmp / "challtestsrv.log"))
        ns = SimpleNamespace(tmp=tmp, ca=str(tmp / "ca.pem"), acme_port=acme_port, mgmt_port=mgmt_port,
                             dns_port=dns_port, tls_port=tls_port, procs=procs)
        ns.directory = f"https://127.0.0.1:{acme_port}/dir"
        ns.mgmt = f"https://127.0.0.1:{mgmt_port}"
        yield ns
    finally:
        for proc in procs:
            stop_process(proc)


def _run_pebble(pb, http_port: int):
    config = {"pebble": {
        "listenAddress": f"127.0.0.1:{pb.acme_port}", "managementListenAddress": f"127.0.0.1:{pb.mgmt_port}",
        "certificate": str(pb.tmp / "cert.pem"), "privateKey": str(pb.tmp / "key.pem"),
        "httpPort": http_port, "tlsPort": pb.tls_port, "ocspResponderURL": "",
        "externalAccountBindingRequired": False,
    }}
    (pb.tmp / "pebble.json").write_text(json.dumps(config))
    env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0",
           "NO_PROXY": "*"}
    proc = _start(["pebble", "-config", pb.tmp / "pebble.json", "-dnsserver", f"127.0.0.1:{pb.dns_port}"],
                  pb.tmp / "pebble.log", env=env)
    pb.procs.append(proc)
    _wait(lambda: requests.get(pb.directory, verify=pb.ca, timeout=2).ok, "pebble")
    pb.root = requests.get(pb.mgmt + "/roots/0", verify=pb.ca, timeout=5).text
    pb.intermediate = x509.load_pem_x509_certificate(
        requests.get(pb.mgmt + "/intermediates/0", verify=pb.ca, timeout=5).content)


@pytest.fixture(scope="module")
def site(pebble):
    """Our live server, the CA pointed at it, and two providers with a certificate each."""
    hosts = ",".join(["127.0.0.1", "localhost", *NAMES_A, *NAMES_B])
    with live_server(extra_env={"ALLOWED_HOSTS": hosts, "ACCESS_LOG": "-", "NO_PROXY": "*"}) as server:
        _run_pebble(pebble, int(server.url.rsplit(":", 1)[1]))
        out = server.manage("bootstrap").stdout
        login = re.search(r"^\s*login:\s+(\S+)\s*$", out, re.M).group(1)
        password = re.search(r"^\s*password:\s+(\S+)\s*$", out, re.M).group(1)
        provider_ids = []
        for names in (NAMES_A, NAMES_B):
            body = {"directory": pebble.directory, "challengeType": "Http01", "contact": {"hostmaster@example.test": True},
                    "domains": {n: True for n in names}}
            created = _admin(server, login, password, "create", "acmeprovider", "--json", json.dumps(body)).stdout
            provider_ids.append(re.search(r"Created AcmeProvider (\S+)", created).group(1))
        obtained = server.manage("acme", "obtain", *provider_ids, "--ca-bundle", pebble.ca, "--timeout", "30",
                                 check=False)
        assert obtained.returncode == 0, obtained.stdout + obtained.stderr + (pebble.tmp / "pebble.log").read_text()
        yield SimpleNamespace(server=server, pebble=pebble, provider_ids=provider_ids, obtained=obtained,
                              login=login, password=password)


CERTS = """
from certificates.models import Certificate
from registry import ids
result = [{"id": ids.encode(c.pk), "provider": ids.encode(c.provider_id), "names": c.names,
           "serial": c.serial_number, "chain": c.chain} for c in Certificate.objects.order_by("pk")]
"""


def _tls_files(server, name):
    directory = server.var_dir / "tls" / name
    return directory / "fullchain.pem", directory / "privkey.pem"


def test_obtain_stores_certificates_issued_by_pebble(site):
    server, pb = site.server, site.pebble
    certs = server.shell_json(CERTS)
    assert [(c["provider"], c["names"]) for c in certs] == [(site.provider_ids[0], NAMES_A),
                                                            (site.provider_ids[1], NAMES_B)]
    now = time.time()
    for cert, names in zip(certs, (NAMES_A, NAMES_B)):
        chain = x509.load_pem_x509_certificates(cert["chain"].encode())
        leaf = chain[0]
        assert pki.san_names(leaf) == names
        # Issued by Pebble's intermediate (this run's: Pebble makes new keys at every start).
        assert leaf.issuer == pb.intermediate.subject
        leaf.verify_directly_issued_by(pb.intermediate)
        assert leaf.not_valid_before_utc.timestamp() <= now < leaf.not_valid_after_utc.timestamp()
        assert format(leaf.serial_number, "x") == cert["serial"]
        # The files the listeners read: the same chain, and a key only the owner can read.
        fullchain, privkey = _tls_files(server, names[0])
        assert fullchain.read_text() == cert["chain"]
        assert stat.S_IMODE(privkey.stat().st_mode) == 0o600
        key = serialization.load_pem_private_key(privkey.read_bytes(), None)
        assert key.public_key().public_numbers() == leaf.public_key().public_numbers()
    assert "valid until" in site.obtained.stdout


def test_pebble_fetched_our_challenges(site):
    log = (site.server.var_dir / "gunicorn.log").read_text()
    fetched = CHALLENGE_LINE.findall(log)
    # One HTTP-01 validation per name (Pebble reuses no authorization here), each answered 200.
    assert len(fetched) >= len(NAMES_A) + len(NAMES_B), log[-3000:]
    assert {status for _token, status in fetched} == {"200"}
    # Once the orders are done, the key authorizations are no longer served.
    token = fetched[0][0]
    assert requests.get(f"{site.server.url}/.well-known/acme-challenge/{token}", timeout=5).status_code == 404
    # The account was registered once per provider, and is shown (server-set) by x:AcmeProvider/get.
    got = _admin(site.server, site.login, site.password, "get", "acmeprovider", site.provider_ids[0], "--json").stdout
    doc = json.loads(got)
    assert doc["accountUri"].startswith(f"https://127.0.0.1:{site.pebble.acme_port}/")
    assert "accountKey" not in doc and "PRIVATE KEY" not in got


@pytest.fixture(scope="module")
def tls_server(site):
    """gunicorn with our ssl_context hook; its own certfile is provider A's certificate."""
    port = free_port()
    fullchain, privkey = _tls_files(site.server, NAMES_A[0])
    env = {**site.server.env, "PROMETHEUS_MULTIPROC_DIR": str(site.server.var_dir / "prometheus-tls")}
    proc = _start([BIN / "gunicorn", "-c", ROOT / "gunicorn.conf.py", "--certfile", fullchain, "--keyfile", privkey,
                   "--bind", f"127.0.0.1:{port}", "--workers", "1"],
                  site.server.var_dir / "gunicorn-tls.log", env=env)
    try:
        _wait(lambda: served(port, NAMES_A[0], site.pebble.root), "the TLS listener")
        yield SimpleNamespace(port=port)
    finally:
        stop_process(proc)


def served(port: int, server_name: str, root_pem: str):
    """(the certificate the listener served for SNI `server_name`, the HTTP status of /healthz/live).

    The client verifies the chain up to Pebble's root and the name, as any TLS client would."""
    context = ssl.create_default_context(cadata=root_pem)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as tls:
            der = tls.getpeercert(binary_form=True)
            tls.sendall(f"GET /healthz/live HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
    return x509.load_der_x509_certificate(der), int(data.split(b" ", 2)[1])


def test_tls_listener_serves_the_acme_certificates_by_sni(site, tls_server):
    root = site.pebble.root
    cert, status = served(tls_server.port, NAMES_A[0], root)
    assert pki.san_names(cert) == NAMES_A and status == 200
    # Provider B's names are not on the listener's own certificate: the SNI callback picks B's.
    for name in NAMES_B:
        cert, status = served(tls_server.port, name, root)
        assert pki.san_names(cert) == NAMES_B and status == 200
    # A name with no stored certificate gets the listener's own, which a client then refuses.
    with pytest.raises(ssl.SSLCertVerificationError):
        served(tls_server.port, "other.example.test", root)


def test_renew_renews_only_what_is_due_and_the_listener_follows(site, tls_server):
    server, pb = site.server, site.pebble
    before = server.shell_json(CERTS)
    got = server.manage("acme", "renew", "--ca-bundle", pb.ca)
    assert "Nothing is due." in got.stdout
    assert server.shell_json(CERTS) == before
    # Two thirds of certificate A's lifetime have passed (R23, the default): it is due.
    server.shell(f"""
import datetime as dt
from django.utils import timezone
from certificates.models import Certificate
from registry import ids
now = timezone.now()
Certificate.objects.filter(pk=ids.decode({before[0]['id']!r})).update(
    not_before=now - dt.timedelta(days=60), not_after=now + dt.timedelta(days=30))
""")
    status = server.manage("acme", "status").stdout
    assert "renewal: due: when two thirds of the lifetime have passed" in status
    got = server.manage("acme", "renew", "--ca-bundle", pb.ca, check=False)
    assert got.returncode == 0, got.stdout + got.stderr
    lines = got.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [site.provider_ids[0]], got.stdout
    assert lines[0].startswith(f"{site.provider_ids[0]}: renewed: when two thirds of the lifetime have passed")
    after = server.shell_json(CERTS)
    assert [c["names"] for c in after] == [NAMES_A, NAMES_B, NAMES_A]
    new_serial = after[-1]["serial"]
    assert new_serial != before[0]["serial"]
    fullchain, _ = _tls_files(server, NAMES_A[0])
    assert format(x509.load_pem_x509_certificate(fullchain.read_bytes()).serial_number, "x") == new_serial
    # The running listener serves the renewed certificate, without a restart.
    _wait(lambda: format(served(tls_server.port, NAMES_A[0], pb.root)[0].serial_number, "x") == new_serial,
          "the renewed certificate", timeout=10)
    # Not due any more.
    assert "Nothing is due." in server.manage("acme", "renew", "--ca-bundle", pb.ca).stdout
