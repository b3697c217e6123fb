from django.apps import AppConfig


class DavConfig(AppConfig):
    name = "dav"
    verbose_name = "WebDAV"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import checks  # noqa: F401 - registers the system checks
        # The contact store's provider imports models: only once the app registry is ready.
        from . import carddav, providers
        providers.register(carddav.CardProvider())
