from django.apps import AppConfig


class CalendarsConfig(AppConfig):
    name = "calendars"
    verbose_name = "Calendars"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Registers the system checks of the limits (calendars.E001…).
        from . import checks  # noqa: F401
