from django.apps import AppConfig


class RsvpConfig(AppConfig):
    name = "rsvp"
    verbose_name = "Calendar RSVP"

    def ready(self):
        # calendars sits below this app and cannot import it: the invitations it mails get their
        # answer links through this seam (as submission registers the iMIP sender).
        from calendars import itip

        from . import tokens

        itip.register_links(tokens.links)
