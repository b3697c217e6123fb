from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self):
        from django.contrib.auth.models import update_last_login
        from django.contrib.auth.signals import user_logged_in

        # The backend stamps last_login itself; the recovery administrator has no row to save.
        user_logged_in.disconnect(update_last_login, dispatch_uid="update_last_login")
        from .backends import remember_session_credential

        user_logged_in.connect(remember_session_credential, dispatch_uid="stalwart_session_credential")
        from . import objects  # noqa: F401  (registers the declarations)
