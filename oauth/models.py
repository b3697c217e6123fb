"""OAuth clients (django-oauth-toolkit's Application, with the reference's OAuthClient fields)
and the OpenID Connect provider settings."""
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import models
from oauth2_provider.models import AbstractApplication, AbstractDeviceGrant, ClientSecretField

from registry.crypto import EncryptedTextField
from registry.fields import NameSetField
from registry.models import SingletonModel


class SecretHashField(ClientSecretField):
    """django-oauth-toolkit's secret field, except that no secret stays empty (it would store
    the hash of the empty string, which reads as a secret)."""

    def pre_save(self, model_instance, add):
        if not getattr(model_instance, self.attname):
            return ""
        return super().pre_save(model_instance, add)


class OAuthClient(AbstractApplication):
    """A registered OAuth client. Unknown client ids get an ephemeral one when settings allow.

    The rules of oauth.clients apply whoever writes one (clean/save): the reference's redirect-URI
    rules instead of django-oauth-toolkit's, a secret stored as an argon2id hash, and a client
    with a secret is confidential, one without public.
    """

    # No generated defaults (django-oauth-toolkit generates both): a generated id would make the
    # schema document differ between processes, and a generated secret would turn every client
    # created in the admin confidential with a secret nobody saw.
    client_id = models.CharField(max_length=255, unique=True, db_index=True, default="",
                                 verbose_name="client ID", help_text="Unique identifier of the OAuth client.")
    client_secret = SecretHashField(max_length=255, blank=True, default="", db_index=True, verbose_name="secret",
                                    help_text="Secret of a confidential client, stored hashed; "
                                              "empty for a public client.")
    description = models.CharField(max_length=255, blank=True, help_text="Description of the OAuth client.")
    contacts = NameSetField(schema_type="Set<EmailAddress>", help_text="Contact email addresses.")
    logo = models.CharField(max_length=2048, blank=True,
                            help_text="URL or base64-encoded image representing the client.")
    expires_at = models.DateTimeField(null=True, blank=True, help_text="The client stops working after this time.")
    tenant = models.ForeignKey("accounts.Tenant", null=True, blank=True, on_delete=models.PROTECT,
                               related_name="oauth_clients", help_text="The tenant this client belongs to.")
    # Created on the fly for an unregistered client id (when registration is not required).
    ephemeral = models.BooleanField(default=False, help_text="Created on first use of an unregistered client id; "
                                                             "saving it registers it.")

    class Meta(AbstractApplication.Meta):
        swappable = "OAUTH2_PROVIDER_APPLICATION_MODEL"
        verbose_name = "OAuth client"

    def __str__(self):
        return self.description or self.client_id

    def clean_fields(self, exclude=None):
        # The client rules (oauth.clients) and the key checks (oauth.services) work on these
        # models and import them; the models reach them when an instance is validated or saved.
        from .clients import derive_type

        derive_type(self)
        super().clean_fields(exclude)

    def clean(self):
        # Not django-oauth-toolkit's rules: see oauth.clients (which imports this module).
        from .clients import check_client

        check_client(self)

    def save(self, *args, **kwargs):
        from .clients import prepare_for_save  # oauth.clients imports this module

        prepare_for_save(self)
        super().save(*args, **kwargs)


SECRET_MASK = "****"


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
    signature_key = EncryptedTextField(blank=True, help_text="PEM private key that signs ID tokens "
                                                           "(generated when empty).")

    class Meta:
        verbose_name = "OpenID Connect provider"
        verbose_name_plural = "OpenID Connect provider"

    def __str__(self):
        return "OpenID Connect provider"

    def clean(self):
        from .services import signature_key_problem  # oauth.services imports this module

        if self.signature_key == SECRET_MASK:
            # What every read shows for the stored key: sent back, it stands for the key itself.
            self.signature_key = (type(self).objects.filter(pk=self.pk).values_list("signature_key", flat=True)
                                  .first() or "")
        problem = signature_key_problem(self.signature_key, self.signature_algorithm)
        if problem is not None:
            raise ValidationError({problem[0]: problem[1]})


class DeviceAuthorization(AbstractDeviceGrant):
    """A device flow (RFC 8628): django-oauth-toolkit's device grant with the ID-token nonce and
    the time of the last poll (for slow_down)."""

    nonce = models.CharField(max_length=255, blank=True, default="")
    polled_at = models.DateTimeField(null=True, blank=True)

    class Meta(AbstractDeviceGrant.Meta):
        swappable = "OAUTH2_PROVIDER_DEVICE_GRANT_MODEL"
        verbose_name = "device authorization"


class CredentialLink(models.Model):
    """The app password an OAuth grant or token was obtained with (spec/auth.md §5.5).

    A token obtained with an app password is that credential's session: its permissions,
    expiry and allowed addresses, checked at every use, and it ends when the credential is
    changed or destroyed. Grants and tokens without a link were obtained with the account's
    password. A link whose credential is gone (SET_NULL) marks a dead token: the link must never
    disappear before its token, or the token would read as a password token.
    """

    credential = models.ForeignKey("accounts.Credential", null=True, on_delete=models.SET_NULL,
                                   related_name="oauth_links")
    grant = models.OneToOneField("oauth2_provider.Grant", null=True, on_delete=models.CASCADE,
                                 related_name="credential_link")
    device = models.OneToOneField("oauth.DeviceAuthorization", null=True, on_delete=models.CASCADE,
                                  related_name="credential_link")
    access_token = models.OneToOneField("oauth2_provider.AccessToken", null=True, on_delete=models.CASCADE,
                                        related_name="credential_link")
    refresh_token = models.OneToOneField("oauth2_provider.RefreshToken", null=True, on_delete=models.CASCADE,
                                         related_name="credential_link")

    class Meta:
        verbose_name = "OAuth credential link"
