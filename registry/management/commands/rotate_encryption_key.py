"""Re-encrypt every stored secret under the current encryption key (see docs/configuration.md).

To change the key: put the old value in STALWART_ENCRYPTION_KEYS_OLD and the new one in
STALWART_ENCRYPTION_KEY on every process, restart, run this command, then remove the old key.
Rows still in clear (written before encryption existed) are encrypted too.
"""
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import TextField
from django.db.models.functions import Cast

from registry import crypto


class Command(BaseCommand):
    help = "Re-encrypt the secrets stored in the database under STALWART_ENCRYPTION_KEY (or SECRET_KEY)."

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true",
                            help="Only count the values not yet under the current key; exit 1 if there are any.")

    def handle(self, *args, check=False, **options):
        total = 0
        try:
            # One transaction: a key missing from STALWART_ENCRYPTION_KEYS_OLD stops the command
            # with nothing half-rotated.
            with transaction.atomic():
                for model, field in self._fields():
                    if check:
                        count = self._stale(model, field.name)
                    else:
                        count = crypto.encrypt_rows(model, [field.name])
                    total += count
                    if count:
                        self.stdout.write(f"{model._meta.label}.{field.name}: {count}")
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        if check:
            self.stdout.write(f"{total} value(s) not under the current key.")
            if total:
                raise CommandError("Run `manage.py rotate_encryption_key`.", returncode=1)
        else:
            self.stdout.write(self.style.SUCCESS(f"{total} value(s) re-encrypted under the current key."))

    @staticmethod
    def _fields():
        return [(m, f) for m, f in crypto.encrypted_fields() if not m._meta.proxy]

    @staticmethod
    def _stale(model, name) -> int:
        raws = model._base_manager.values_list(Cast(name, output_field=TextField()), flat=True)
        return sum(1 for raw in raws.iterator() if raw and crypto.needs_rotation(raw))
