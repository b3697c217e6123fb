"""`manage.py directory test <id> <login> [--password-stdin]`: ask an external directory about
one login and show the account a login would mirror (name, description, aliases, groups, roles,
tenant), without creating it. Works for any directory, active or not.

The password is read from standard input, never from the command line (where `ps` and the
shell history would see it).
"""
import json
import sys

from django.core.management.base import BaseCommand, CommandError

from accounts import external
from accounts.models import Directory
from accounts.services import default_domain_name
from registry import ids


class Command(BaseCommand):
    help = "Operations on external directories: test <id> <login> looks a login up and shows its mapped account."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        test = sub.add_parser("test", help="Look a login up (and check its password) without creating the account.")
        test.add_argument("id", help="The directory's id (as `manage.py get directory` shows it).")
        test.add_argument("login", help="The login address (the default domain is appended when it has none).")
        test.add_argument("--password-stdin", action="store_true",
                          help="Read the password from standard input and check it too.")
        test.add_argument("--json", action="store_true", help="Print the mapped account as JSON.")

    def handle(self, *args, action, **options):
        pk = ids.decode(options["id"])
        directory = Directory.objects.filter(pk=pk).first() if pk is not None else None
        if directory is None:
            raise CommandError(f"No directory with id {options['id']}.")
        secret = None
        if options["password_stdin"]:
            secret = sys.stdin.readline().rstrip("\r\n")
        try:
            mapped = external.test_login(directory, options["login"], secret, default_domain_name())
        except external.TestFailed as exc:
            raise CommandError(str(exc)) from None
        if options["json"]:
            self.stdout.write(json.dumps(mapped, indent=2))
            return
        for label, value in external.describe(mapped):
            self.stdout.write(f"{label + ':':<14}{value}")

