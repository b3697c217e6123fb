from registry.composites import Composite
from registry.declaration import ObjectType, register
from registry.services import bump_state

from . import models

OIDC_PROVIDER = register(ObjectType(
    model=models.OidcProvider, name="OidcProvider", singleton=True,
    section="Settings › Authentication › OpenID Connect",
    description="Token lifetimes, client rules and the signing key of the built-in OpenID Connect provider.",
    groups=[
        ("Lifetimes", ["access_token_expiry", "refresh_token_expiry", "refresh_token_renewal", "auth_code_expiry",
                       "user_code_expiry", "id_token_expiry"]),
        ("Clients", ["require_client_registration", "anonymous_client_registration"]),
        ("Signing", ["signature_algorithm", "signature_key"]),
    ],
    secret=("signature_key",),
))


class UriSet(Composite):
    """A set of URIs, {"uri": true, …} in JSON, over django-oauth-toolkit's space-separated
    TextField. Whether a URI may be registered is the model's rule (oauth.clients), so that the
    admin page and dynamic registration refuse the same URIs."""

    type_name = "Set<Uri>"

    def __init__(self, name: str, field: str):
        self.name, self.field = name, field
        self.fields = (field,)

    def encode(self, values):
        return {uri: True for uri in (values[self.field] or "").split()}

    def decode(self, value):
        if not isinstance(value, dict) or not all(isinstance(k, str) and v is True for k, v in value.items()):
            raise self.bad()
        for uri in value:
            # One URI per key: white space would be read back as several.
            if not uri or uri != uri.strip() or len(uri.split()) != 1:
                raise self.bad(f"{self.name}/{uri[:100]}")
        return {self.field: " ".join(value)}


def _after_change(client):
    # A destroyed client's tokens went with it (foreign keys, CASCADE), but verified Bearer
    # credentials are cached under the states of what can change a verdict (accounts.http_auth):
    # bumping the credentials' state makes every worker verify again, and refuse them.
    if not models.OAuthClient.objects.filter(pk=client.pk).exists():
        bump_state("Credential")


def _register_on_save(client, _m2m):
    # Whatever face saves an ephemeral client (created on the fly for an unknown client id)
    # registers it: from then on its redirect URIs are checked.
    client.ephemeral = False


OAUTH_CLIENT = register(ObjectType(
    model=models.OAuthClient, name="OAuthClient",
    section="Management › Directory › OAuth Clients",
    description="Defines a registered OAuth client application.",
    groups=[
        ("OAuth client", ["client_id", "description", "contacts", "logo", "tenant"]),
        ("Authorization", ["redirect_uris", "client_secret", "expires_at"]),
        ("Registration", ["created", "ephemeral"]),
    ],
    property_names={"client_secret": "secret", "created": "createdAt", "tenant": "memberTenantId"},
    server_set=("created", "ephemeral"),
    secret=("client_secret",),
    composites=[UriSet("redirectUris", "redirect_uris")],
    validate=_register_on_save,
    on_change=_after_change,
    label_property="clientId",
    tenant_scope="tenant",
))
