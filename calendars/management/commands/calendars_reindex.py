"""`manage.py calendars_reindex`: move the index of open-ended recurrences forward.

An RRULE without end is indexed up to CALENDAR_INDEX_HORIZON_DAYS past the moment it was
stored; queries past that read the object itself (correct, slower). Run this now and then
(daily, from cron) to index such series again from today.
"""
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from calendars import services
from calendars.models import CalendarObject


class Command(BaseCommand):
    help = "Index open-ended recurring events and tasks again up to the horizon from now."

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", help="Reindex every open-ended object, not only the "
                            "ones whose index ends within half the horizon.")

    def handle(self, *args, **options):
        now = timezone.now()
        due = CalendarObject.objects.filter(indexed_until__isnull=False)
        if not options["all"]:
            due = due.filter(indexed_until__lt=now + timedelta(days=settings.CALENDAR_INDEX_HORIZON_DAYS / 2))
        count = 0
        for obj in due.iterator(chunk_size=200):
            services.reindex(obj, now=now)
            count += 1
        self.stdout.write(f"Reindexed {count} calendar object(s).")
