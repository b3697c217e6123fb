"""`manage.py relay test`: check a relay route (connect, TLS, AUTH) and optionally send a test
message through it, printing the relay's answer for each recipient. The secret is never shown."""
from __future__ import annotations

import sys
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from submission import outbound
from submission.models import MtaRoute


class Command(BaseCommand):
    help = "Check the outbound relay routes."

    def add_arguments(self, parser):
        verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
        test = verbs.add_parser("test", help="Connect, secure and authenticate as the route says; with --to, also "
                                             "send a short test message.")
        test.add_argument("--route", default=None,
                          help="The route's name (default: SUBMISSION_ROUTE, the route EmailSubmission uses).")
        test.add_argument("--from", dest="mail_from", default=None,
                          help="The envelope sender and From of the test message.")
        test.add_argument("--to", action="append", default=[], metavar="ADDRESS",
                          help="Send a test message to this address (may be repeated).")

    def handle(self, *args, verb, **options):
        name = options["route"] or settings.SUBMISSION_ROUTE
        route = MtaRoute.objects.filter(name=name).first()
        if route is None:
            raise CommandError(f'No route named "{name}" (create one: manage.py create mta-route ...).')
        if not options["to"]:
            try:
                self.stdout.write(f"{route.name}: {outbound.probe(route)}")
            except outbound.RelayFailure as exc:
                raise CommandError(f"{route.name}: {exc.stage}: {exc.message}") from None
            return
        if not options["mail_from"]:
            raise CommandError("--to needs --from (the envelope sender).")
        message = EmailMessage()
        message["From"] = options["mail_from"]
        message["To"] = ", ".join(options["to"])
        message["Subject"] = "Relay test"
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain=options["mail_from"].rpartition("@")[2] or None)
        message.set_content(f'A test message sent through the relay route "{route.name}".\n')
        result = outbound.send(message.as_bytes(), options["mail_from"], options["to"], route)
        for recipient in result.recipients:
            code = recipient.code if recipient.code is not None else "-"
            self.stdout.write(f"{recipient.address}: {recipient.status} ({recipient.stage}, {code}) "
                              f"{recipient.message}")
        if result.temporary or result.permanent:
            sys.exit(1)
