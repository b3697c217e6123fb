"""`manage.py lmtp`: the LMTP listener an MTA hands incoming mail to (docs/mail-delivery.md)."""
from __future__ import annotations

import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from delivery import lmtp
from stalwart_site.settle import settle


class Command(BaseCommand):
    help = "Listen for LMTP (RFC 2033) and deliver what an MTA hands over."
    requires_system_checks = "__all__"

    def add_arguments(self, parser):
        parser.add_argument("--host", default=None, help="Address to bind (default: LMTP_HOST, 127.0.0.1).")
        parser.add_argument("--port", type=int, default=None, help="Port to bind (default: LMTP_PORT, 2424).")
        parser.add_argument("--workers", type=int, default=None,
                            help="Processes accepting connections (default: LMTP_WORKERS, the number of cores).")

    def handle(self, *args, **opts):
        host = opts["host"] or settings.LMTP_HOST
        port = opts["port"] if opts["port"] is not None else settings.LMTP_PORT
        workers = opts["workers"] if opts["workers"] is not None else settings.LMTP_WORKERS
        if not 1 <= workers <= 64:
            raise CommandError(f"--workers must be between 1 and 64, got {workers}")

        settle()  # before the workers fork: they inherit the frozen objects

        def ready(sockets):
            bound = ", ".join(f"{s.getsockname()[0]}:{s.getsockname()[1]}" for s in sockets)
            self.stdout.write(f"LMTP listening on {bound} ({workers} worker{'s' if workers > 1 else ''})")
            sys.stdout.flush()

        lmtp.serve(host, port, settings.LMTP_MAX_MESSAGE_SIZE, ready=ready, workers=workers)
