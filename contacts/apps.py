from django.apps import AppConfig
from django.db.models import OuterRef, Subquery, Sum


class ContactsConfig(AppConfig):
    name = "contacts"
    verbose_name = "Contacts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Importing the module registers its system checks; at module level it would load
        # settings-dependent code before the app registry is ready.
        from . import checks  # noqa: F401

        # The octets of the vCards count toward the account's one disk quota (blobs owns
        # it and may not import this app); models are ready only now. The store keeps its count
        # (services._count), so that a write's quota check reads one row, at any number of cards.
        from blobs import services as blobs

        from .models import Card

        blobs.register_usage("ContactCard", lambda: Subquery(
            Card.objects.filter(book__account_id=OuterRef("pk")).values("book__account_id")
            .annotate(total=Sum("size")).values("total")[:1]), counted=True)
