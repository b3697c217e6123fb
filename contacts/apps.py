from django.apps import AppConfig


class ContactsConfig(AppConfig):
    name = "contacts"
    verbose_name = "Contacts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Importing the module registers its system checks; at module level it would load
        # settings-dependent code before the app registry is ready.
        from . import checks  # noqa: F401
