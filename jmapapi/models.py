from datetime import timedelta

from django.core.validators import MinValueValidator
from django.db import models

from registry.models import SingletonModel


class Jmap(SingletonModel):
    """JMAP protocol limits (the reference's Jmap object, limit fields)."""

    max_request_size = models.PositiveIntegerField(
        default=10_000_000, validators=[MinValueValidator(1024)],
        help_text="Maximum size of a JMAP request body, in bytes.")
    max_method_calls = models.PositiveIntegerField(
        default=16, validators=[MinValueValidator(1)], help_text="Maximum number of method calls in one request.")
    max_concurrent_requests = models.PositiveIntegerField(
        null=True, blank=True, default=4, validators=[MinValueValidator(1)],
        help_text="Maximum number of requests one account may have in flight (empty: unlimited).")
    get_max_results = models.PositiveIntegerField(
        default=500, validators=[MinValueValidator(1)], help_text="Maximum number of objects one /get may return.")
    set_max_objects = models.PositiveIntegerField(
        default=500, validators=[MinValueValidator(1)],
        help_text="Maximum number of objects one /set may create, update and destroy.")
    query_max_results = models.PositiveIntegerField(
        default=5000, validators=[MinValueValidator(1)], help_text="Maximum number of ids one /query returns.")
    changes_max_results = models.PositiveIntegerField(
        default=5000, validators=[MinValueValidator(1)], help_text="Maximum number of changes one /changes returns.")
    max_upload_size = models.PositiveIntegerField(
        default=50_000_000, validators=[MinValueValidator(1)], help_text="Maximum size of an uploaded blob, in bytes.")
    max_concurrent_uploads = models.PositiveIntegerField(
        null=True, blank=True, default=4, validators=[MinValueValidator(1)],
        help_text="Maximum number of uploads one account may have in flight (empty: unlimited).")
    upload_quota = models.PositiveBigIntegerField(
        default=50_000_000, validators=[MinValueValidator(1)],
        help_text="Maximum number of bytes one account may upload within the upload lifetime.")
    max_upload_count = models.PositiveIntegerField(
        default=1000, validators=[MinValueValidator(1)],
        help_text="Maximum number of blobs one account may upload within the upload lifetime.")
    upload_ttl = models.DurationField(
        default=timedelta(hours=1),
        help_text="How long an uploaded blob that nothing references is kept (RFC 8620 §6.1).")

    class Meta:
        verbose_name = "JMAP"
        verbose_name_plural = "JMAP"

    def __str__(self):
        return "JMAP settings"


class PushSubscription(models.Model):
    """A Web Push subscription (RFC 8620 §7.2): where to POST an account's StateChanges.

    It belongs to the account that made it; a client sees and changes only its account's
    subscriptions. Nothing is pushed to it until its client has echoed the verification code
    the server POSTed to its URL (`verified`)."""

    account = models.ForeignKey("accounts.Account", on_delete=models.CASCADE, related_name="push_subscriptions")
    device_client_id = models.CharField(max_length=255)
    url = models.CharField(max_length=2048)
    # RFC 8291 keys, base64url as the client sent them; empty when the client gave none.
    p256dh = models.CharField(max_length=128, blank=True, default="")
    auth = models.CharField(max_length=64, blank=True, default="")
    verification_code = models.CharField(max_length=64)
    verified = models.BooleanField(default=False)
    expires = models.DateTimeField()
    # The data types to push (null: all), and the ones the creating session could read.
    types = models.JSONField(null=True, blank=True, default=None)
    readable = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["account", "verified"])]

    def __str__(self):
        return f"push subscription {self.pk} of account {self.account_id}"
