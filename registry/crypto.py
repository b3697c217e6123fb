"""Secrets at rest: values the server must read back (signing keys, TOTP seeds, ACME keys) are
stored encrypted, so that a copy of the database (a backup, a dump, a stolen SQLite file) does
not give them away.

The key is the operator's: STALWART_ENCRYPTION_KEY, or SECRET_KEY when that is unset. HKDF
turns it into a Fernet key (AES-128-CBC with HMAC-SHA256, from `cryptography`); the keys in
STALWART_ENCRYPTION_KEYS_OLD still decrypt, so that `manage.py rotate_encryption_key` can
re-encrypt every row under the current key. Hashes (passwords, client secrets) stay hashes:
they are never read back, so encrypting them would add nothing.
"""
from __future__ import annotations

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.apps import apps
from django.conf import settings
from django.core import validators
from django.core.exceptions import ImproperlyConfigured
from django.db import migrations
from django.db import models

# Marks an encrypted value: a clear value written before encryption existed has no such prefix
# (PEM keys, otpauth URLs and base64url keys cannot start with it), so it is read as it is until
# the migration or the next write encrypts it.
PREFIX = "fernet:"
_INFO = b"stalwart: secrets at rest, v1"


def _derive(secret: str) -> bytes:
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret.encode())
    return base64.urlsafe_b64encode(raw)


def key_material() -> tuple[str, tuple[str, ...]]:
    """The current key and the old ones, as configured."""
    current = getattr(settings, "ENCRYPTION_KEY", "") or settings.SECRET_KEY
    old = [*getattr(settings, "ENCRYPTION_KEYS_OLD", ())]
    # SECRET_KEY is what encrypted the rows until the operator set a key of their own: it still
    # decrypts, so that setting one is followed by a rotation, not by unreadable rows.
    old.append(settings.SECRET_KEY)
    return current, tuple(dict.fromkeys(k for k in old if k and k != current))


@functools.lru_cache(maxsize=8)
def _fernet(current: str, old: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(_derive(k)) for k in (current, *old)])


def fernet() -> MultiFernet:
    return _fernet(*key_material())


def is_encrypted(value) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def encrypt(value: str) -> str:
    """The stored form of `value`; empty stays empty, so that "is one set?" remains a query."""
    if not value or is_encrypted(value):
        return value
    return PREFIX + fernet().encrypt(value.encode()).decode("ascii")


def decrypt(value: str) -> str:
    if not is_encrypted(value):
        return value
    try:
        return fernet().decrypt(value[len(PREFIX):].encode("ascii")).decode()
    except (InvalidToken, UnicodeError, ValueError):
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted: STALWART_ENCRYPTION_KEY (or SECRET_KEY) is not the key it "
            "was encrypted with. Put the previous key in STALWART_ENCRYPTION_KEYS_OLD, then run "
            "`manage.py rotate_encryption_key`."
        ) from None


def needs_rotation(value: str) -> bool:
    """Whether a stored value is clear, or encrypted under another key than the current one."""
    if not value:
        return False
    if not is_encrypted(value):
        return True
    current, _old = key_material()
    try:
        _fernet(current, ()).decrypt(value[len(PREFIX):].encode("ascii"))
    except (InvalidToken, ValueError):
        return True
    return False


class EncryptedTextField(models.TextField):
    """Text that the database only ever sees encrypted (see the module's docstring).

    The Python value is the clear text. Lookups other than equality with "" cannot match: each
    encryption of a value differs. `max_length` limits the clear text, and a field that has one
    is edited in a one-line input.
    """

    description = "Text, encrypted at rest"

    @property
    def validators(self):
        extra = [validators.MaxLengthValidator(self.max_length)] if self.max_length else []
        return [*super().validators, *extra]

    def from_db_value(self, value, expression, connection):
        return decrypt(value) if value is not None else value

    def to_python(self, value):
        value = super().to_python(value)
        return decrypt(value) if is_encrypted(value) else value

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        return encrypt(value) if isinstance(value, str) else value

    def formfield(self, **kwargs):
        if self.max_length:
            return super(models.TextField, self).formfield(**{"max_length": self.max_length, **kwargs})
        return super().formfield(**kwargs)


def encrypted_fields():
    """(model, field) for every EncryptedTextField of the installed models."""

    for model in apps.get_models():
        for f in model._meta.concrete_fields:
            if isinstance(f, EncryptedTextField):
                yield model, f


def encrypt_rows(model, names) -> int:
    """Write every row's values of `names` again, encrypted under the current key (a data
    migration's and the rotation's step); returns how many rows changed. Raw values are read
    and written, so that no save() hook runs and nothing else of the row moves."""
    count = 0
    for name in names:
        # Cast: read the column as plain text, past the field's decryption.
        rows = model._base_manager.values_list("pk", models.functions.Cast(name, output_field=models.TextField()))
        for pk, raw in rows.iterator():
            if raw is None or not needs_rotation(raw):
                continue
            stored = models.Value(encrypt(decrypt(raw)), output_field=models.TextField())
            model._base_manager.filter(pk=pk).update(**{name: stored})
            count += 1
    return count


def decrypt_rows(model, names) -> int:
    """The reverse of encrypt_rows, for a migration taken back: clear values again."""
    count = 0
    for name in names:
        rows = model._base_manager.values_list("pk", models.functions.Cast(name, output_field=models.TextField()))
        for pk, raw in rows.iterator():
            if is_encrypted(raw):
                clear = models.Value(decrypt(raw), output_field=models.TextField())
                model._base_manager.filter(pk=pk).update(**{name: clear})
                count += 1
    return count


def migration(app_label: str, fields: dict[str, list[str]]):
    """The RunPython operation of a data migration that encrypts `fields` ({model: [field]})."""

    def forward(apps, schema_editor):
        for model, names in fields.items():
            encrypt_rows(apps.get_model(app_label, model), names)

    def backward(apps, schema_editor):
        for model, names in fields.items():
            decrypt_rows(apps.get_model(app_label, model), names)

    return migrations.RunPython(forward, backward)
