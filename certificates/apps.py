from django.apps import AppConfig


class CertificatesConfig(AppConfig):
    name = "certificates"
    verbose_name = "TLS certificates (ACME)"

    def ready(self):
        from . import objects  # noqa: F401  (registers the declarations)
