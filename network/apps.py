from django.apps import AppConfig


class NetworkConfig(AppConfig):
    name = "network"
    verbose_name = "HTTP service"

    def ready(self):
        from accounts.http_auth import AFTER_AUTH

        from .middleware import charge_account

        if charge_account not in AFTER_AUTH:
            AFTER_AUTH.append(charge_account)
