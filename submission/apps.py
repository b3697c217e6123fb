from django.apps import AppConfig


class SubmissionConfig(AppConfig):
    name = "submission"
    verbose_name = "Sending mail"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # The JMAP methods and session capabilities register themselves on import; the module
        # reads models, so it can only be imported once the app registry is ready.
        from . import checks, jmap  # noqa: F401
        from .imip import register

        register()
