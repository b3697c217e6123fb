"""The blob store's rows: the content (one row per distinct content), each account's view of it
(its JMAP blob id), and the references that keep it (an upload, later an email, a script...).

Content is shared between accounts (deduplicated); ids and references are per account, so one
account never learns from an id whether another holds the same bytes.
"""
from django.conf import settings
from django.db import models


class Blob(models.Model):
    """Distinct content, stored once under `name` in the blob storage."""

    digest = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the content, lower-case hex.")
    size = models.PositiveBigIntegerField()
    # Unique per row, never reused: a row collected and a new one for the same content get two
    # files, so deleting the old file cannot remove the new one.
    name = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.digest


class AccountBlob(models.Model):
    """An account's access to a blob, under the JMAP id it knows it by."""

    account = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="holders")
    jmap_id = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Never earlier than the latest expiry given to a reference of this view (an upload's end);
    # may be later (that reference released since). The usage measures the content held by
    # uploads alone live, from the account's views whose `held_until` is still ahead (an
    # index range), not from all its views.
    held_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "blob"], name="blobs_one_view_per_account")]
        indexes = [models.Index(fields=["account", "held_until"], name="blobs_view_held_until")]

    def __str__(self):
        return self.jmap_id


class Hold(models.Model):
    """One reference to an account's blob: who holds it (`owner_kind`, `owner_id`), until when."""

    account_blob = models.ForeignKey(AccountBlob, on_delete=models.CASCADE, related_name="holds")
    owner_kind = models.CharField(max_length=32)
    owner_id = models.CharField(max_length=64)
    # Uploads are held for the upload lifetime (RFC 8620 §6.1); other references until released.
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account_blob", "owner_kind", "owner_id"],
                                               name="blobs_one_hold_per_owner")]
        indexes = [models.Index(fields=["owner_kind", "owner_id"])]


class StoreUsage(models.Model):
    """What a store keeps for an account: a data type registered with
    `register_usage(…, counted=True)`, or the blobs themselves (`services.BLOB_USAGE`: the
    content the account holds by a lasting reference). Its octets and items are moved by the
    store's own writes (`count_usage`), so that a quota check or an item limit reads one row,
    whatever the number of items. No row yet: measured once, by the first write that moves it."""

    account = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    data_type = models.CharField(max_length=32)
    octets = models.BigIntegerField(default=0)
    items = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "data_type"], name="blobs_one_usage_per_type")]

    def __str__(self):
        return f"{self.data_type} of account {self.account_id}"
