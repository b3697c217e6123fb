"""`manage.py journal prune`: forget old changes (run it from a periodic job, e.g. daily)."""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from journal import services


class Command(BaseCommand):
    help = "Maintain the change journal."

    def add_arguments(self, parser):
        verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
        prune = verbs.add_parser("prune", help="Forget changes older than the age limit or beyond the count limit.")
        prune.add_argument("--max-age-days", type=int, default=None,
                           help="Keep changes this many days (default: JOURNAL_MAX_AGE_DAYS; 0: no age limit).")
        prune.add_argument("--max-changes", type=int, default=None,
                           help="Keep this many changes per account and type (default: JOURNAL_MAX_CHANGES; "
                                "0: no count limit).")

    def handle(self, *args, verb, **options):
        days = settings.JOURNAL_MAX_AGE_DAYS if options["max_age_days"] is None else options["max_age_days"]
        count = settings.JOURNAL_MAX_CHANGES if options["max_changes"] is None else options["max_changes"]
        if days < 0 or count < 0:
            raise CommandError("--max-age-days and --max-changes are 0 (no limit) or more.")
        deleted = services.prune(max_age=timedelta(days=days) if days else None, max_changes=count or None)
        self.stdout.write(f"Pruned {deleted} journal entries.")
