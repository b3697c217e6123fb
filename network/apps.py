from django.apps import AppConfig


class NetworkConfig(AppConfig):
    name = "network"
    verbose_name = "HTTP service"

    def ready(self):
        from . import objects  # noqa: F401  (registers the declarations)
