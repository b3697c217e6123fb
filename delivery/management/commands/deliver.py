"""`manage.py deliver`: a local delivery agent. One message on standard input, the recipients
as arguments, the envelope sender with -f; the exit status is what sendmail-style MTAs read
(sysexits.h), so Postfix's pipe(8) and local(8) defer or bounce as they should."""
from __future__ import annotations

import sys

from django.conf import settings
from django.core.management.base import BaseCommand

from delivery import services

# sysexits.h
EX_OK, EX_USAGE, EX_DATAERR, EX_NOUSER, EX_TEMPFAIL, EX_NOPERM = 0, 64, 65, 67, 75, 77


def exit_status(outcomes) -> int:
    """One status for all recipients: any temporary failure defers (the MTA tries again), else
    an unknown recipient is EX_NOUSER and another refusal EX_NOPERM. With several recipients
    a status applies to them all; docs/mail-delivery.md has Postfix hand over one at a time."""
    if any(o.status == services.TEMPORARY for o in outcomes):
        return EX_TEMPFAIL
    refused = [o for o in outcomes if o.status == services.PERMANENT]
    if not refused:
        return EX_OK
    return EX_NOUSER if all(o.enhanced == "5.1.1" for o in refused) else EX_NOPERM


class Command(BaseCommand):
    help = "Deliver one message read on standard input to the recipients given (a local delivery agent)."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("recipients", nargs="+", help="Recipient addresses.")
        parser.add_argument("-f", "--from", dest="sender", default="",
                            help="The envelope sender (empty: the null sender of a bounce).")

    def run_from_argv(self, argv):
        try:
            super().run_from_argv(argv)
        except SystemExit as exc:
            # argparse's usage error is 2; an MTA reads 64 (EX_USAGE) as a permanent failure
            # of the configuration, not of the message.
            raise SystemExit(EX_USAGE if exc.code == 2 else exc.code) from None

    def handle(self, *args, **opts):
        limit = settings.LMTP_MAX_MESSAGE_SIZE
        raw = sys.stdin.buffer.read(limit + 1)
        if len(raw) > limit:
            self.stderr.write(f"552 5.3.4 Message larger than {limit} bytes.")
            raise SystemExit(EX_DATAERR)
        if not raw:
            self.stderr.write("554 5.6.0 Empty message.")
            raise SystemExit(EX_DATAERR)
        sender = opts["sender"]
        if sender.upper() == "MAILER-DAEMON":  # pipe(8)'s default spelling of the null sender
            sender = ""
        outcomes = services.deliver(raw, sender, opts["recipients"])
        for outcome in outcomes:
            stream = self.stdout if outcome.status == services.DELIVERED else self.stderr
            stream.write(f"{outcome.recipient}: {outcome.reply()}")
        status = exit_status(outcomes)
        if status:
            raise SystemExit(status)
