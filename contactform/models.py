"""The HttpForm settings singleton: whether /form accepts submissions, where they are mailed,
and how they are checked.

The reference's `rateLimit` is one value, `{"count": 5, "period": 3600000}` or null; here it is
two columns, read and written as one value by `registry.composites.RateChoice`, and two inputs on
the admin page (an empty count turns the limit off).
"""
from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, validate_email
from django.db import models

from registry.fields import NameSetField
from registry.models import SingletonModel

MAX_RECIPIENTS = 100


class EmailSetField(NameSetField):
    """A set of email addresses: {"a@example.org": true, …} in JMAP, one per line on the page."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("schema_type", "Set<EmailAddress>")
        super().__init__(*args, **kwargs)

    def validate(self, value, model_instance):
        super().validate(value, model_instance)
        bad = []
        for address in value:
            try:
                validate_email(address)
            except ValidationError:
                bad.append(address)
        if bad:
            raise ValidationError("Not an email address: %(value)s", code="invalid",
                                  params={"value": ", ".join(bad[:10])})
        if len(value) > MAX_RECIPIENTS:
            raise ValidationError("At most %(limit_value)s recipients.", code="max_length",
                                  params={"limit_value": MAX_RECIPIENTS})


def _optional_field(help_text: str):
    return models.CharField(max_length=255, null=True, blank=True, default=None, help_text=help_text)


class HttpForm(SingletonModel):
    enable = models.BooleanField(
        default=False, help_text="Accept contact form submissions at /form (otherwise it answers 404).",
    )
    deliver_to = EmailSetField(
        "deliver to",
        help_text="The addresses every submission is mailed to. At least one is required while the form "
        "is enabled.",
    )
    max_size = models.PositiveIntegerField(
        default=102_400, validators=[MinValueValidator(1024), MaxValueValidator(10 * 1024 * 1024)],
        help_text="Largest accepted request body, in bytes; a larger submission is refused.",
    )
    rate_limit_count = models.PositiveIntegerField(
        null=True, blank=True, default=5, validators=[MinValueValidator(1), MaxValueValidator(1_000_000)],
        help_text="Submissions accepted per period from one IP address; empty turns the limit off. Loopback "
        "and allowed IP addresses are never limited.",
    )
    rate_limit_period = models.DurationField(
        null=True, blank=True, default=timedelta(hours=1),
        help_text="Length of the window in which submissions are counted (at least one second).",
    )
    validate_domain = models.BooleanField(
        default=True,
        help_text="Check the sender's address: a domain with a top-level domain, that has MX records (or an "
        "address record).",
    )
    field_email = _optional_field("Name of the form field holding the sender's email address.")
    default_from_address = models.CharField(
        max_length=255, default="postmaster@localhost", validators=[validate_email],
        help_text="Sender address used when the form has no email field, or it is empty.",
    )
    field_name = _optional_field("Name of the form field holding the sender's name.")
    default_name = models.CharField(
        max_length=255, default="Anonymous", help_text="Sender name used when the name field is absent or empty.",
    )
    field_subject = _optional_field("Name of the form field holding the subject.")
    default_subject = models.CharField(
        max_length=255, default="Contact form submission",
        help_text="Subject used when the subject field is absent or empty.",
    )
    field_honey_pot = _optional_field(
        "Name of a field hidden from people: a submission where it is filled in is refused as spam.",
    )

    class Meta:
        verbose_name = "contact form"
        verbose_name_plural = "contact form"

    def clean(self):
        self.deliver_to = sorted({address.strip().lower() for address in self.deliver_to or [] if address.strip()})
        for name in ("field_email", "field_name", "field_subject", "field_honey_pot"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.strip() or None)
        errors = {}
        if self.enable and not self.deliver_to:
            errors["deliver_to"] = ValidationError(
                "An enabled contact form needs at least one recipient.", code="required_when_enabled")
        if self.rate_limit_count is not None and (
            self.rate_limit_period is None or self.rate_limit_period < timedelta(seconds=1)
        ):
            errors["rate_limit_period"] = ValidationError(
                "The period must be at least one second.", code="min_value", params={"limit_value": 1000})
        honeypot = self.field_honey_pot
        if honeypot and honeypot in (self.field_email, self.field_name, self.field_subject):
            # A filled honeypot refuses the submission: it cannot also be a field people fill in.
            errors["field_honey_pot"] = ValidationError(
                "The honeypot field must differ from the email, name and subject fields.", code="honeypot_clash")
        if errors:
            raise ValidationError(errors)

    def __str__(self):
        return "Contact form settings"
