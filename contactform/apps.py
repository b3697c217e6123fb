from django.apps import AppConfig


class ContactFormConfig(AppConfig):
    name = "contactform"
    verbose_name = "Contact form"

    def ready(self):
        from . import objects  # noqa: F401  (registers the declarations)
