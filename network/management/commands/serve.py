"""Serve the HTTP service with gunicorn on every enabled HTTP listener (what `make run` does).

gunicorn applies TLS to all the sockets of one server, so plain and TLS listeners get a server
each, started side by side with the same configuration (gunicorn.conf.py); this command
forwards signals to both and stops when either stops.
"""
from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from accounts.models import SystemSettings
from network.models import NetworkListener

ROOT = Path(settings.BASE_DIR)


def tls_files() -> tuple[Path, Path]:
    """The certificate served by default on TLS listeners: the newest issued one (see
    certificates/), else a self-signed one for the host name, made once."""
    base = Path(settings.VAR_DIR) / "tls"
    issued = sorted((p for p in base.glob("*/fullchain.pem") if p.parent.name != "self-signed"),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    for chain in issued:
        key = chain.parent / "privkey.pem"
        if key.exists():
            return chain, key
    return self_signed(base / "self-signed")


def self_signed(folder: Path) -> tuple[Path, Path]:



    chain, keyfile = folder / "fullchain.pem", folder / "privkey.pem"
    if chain.exists() and keyfile.exists():
        return chain, keyfile
    host = SystemSettings.load().hostname or "localhost"
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    keyfile.touch(mode=0o600)
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return chain, keyfile


def plan() -> list[list[str]]:
    """The gunicorn command lines: one for the plain listeners, one for the TLS listeners."""

    plain, tls = [], []
    for listener in NetworkListener.objects.filter(enabled=True, protocol="http").order_by("name"):
        (tls if listener.use_tls else plain).extend(listener.bind)
    if not plain and not tls:
        raise CommandError("No enabled HTTP listener: create one, e.g. "
                           "manage.py create networklistener --field name=http --field 'bind={\"127.0.0.1:8080\": true}'")
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    # No application on the command line: gunicorn.conf.py names the one of its serving model.
    base = [gunicorn, "-c", str(ROOT / "gunicorn.conf.py")]
    commands = []
    if plain:
        commands.append(base + [arg for bind in plain for arg in ("--bind", bind)])
    if tls:
        chain, key = tls_files()
        commands.append(base + [arg for bind in tls for arg in ("--bind", bind)]
                        + ["--certfile", str(chain), "--keyfile", str(key)])
    return commands


class Command(BaseCommand):
    help = "Serve HTTP with gunicorn on every enabled HTTP listener."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Print the gunicorn command lines and stop.")

    def handle(self, *args, dry_run=False, **options):
        commands = plan()
        if dry_run:
            for command in commands:
                self.stdout.write(" ".join(command))
            return

        connections.close_all()
        if len(commands) == 1:
            os.execv(commands[0][0], commands[0])
        # The servers share one metrics directory: emptied here, once, not by each of them.
        metrics_dir = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or Path(settings.VAR_DIR) / "prometheus")
        metrics_dir.mkdir(parents=True, exist_ok=True)
        for stale in metrics_dir.glob("*.db"):
            stale.unlink()
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "STALWART_METRICS_DIR_READY": "1"}
        procs = [subprocess.Popen(command, env=env) for command in commands]

        def forward(signum, frame):
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signum)

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, forward)
        try:
            while all(proc.poll() is None for proc in procs):
                time.sleep(0.5)
        finally:
            forward(signal.SIGTERM, None)
            for proc in procs:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        code = next((proc.returncode for proc in procs if proc.returncode), 0)
        sys.exit(code)
