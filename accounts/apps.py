from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self):
        # Imported once the app registry is ready: these modules import models.
        from django.contrib.auth.models import update_last_login
        from django.contrib.auth.signals import user_logged_in

        from . import objects  # noqa: F401  (registers the declarations)
        from .backends import remember_session_credential

        # The backend stamps last_login itself; the recovery administrator has no row to save.
        user_logged_in.disconnect(update_last_login, dispatch_uid="update_last_login")
        user_logged_in.connect(remember_session_credential, dispatch_uid="stalwart_session_credential")
