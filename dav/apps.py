from django.apps import AppConfig


class DavConfig(AppConfig):
    name = "dav"
    verbose_name = "WebDAV"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import checks  # noqa: F401 - registers the system checks
        # The CalDAV provider reads the calendar store's models: only once the apps are loaded.
        from .caldav import CalendarProvider
        from .providers import register

        register(CalendarProvider())
