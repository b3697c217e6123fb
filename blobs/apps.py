from django.apps import AppConfig
from django.db.models.signals import post_save, pre_save


class BlobsConfig(AppConfig):
    name = "blobs"
    verbose_name = "Blobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Models are ready only now; accounts (below) learns the disk usage from here.
        from accounts import usage as account_usage
        from accounts.models import Account
        from journal import services as journal

        from . import services

        account_usage.register_disk_usage(services.usage)

        def remember_limit(sender, instance, raw=False, update_fields=None, **kwargs):
            if raw or instance.pk is None or (update_fields is not None and "max_disk_quota" not in update_fields):
                return
            instance._blobs_old_limit = (Account.objects.filter(pk=instance.pk)
                                         .values_list("max_disk_quota", flat=True).first())

        def journal_limit(sender, instance, created, raw=False, **kwargs):
            # The Quota object exists while a limit is set (RFC 9425 has no unlimited quota):
            # setting, changing or removing the limit creates, updates or destroys it.
            if created or raw or not hasattr(instance, "_blobs_old_limit"):
                return
            old, new = instance.__dict__.pop("_blobs_old_limit"), instance.max_disk_quota
            if old == new:
                return
            quota = [services.DISK_QUOTA_ID]
            if old is None:
                journal.record(instance.pk, services.QUOTA_TYPE, created=quota)
            elif new is None:
                journal.record(instance.pk, services.QUOTA_TYPE, destroyed=quota)
            else:
                journal.record(instance.pk, services.QUOTA_TYPE, updated=quota)

        pre_save.connect(remember_limit, sender=Account, weak=False, dispatch_uid="blobs.remember_limit")
        post_save.connect(journal_limit, sender=Account, weak=False, dispatch_uid="blobs.journal_limit")
