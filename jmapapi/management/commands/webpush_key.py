"""`manage.py webpush_key FILE`: make the VAPID key Web Push requests are signed with (a P-256
private key, PKCS#8 PEM, written readable by its owner only), and print its public key."""
from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.management.base import BaseCommand, CommandError

from jmapapi.webpush import b64url


class Command(BaseCommand):
    help = "Generate a VAPID key for Web Push (set WEBPUSH_VAPID_KEY_FILE to the file it writes)."

    def add_arguments(self, parser):
        parser.add_argument("path", help="Where to write the key (PEM). An existing file is not overwritten.")

    def handle(self, *args, path, **options):
        target = Path(path)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise CommandError(f"{target} exists; remove it first to make a new key "
                               "(clients subscribed with the old key must subscribe again).") from None
        except OSError as exc:
            raise CommandError(f"Cannot write {target}: {exc.strerror}.") from None
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        public = b64url(key.public_key().public_bytes(serialization.Encoding.X962,
                                                       serialization.PublicFormat.UncompressedPoint))
        self.stdout.write(f"Wrote {target}. Set WEBPUSH_VAPID_KEY_FILE={target} and restart.\n"
                          f"applicationServerKey: {public}")
