"""OAuth clients (django-oauth-toolkit's Application, with the reference's OAuthClient fields)
and the OpenID Connect provider settings."""
from datetime import timedelta

from django.db import models
from oauth2_provider.models import AbstractApplication, AbstractDeviceGrant

from registry.fields import NameSetField
from registry.models import SingletonModel


class OAuthClient(AbstractApplication):
    """A registered OAuth client. Unknown client ids get an ephemeral one when settings allow."""

    description = models.CharField(max_length=255, blank=True)
    contacts = NameSetField(schema_type="Set<EmailAddress>")
    logo = models.CharField(max_length=2048, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="The client stops working after this time.")
    tenant = models.ForeignKey("accounts.Tenant", null=True, blank=True, on_delete=models.PROTECT,
                               related_name="oauth_clients")
    # Created on the fly for an unregistered client id (when registration is not required).
    ephemeral = models.BooleanField(default=False)

    class Meta(AbstractApplication.Meta):
        swappable = "OAUTH2_PROVIDER_APPLICATION_MODEL"
        verbose_name = "OAuth client"

    def __str__(self):
        return self.description or self.client_id


class SignatureAlgorithm(models.TextChoices):
    ES256 = "es256", "ES256"
    RS256 = "rs256", "RS256"


class OidcProvider(SingletonModel):
    """Lifetimes, client rules and the signing key of the built-in OpenID Connect provider."""

    access_token_expiry = models.DurationField(default=timedelta(hours=1), help_text="Lifetime of access tokens.")
    refresh_token_expiry = models.DurationField(default=timedelta(days=30), help_text="Lifetime of refresh tokens.")
    refresh_token_renewal = models.DurationField(
        default=timedelta(days=4),
        help_text="A refresh returns a new refresh token when the old one has at most this long to live.")
    auth_code_expiry = models.DurationField(default=timedelta(minutes=10),
                                            help_text="Lifetime of authorization codes (and approved device codes).")
    user_code_expiry = models.DurationField(default=timedelta(minutes=30),
                                            help_text="Lifetime of device and user codes.")
    id_token_expiry = models.DurationField(default=timedelta(minutes=15), help_text="Lifetime of ID tokens.")
    require_client_registration = models.BooleanField(
        default=False, help_text="Accept only registered client ids (holders of oAuthClientOverride excepted).")
    anonymous_client_registration = models.BooleanField(
        default=True, help_text="Let anyone register a public client (confidential clients always need a login).")
    signature_algorithm = models.CharField(max_length=8, choices=SignatureAlgorithm.choices,
                                           default=SignatureAlgorithm.ES256,
                                           help_text="Algorithm that signs ID tokens.")
    signature_key = models.TextField(blank=True, help_text="PEM private key that signs ID tokens "
                                                           "(generated when empty).")

    class Meta:
        verbose_name = "OpenID Connect provider"
        verbose_name_plural = "OpenID Connect provider"

    def __str__(self):
        return "OpenID Connect provider"


class DeviceAuthorization(AbstractDeviceGrant):
    """A device flow (RFC 8628): django-oauth-toolkit's device grant with the ID-token nonce and
    the time of the last poll (for slow_down)."""

    nonce = models.CharField(max_length=255, blank=True, default="")
    polled_at = models.DateTimeField(null=True, blank=True)

    class Meta(AbstractDeviceGrant.Meta):
        swappable = "OAUTH2_PROVIDER_DEVICE_GRANT_MODEL"
        verbose_name = "device authorization"
