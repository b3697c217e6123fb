"""manage.py collect_blobs: delete blobs nothing references any more (run it periodically)."""
from django.core.management.base import BaseCommand

from blobs import services


class Command(BaseCommand):
    help = ("Delete expired uploads and blobs that nothing references, with their stored files; "
            "safe to run while the server serves.")

    def add_arguments(self, parser):
        parser.add_argument("--no-orphans", action="store_true",
                            help="Do not look for stored files that no blob names (a listing of the whole store).")

    def handle(self, *args, no_orphans=False, **options):
        done = services.collect(orphans=not no_orphans)
        self.stdout.write(f"expired references: {done.holds}, account blobs: {done.views}, "
                          f"blobs: {done.blobs}, orphan files: {done.files}")
