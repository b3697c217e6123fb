from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Audit"

    def ready(self):
        # Imported here, not at the top: both modules import models, which are not loaded
        # while app configs are being created.
        from django.contrib import admin

        from . import checks  # noqa: F401  (registers the system check)
        from . import declaration
        from .admin import register_declared

        declaration.autodiscover()
        # Django's admin (listed before this app) has already imported every app's admin
        # module by now; calling it again is a no-op then, and keeps this right in any order.
        admin.autodiscover()
        register_declared()
