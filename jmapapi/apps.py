from django.apps import AppConfig


class JmapConfig(AppConfig):
    name = "jmapapi"
    verbose_name = "JMAP"

    def ready(self):
        # Imported once the app registry is ready: both import models.
        from . import objects  # noqa: F401  (declarations)
        from . import methods  # noqa: F401
