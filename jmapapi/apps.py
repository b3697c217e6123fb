from django.apps import AppConfig


class JmapConfig(AppConfig):
    name = "jmapapi"
    verbose_name = "JMAP"

    def ready(self):
        from . import objects  # noqa: F401  (declarations)
        from . import methods  # noqa: F401
