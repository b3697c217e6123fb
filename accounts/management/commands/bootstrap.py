"""First-run set-up: the default domain and the first administrator, created once.

The administrator's password is random and printed this once; it is stored hashed only.
"""
import secrets
import string

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts import credentials
from accounts.models import Account, Domain, SystemSettings
from registry import services as registry

ALPHABET = string.ascii_letters + string.digits


class Command(BaseCommand):
    help = "Create the default domain and the first administrator when there is none."

    def add_arguments(self, parser):
        parser.add_argument("--domain", default=settings.STALWART_DEFAULT_DOMAIN, help="Default mail domain.")
        parser.add_argument("--name", default="admin", help="Login name of the first administrator.")

    def handle(self, *args, domain, name, **options):
        actor = "bootstrap"
        with transaction.atomic():
            system = SystemSettings.load()
            if system.default_domain_id is None:
                dom = Domain.objects.filter(name=domain.lower()).first() or registry.create(
                    Domain._declaration, {"name": domain.lower(), "description": "Default domain"}, actor
                )
                registry.update(SystemSettings._declaration, None, {"default_domain": dom.pk}, actor)
            if Account.objects.filter(kind=Account.Kind.USER, roles_mode=Account.RolesMode.ADMIN).exists():
                self.stdout.write("An administrator exists already; nothing to do.")
                return
            dom = SystemSettings.load().default_domain
            if Account.objects.filter(name=name, domain=dom).exists():
                self.stderr.write(
                    f"warning: {name}@{dom.name} exists but is not an administrator; no administrator was created. "
                    "Give an account administrator roles, or run `manage.py bootstrap --name <other>`."
                )
                return
            password = "".join(secrets.choice(ALPHABET) for _ in range(16))
            account = registry.create(Account._declaration, {
                "name": name, "domain": dom.pk, "description": "System administrator",
                "roles_mode": Account.RolesMode.ADMIN,
            }, actor)
            # A random 16-character password is strong; the policy is not applied, as in the reference.
            credentials.set_password(account, password, actor, allow_prehashed=False, expires_at=None,
                                  self_service=False, skip_policy=True)
        self.stdout.write("")
        self.stdout.write("First administrator created. Its password is shown this once:")
        self.stdout.write(f"  login:    {account.email_address}")
        self.stdout.write(f"  password: {password}")
        self.stdout.write("")
