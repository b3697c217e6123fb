from django.apps import AppConfig


class ContactFormConfig(AppConfig):
    name = "contactform"
    verbose_name = "Contact form"
