from django.apps import AppConfig


class BlobsConfig(AppConfig):
    name = "blobs"
    verbose_name = "Blobs"
    default_auto_field = "django.db.models.BigAutoField"
