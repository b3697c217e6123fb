from django.apps import AppConfig
from django.db.models.signals import post_migrate

from .permissions import all_permissions


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self):
        # Imported once the app registry is ready: these modules import models.
        from django.contrib.auth.models import update_last_login
        from django.contrib.auth.signals import user_logged_in

        from .backends import remember_session_credential

        # The backend stamps last_login itself; the recovery administrator has no row to save.
        user_logged_in.disconnect(update_last_login, dispatch_uid="update_last_login")
        user_logged_in.connect(remember_session_credential, dispatch_uid="stalwart_session_credential")
        # Imported in ready(): it imports the models, not loaded while app configs are created.
        from .builtin_roles import sync_after_migrate

        # The built-in roles receive the permission names that new declarations bring.
        post_migrate.connect(sync_after_migrate, sender=self, dispatch_uid="stalwart_builtin_roles")

    def permission_catalogue(self):
        """The permission names the system check (registry.checks) accepts."""
        return all_permissions()
