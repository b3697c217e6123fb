"""Serving the ACME certificates on gunicorn's TLS listeners.

gunicorn.conf.py's `ssl_context(conf, default_ssl_context_factory)` hook calls
`server_context(default_ssl_context_factory)`. The context it returns

- is gunicorn's own (certfile, keyfile, ciphers, client-certificate and ALPN settings), with the
  newest stored certificate for the default name (the host of PUBLIC_URL) loaded over the
  listener's certfile, for clients that send no SNI or a name nothing else matches;
- has an `sni_callback` that picks the newest stored certificate whose names match the name the
  client asked for: an exact name first, then a wildcard one level up (`*.example.org`); any other
  name gets the default above (the listener's own certificate when none is stored for PUBLIC_URL's
  host).

The certificates are the files the ACME client writes, VAR_DIR/tls/<name>/fullchain.pem and
privkey.pem. They are read once, and read again when their modification times change (checked
at most once a second): a renewal is served from the next handshake on, without a restart. No
database access happens during a handshake.

The per-name contexts are built by gunicorn's factory too, so they share its settings, and
then load the stored pair. OpenSSL keeps one certificate per key type in a context: the ACME
keys are ECDSA P-256, so the listener's certfile should be an ECDSA certificate as well
(typically one of ours); an RSA certfile would stay loaded next to ours, and clients could be
given either.
"""
from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509

log = logging.getLogger(__name__)

CHECK_INTERVAL = 1.0  # seconds between two looks at the files


def _settings_value(name: str, env: str, default: str) -> str:
    try:
        # Here, not at the top: the gunicorn master reads this module before Django is configured.
        from django.conf import settings

        return str(getattr(settings, name))
    except Exception:  # Django not configured (a bare gunicorn master): the same environment
        return os.environ.get(env, default)


def tls_dir() -> Path:
    default = str(Path(__file__).resolve().parent.parent / "var")
    return Path(_settings_value("VAR_DIR", "STALWART_VAR_DIR", default)) / "tls"


def default_name() -> str:
    return (urlsplit(_settings_value("PUBLIC_URL", "PUBLIC_URL", "")).hostname or "").lower()


@dataclass
class _Entry:
    """One stored certificate directory, as loaded."""

    directory: Path
    stamp: tuple
    names: list[str]
    not_after: float
    context: ssl.SSLContext


def _stamp(directory: Path) -> tuple | None:
    try:
        chain, key = (directory / "fullchain.pem").stat(), (directory / "privkey.pem").stat()
    except OSError:
        return None
    return (chain.st_mtime_ns, chain.st_size, chain.st_ino, key.st_mtime_ns, key.st_size, key.st_ino)


def _leaf_names(chain_path: Path) -> tuple[list[str], float]:
    leaf = x509.load_pem_x509_certificate(chain_path.read_bytes())
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [n.lower() for n in san.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        names = []
    return names, leaf.not_valid_after_utc.timestamp()


@dataclass
class Store:
    factory: object
    entries: dict[str, _Entry] = field(default_factory=dict)
    by_name: dict[str, ssl.SSLContext] = field(default_factory=dict)
    base: ssl.SSLContext | None = None
    checked_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and self.base is not None and now - self.checked_at < CHECK_INTERVAL:
            return
        with self.lock:
            if not force and self.base is not None and now - self.checked_at < CHECK_INTERVAL:
                return
            self.checked_at = now
            changed = self._load_entries()
            if changed or self.base is None:
                self._index()

    def _load_entries(self) -> bool:
        root = tls_dir()
        try:
            dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            dirs = []
        seen, changed = set(), False
        for directory in dirs:
            stamp = _stamp(directory)
            if stamp is None:
                continue
            seen.add(directory.name)
            old = self.entries.get(directory.name)
            if old is not None and old.stamp == stamp:
                continue
            try:
                names, not_after = _leaf_names(directory / "fullchain.pem")
                context = self.factory()
                context.load_cert_chain(directory / "fullchain.pem", directory / "privkey.pem")
            except (OSError, ValueError, ssl.SSLError) as exc:
                # Caught between the key and the chain of a renewal, or a broken pair: keep what
                # was served, and look again at the next check.
                log.warning("TLS certificate in %s not loaded: %s", directory, exc)
                continue
            self.entries[directory.name] = _Entry(directory, stamp, names, not_after, context)
            changed = True
        for gone in set(self.entries) - seen:
            del self.entries[gone]
            changed = True
        return changed

    def _index(self) -> None:
        by_name: dict[str, _Entry] = {}
        for entry in sorted(self.entries.values(), key=lambda e: e.not_after):
            for name in entry.names:
                by_name[name] = entry  # the latest expiry wins
        self.by_name = {name: entry.context for name, entry in by_name.items()}
        base = self.factory()
        default = by_name.get(default_name())
        if default is not None:
            try:
                base.load_cert_chain(default.directory / "fullchain.pem", default.directory / "privkey.pem")
            except (OSError, ssl.SSLError) as exc:
                log.warning("default TLS certificate in %s not loaded: %s", default.directory, exc)
        base.sni_callback = self.pick
        self.base = base

    def lookup(self, server_name: str) -> ssl.SSLContext | None:
        name = server_name.lower().rstrip(".")
        context = self.by_name.get(name)
        if context is None and "." in name:
            context = self.by_name.get("*." + name.split(".", 1)[1])
        return context

    def pick(self, sslsocket, server_name, _context):
        """The SNI callback: serve the stored certificate for the name asked for, if any."""
        if not server_name:
            return None
        try:
            self.refresh()
            context = self.lookup(server_name)
            if context is not None:
                sslsocket.context = context
        except Exception:  # never fail a handshake over a lookup: the listener's certificate stays
            log.exception("SNI lookup for %s failed", server_name)
        return None


_store: Store | None = None
_store_lock = threading.Lock()


def server_context(default_ssl_context_factory) -> ssl.SSLContext:
    """gunicorn's ssl_context hook body: its context, with the stored ACME certificates by SNI.

    gunicorn's sync and gthread workers call the hook for every connection; the context is built
    once and rebuilt only when the stored files change.
    """
    global _store
    with _store_lock:
        if _store is None:
            _store = Store(default_ssl_context_factory)
    _store.refresh()
    return _store.base
