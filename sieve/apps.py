from django.apps import AppConfig


class SieveConfig(AppConfig):
    name = "sieve"
    verbose_name = "Sieve"
