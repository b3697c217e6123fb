from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class MailConfig(AppConfig):
    name = "mail"
    verbose_name = "JMAP Mail"

    def ready(self):
        # The JMAP methods join the engine's table when imported; the store needs the app
        # registry ready (models), hence here and not at module level.
        from accounts.models import Account

        from fulltext import services as ft

        from . import jmap_email, jmap_mailbox  # noqa: F401
        from .store import create_role_mailboxes

        def role_mailboxes(sender, instance, created, raw=False, **kwargs):
            # Every new account (users and groups, whatever path made it: the services, the
            # admin, a directory mirror) gets its role mailboxes in the transaction that made it.
            if created and not raw:
                create_role_mailboxes(instance.pk)

        post_save.connect(role_mailboxes, sender=Account, weak=False, dispatch_uid="mail.role_mailboxes")

        def purge_index(sender, instance, **kwargs):
            # The index has no foreign key to the account (fulltext knows no app of ours): the
            # account's rows CASCADE away, its documents go here, in the same transaction.
            ft.purge(instance.pk)

        post_delete.connect(purge_index, sender=Account, weak=False, dispatch_uid="mail.purge_index")
