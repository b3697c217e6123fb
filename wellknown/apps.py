from django.apps import AppConfig


class WellKnownConfig(AppConfig):
    name = "wellknown"
    verbose_name = "Client discovery"

    def ready(self):
        from . import objects  # noqa: F401  (registers the declarations)
