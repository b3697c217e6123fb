from django.apps import AppConfig


class FulltextConfig(AppConfig):
    name = "fulltext"
    verbose_name = "Full-text search"
