"""certificates.tls: the context gunicorn's ssl_context hook returns, driven with real TLS
handshakes in-process (test_pebble.py does the same through gunicorn)."""
import os
import socket
import ssl
import threading
import time

import pytest
from cryptography import x509

from certificates import tls

from . import pki


@pytest.fixture
def store(tmp_path, settings, monkeypatch):
    settings.VAR_DIR = tmp_path
    settings.PUBLIC_URL = "https://mail.example.org"
    monkeypatch.setattr(tls, "_store", None)
    monkeypatch.setattr(tls, "CHECK_INTERVAL", 0)
    ca_key, ca_cert = pki.ca()
    listener_key, listener_cert = pki.leaf(ca_key, ca_cert, ["listener.example.net"])
    (tmp_path / "listener.pem").write_text(pki.cert_pem(listener_cert))
    (tmp_path / "listener.key").write_text(pki.key_pem(listener_key))

    def factory():  # what gunicorn's default factory does with --certfile/--keyfile
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tmp_path / "listener.pem", tmp_path / "listener.key")
        return context

    def put(directory, names, **validity):
        k, c = pki.leaf(ca_key, ca_cert, names, **validity)
        d = tmp_path / "tls" / directory
        d.mkdir(parents=True, exist_ok=True)
        (d / "privkey.pem").write_text(pki.key_pem(k))
        (d / "fullchain.pem").write_text(pki.cert_pem(c))
        return c

    return factory, put


def handshake(context, server_name):
    """The certificate `context` serves to a client asking for `server_name` (None: no SNI)."""
    a, b = socket.socketpair()
    result = {}

    def serve():
        try:
            with context.wrap_socket(a, server_side=True) as s:
                s.recv(1)
        except (ssl.SSLError, OSError) as exc:
            result["error"] = exc

    thread = threading.Thread(target=serve)
    thread.start()
    client = ssl.create_default_context()
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    with client.wrap_socket(b, server_hostname=server_name) as c:
        der = c.getpeercert(binary_form=True)
        c.sendall(b"x")
    thread.join(5)
    return pki.san_names(x509.load_der_x509_certificate(der))


def test_sni_exact_wildcard_default_and_unknown(store):
    factory, put = store
    put("mail.example.org", ["mail.example.org", "imap.example.org"])
    put("wild.example.com", ["*.example.com"])
    context = tls.server_context(factory)
    assert handshake(context, "imap.example.org") == ["imap.example.org", "mail.example.org"]
    assert handshake(context, "IMAP.Example.Org") == ["imap.example.org", "mail.example.org"]
    assert handshake(context, "a.example.com") == ["*.example.com"]
    # No match (a wildcard covers one level only), or no SNI: the newest certificate for
    # PUBLIC_URL's host, loaded over the listener's own.
    default = ["imap.example.org", "mail.example.org"]
    assert handshake(context, "a.b.example.com") == default
    assert handshake(context, "unknown.example.org") == default
    assert handshake(context, None) == default
    # The hook is called for every connection: the same context while nothing changed.
    assert tls.server_context(factory) is context


def test_without_a_certificate_for_the_default_name_the_listener_keeps_its_own(store, settings):
    factory, put = store
    settings.PUBLIC_URL = "http://127.0.0.1:8080"
    put("mail.example.org", ["mail.example.org"])
    context = tls.server_context(factory)
    assert handshake(context, "other.example.org") == ["listener.example.net"]
    assert handshake(context, None) == ["listener.example.net"]
    assert handshake(context, "mail.example.org") == ["mail.example.org"]


def test_newest_certificate_wins_and_renewals_are_picked_up(store):
    import datetime as dt

    factory, put = store
    now = dt.datetime.now(dt.timezone.utc)
    put("a.example.org", ["a.example.org"], not_after=now + dt.timedelta(days=30))
    put("b.example.org", ["b.example.org", "a.example.org"], not_after=now + dt.timedelta(days=60))
    context = tls.server_context(factory)
    assert handshake(context, "a.example.org") == ["a.example.org", "b.example.org"]
    # A renewal rewrites the files: the running context serves the new certificate.
    time.sleep(0.01)
    put("a.example.org", ["a.example.org", "new.example.org"], not_after=now + dt.timedelta(days=90))
    assert handshake(context, "new.example.org") == ["a.example.org", "new.example.org"]
    assert handshake(context, "a.example.org") == ["a.example.org", "new.example.org"]


def test_a_broken_pair_keeps_what_was_served(store):
    factory, put = store
    put("c.example.org", ["c.example.org"])
    context = tls.server_context(factory)
    assert handshake(context, "c.example.org") == ["c.example.org"]
    # Caught between the new key and the new chain: the old pair stays in service.
    other_key = pki.key()
    key_file = tls.tls_dir() / "c.example.org" / "privkey.pem"
    key_file.write_text(pki.key_pem(other_key))
    os.utime(key_file, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert handshake(context, "c.example.org") == ["c.example.org"]
    put("c.example.org", ["c.example.org", "d.example.org"])
    assert handshake(context, "d.example.org") == ["c.example.org", "d.example.org"]
