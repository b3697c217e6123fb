from django.apps import AppConfig


class DavConfig(AppConfig):
    name = "dav"
    verbose_name = "WebDAV"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import checks  # noqa: F401 - registers the system checks
        # The providers read the stores' models: only once the app registry is ready.
        from . import caldav, carddav, providers, schedule
        providers.register(carddav.CardProvider())
        providers.register(caldav.CalendarProvider())
        providers.register(schedule.ScheduleProvider())
