from registry.declaration import ObjectType, register

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
