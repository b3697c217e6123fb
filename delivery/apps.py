from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "delivery"
    verbose_name = "Mail delivery"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # The JMAP methods, the session capability and the blob data type register themselves
        # on import; the modules read models, so only once the app registry is ready.
        from . import checks, jmap  # noqa: F401
