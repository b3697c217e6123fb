"""Sending mail: the account's identities (RFC 8621 §6), its vacation response (§8) with the
replies it already sent, and the relay routes outbound mail leaves through."""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q

from registry.crypto import EncryptedTextField


class Identity(models.Model):
    """An address the account sends as, with the name and signatures a client puts on its mail."""

    account = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=255, blank=True, default="")
    email = models.CharField(max_length=320)
    # Lists of RFC 8621 EmailAddress objects ({"name", "email"}), or null.
    reply_to = models.JSONField(null=True, blank=True)
    bcc = models.JSONField(null=True, blank=True)
    text_signature = models.TextField(blank=True, default="")
    html_signature = models.TextField(blank=True, default="")
    # The identity made for the account's own address on its first Identity/get: it cannot be
    # destroyed (mayDelete false), and the partial unique index keeps two racing first reads
    # from making two.
    is_default = models.BooleanField(default=False)

    class Meta:
        verbose_name_plural = "identities"
        constraints = [models.UniqueConstraint(fields=["account"], condition=Q(is_default=True),
                                               name="submission_identity_one_default")]

    def __str__(self):
        return f"{self.name} <{self.email}>" if self.name else self.email


class VacationResponse(models.Model):
    """The account's one vacation response (JMAP id "singleton"); no row means the defaults."""

    account = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    is_enabled = models.BooleanField(default=False)
    from_date = models.DateTimeField(null=True, blank=True)
    to_date = models.DateTimeField(null=True, blank=True)
    subject = models.TextField(null=True, blank=True)
    text_body = models.TextField(null=True, blank=True)
    html_body = models.TextField(null=True, blank=True)

    def __str__(self):
        return f"vacation response of account {self.account_id}"


class VacationReply(models.Model):
    """A vacation reply already sent: the sieve Vacation action's tracking key (sender and
    handle, RFC 5230 §4.2) and when, so that the same sender is not answered again within the
    period."""

    account = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+",
                                db_index=False)
    tracking_key = models.CharField(max_length=64)
    sent_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "tracking_key"],
                                               name="submission_vacation_reply_key")]


route_name_validator = RegexValidator(r"^[a-z0-9][a-z0-9_.-]{0,63}$",
                                      "Lower-case letters, digits, '.', '_' and '-', starting with a letter or digit.")
host_validator = RegexValidator(
    r"^(?:\[[0-9a-fA-F:.]+\]|[0-9a-fA-F:]*:[0-9a-fA-F:.]+|[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?)$",
    "Enter a host name or an IP address.")


class MtaRoute(models.Model):
    """A relay host outbound mail is handed to (the reference's MtaRoute, variant Relay)."""

    class StartTls(models.TextChoices):
        OPTIONAL = "optional", "Optional (use STARTTLS when offered)"
        REQUIRE = "require", "Require STARTTLS"
        DISABLE = "disable", "Disable STARTTLS"

    class SecretKind(models.TextChoices):
        NONE = "none", "None"
        VALUE = "value", "Value"
        ENVIRONMENT_VARIABLE = "env", "Environment variable"
        FILE = "file", "File"

    name = models.CharField(max_length=64, unique=True, validators=[route_name_validator],
                            help_text="Short identifier for the route. EmailSubmission sends through the route "
                                      "named by SUBMISSION_ROUTE (default \"relay\").")
    description = models.CharField(max_length=255, blank=True, default="",
                                   help_text="A short description of the route.")
    address = models.CharField(max_length=255, validators=[host_validator],
                               help_text="The address of the remote SMTP server: an IP address or a host name.")
    port = models.PositiveIntegerField(default=25, validators=[MinValueValidator(1), MaxValueValidator(65535)],
                                       help_text="The port of the remote server: typically 25, 587 for submission "
                                                 "with STARTTLS, 465 for implicit TLS.")
    implicit_tls = models.BooleanField(default=False,
                                       help_text="Use TLS from the first byte (port 465) instead of plain SMTP.")
    start_tls = models.CharField(max_length=8, choices=StartTls.choices, default=StartTls.REQUIRE,
                                 help_text="Whether to upgrade a plain connection with STARTTLS. Credentials are "
                                           "never sent over a connection that is not encrypted.")
    allow_invalid_certs = models.BooleanField(default=False,
                                              help_text="Whether to allow connections to servers with invalid "
                                                        "TLS certificates.")
    auth_username = models.CharField(max_length=255, blank=True, default="",
                                     help_text="The username to authenticate with (AUTH PLAIN or LOGIN); empty "
                                               "for no authentication.")
    auth_secret_kind = models.CharField(max_length=8, choices=SecretKind.choices, default=SecretKind.NONE)
    auth_secret = EncryptedTextField(blank=True, default="",
                                     help_text="The secret to authenticate with the remote server.")
    auth_secret_variable = models.CharField(max_length=255, blank=True, default="")
    auth_secret_file = models.CharField(max_length=1024, blank=True, default="")
    timeout = models.DurationField(default=timedelta(seconds=60),
                                   help_text="How long to wait for the server at each step (1 second to 30 "
                                             "minutes).")

    class Meta:
        ordering = ["name"]
        # Django's default ("mta route") would head the admin pages in lower case.
        verbose_name = "MTA route"
        verbose_name_plural = "MTA routes"

    def __str__(self):
        return self.name

    def clean(self):
        # Bounds here, not as field validators: the schema publishes validator bounds as numbers.
        if self.timeout is not None and not timedelta(seconds=1) <= self.timeout <= timedelta(minutes=30):
            raise ValidationError({"timeout": ValidationError("The timeout is 1 second to 30 minutes.",
                                                              code="out_of_range")})


class EmailSubmission(models.Model):
    """A message handed over for sending (RFC 8621 §7), and where its sending stands.

    The email, identity and thread are kept as plain ids, not foreign keys: the submission
    outlives them (RFC 8621 §7: destroying the email does not change the submission), and the
    message's octets stay held in the blob store (a Hold of kind "submission") while the row
    exists."""

    class UndoStatus(models.TextChoices):
        PENDING = "pending", "Pending"
        FINAL = "final", "Final"
        CANCELED = "canceled", "Canceled"

    account = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    identity_pk = models.BigIntegerField()
    email_pk = models.BigIntegerField()
    thread_pk = models.BigIntegerField()
    blob_id = models.CharField(max_length=64, help_text="The account's JMAP blob id of the message sent.")
    # The Envelope as the client gave it or as derived from the message (RFC 8621 §7):
    # {"mailFrom": Address, "rcptTo": [Address]}, Address = {"email", "parameters"}.
    envelope = models.JSONField()
    send_at = models.DateTimeField()
    undo_status = models.CharField(max_length=8, choices=UndoStatus.choices, default=UndoStatus.PENDING)
    # address -> {"smtpReply", "delivered", "displayed"} (RFC 8621 §7 DeliveryStatus).
    delivery_status = models.JSONField(default=dict)
    # When the sender should next try the recipients still queued; null once none is left.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    # A sender working on the row: its token until the lease runs out (a crashed sender's
    # claim lapses and another takes the row over).
    claim_token = models.CharField(max_length=32, blank=True, default="")
    claimed_until = models.DateTimeField(null=True, blank=True)
    # Destroyed by the client while recipients were still queued: invisible to JMAP, kept until
    # the sender is done with it, then deleted.
    hidden = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["account", "send_at", "id"], name="submission_sub_send_at"),
            models.Index(fields=["next_attempt_at"], name="submission_sub_due"),
        ]

    def __str__(self):
        return f"submission {self.pk} of account {self.account_id}"
