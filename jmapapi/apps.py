from django.apps import AppConfig


class JmapConfig(AppConfig):
    name = "jmapapi"
    verbose_name = "JMAP"

    def ready(self):
        from . import checks, methods  # noqa: F401
