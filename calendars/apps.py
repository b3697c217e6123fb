from django.apps import AppConfig
from django.db.models import OuterRef, Subquery, Sum


class CalendarsConfig(AppConfig):
    name = "calendars"
    verbose_name = "Calendars"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Registers the system checks of the limits (calendars.E001…).
        from . import checks  # noqa: F401

        # The octets of the calendar objects count toward the account's one disk quota (blobs owns
        # it and may not import this app); models are ready only now. The store keeps its count
        # (services._count), so that a write's quota check reads one row, at any number of objects.
        from blobs import services as blobs

        from .models import CalendarObject

        blobs.register_usage("CalendarEvent", lambda: Subquery(
            CalendarObject.objects.filter(account_id=OuterRef("pk")).values("account_id")
            .annotate(total=Sum("size")).values("total")[:1]), counted=True)
