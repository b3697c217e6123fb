"""manage.py acme: obtain, renew and list the ACME certificates (docs/certificates.md).

    manage.py acme obtain <provider id>…   one order per provider, now, whatever is due
    manage.py acme obtain --all
    manage.py acme renew                    what is due (no certificate yet, names changed,
                                            far enough into its lifetime), then exit
    manage.py acme renew --loop --interval 12h
                                            the same, forever (a systemd service or a sidecar)
    manage.py acme status                   the providers, and the certificates with their expiry
"""
from __future__ import annotations

import re
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections, connections
from django.utils import timezone

from registry import ids

from ... import services
from ...models import AcmeProvider, Certificate

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_interval(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text or "")
    if not m or float(m.group(1)) <= 0:
        raise CommandError(f"Invalid interval {text!r}: use a number with s, m, h or d, e.g. 12h.")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def _provider(text: str) -> AcmeProvider:
    pk = ids.decode(text)
    provider = AcmeProvider.objects.filter(pk=pk).first() if pk is not None else None
    if provider is None:
        raise CommandError(f"No ACME provider {text} (the ids are those of `manage.py query acmeprovider`).")
    return provider


class Command(BaseCommand):
    help = "Obtain, renew and list the TLS certificates of the ACME providers."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)

        def common(p):
            p.add_argument("--ca-bundle", help="CA certificates (PEM) to trust for the ACME directory instead of "
                           "the system's (a test CA such as Pebble's).")

        obtain = sub.add_parser("obtain", help="Obtain a certificate now for the given providers.")
        obtain.add_argument("providers", nargs="*", metavar="provider-id")
        obtain.add_argument("--all", action="store_true", dest="all_providers", help="Every HTTP-01 provider.")
        obtain.add_argument("--timeout", type=float, default=90, help="Seconds to wait for the CA (default 90).")
        common(obtain)

        renew = sub.add_parser("renew", help="Renew what is due.")
        renew.add_argument("--loop", action="store_true", help="Keep running, checking every --interval.")
        renew.add_argument("--interval", default="12h", help="Time between checks with --loop (default 12h).")
        renew.add_argument("--rounds", type=int, default=0, help="With --loop: stop after this many checks "
                           "(default: never).")
        common(renew)

        sub.add_parser("status", help="List the providers and certificates, with expiry.")

    def handle(self, *args, action, **options):
        return getattr(self, f"do_{action}")(**options)

    # --- obtain -------------------------------------------------------------------------
    def do_obtain(self, providers=(), all_providers=False, timeout=90, ca_bundle=None, **_):
        if all_providers == bool(providers):
            raise CommandError("Name the providers to obtain for, or give --all.")
        targets = (list(AcmeProvider.objects.filter(challenge_type=AcmeProvider.ChallengeType.HTTP_01))
                   if all_providers else [_provider(p) for p in providers])
        failed = 0
        for provider in targets:
            try:
                cert = services.obtain(provider, actor="manage.py acme", ca_bundle=ca_bundle, timeout=timeout)
            except services.AcmeFailure as exc:
                failed += 1
                self.stderr.write(f"{ids.encode(provider.pk)}: failed: {exc}")
            else:
                self.stdout.write(f"{ids.encode(provider.pk)}: certificate {ids.encode(cert.pk)} for "
                                  f"{', '.join(cert.names)}, valid until {cert.not_after:%Y-%m-%d %H:%M:%S}Z, "
                                  f"in {services.tls_dir() / cert.primary_name}")
        if failed:
            raise CommandError(f"{failed} of {len(targets)} order(s) failed.")

    # --- renew --------------------------------------------------------------------------
    def _renew_once(self, ca_bundle) -> int:
        outcomes = services.renew_due(actor="manage.py acme", ca_bundle=ca_bundle)
        for o in outcomes:
            line = f"{ids.encode(o.provider.pk)}: {o.action}: {o.detail}"
            if o.certificate is not None:
                line += f" (certificate {ids.encode(o.certificate.pk)}, until {o.certificate.not_after:%Y-%m-%d})"
            (self.stderr if o.action == "failed" else self.stdout).write(line)
        if not outcomes:
            self.stdout.write("Nothing is due.")
        return sum(o.action == "failed" for o in outcomes)

    def do_renew(self, loop=False, interval="12h", rounds=0, ca_bundle=None, **_):
        seconds = parse_interval(interval)
        if not loop:
            if self._renew_once(ca_bundle):
                raise CommandError("Some renewals failed.")
            return
        done = 0
        while True:
            close_old_connections()
            try:
                self._renew_once(ca_bundle)
            except Exception as exc:  # a database outage must not end the service
                self.stderr.write(f"renewal check failed: {type(exc).__name__}: {exc}")
            finally:
                connections.close_all()  # hold no connection while sleeping
            done += 1
            if rounds and done >= rounds:
                return
            self.stdout.flush()
            time.sleep(seconds)

    # --- status -------------------------------------------------------------------------
    def do_status(self, **_):
        now = timezone.now()
        providers = list(AcmeProvider.objects.order_by("pk"))
        if not providers:
            self.stdout.write("No ACME provider.")
        for p in providers:
            reason = services.due_reason(p, now)
            self.stdout.write(f"provider {ids.encode(p.pk)}: {p.directory} [{p.challenge_type}] "
                              f"{', '.join(p.domains)}")
            self.stdout.write(f"  account: {p.account_uri or '(not registered yet)'}")
            self.stdout.write(f"  renewal: {'due: ' + reason if reason else 'not due'}"
                              + (f"; {p.failures} failure(s) in a row, last: {p.last_error}" if p.failures else ""))
        for c in Certificate.objects.select_related("provider").order_by("-not_after", "-pk"):
            left = c.not_after - now
            state = f"expires in {left.days} day(s)" if left.total_seconds() > 0 else "EXPIRED"
            self.stdout.write(f"certificate {ids.encode(c.pk)} (provider {ids.encode(c.provider_id)}): "
                              f"{', '.join(c.names)}; {c.not_before:%Y-%m-%d %H:%M}Z – {c.not_after:%Y-%m-%d %H:%M}Z; "
                              f"{state}; issuer {c.issuer}")
