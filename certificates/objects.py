"""Declarations of the management objects this app owns (see registry.declaration)."""
from registry.declaration import ObjectType, register
from registry.errors import Forbidden

from . import models


class IssuedObjectType(ObjectType):
    """An object the server creates (here: certificates, issued by the ACME client): it can be
    read, listed and destroyed, never created or changed through the generic faces."""

    @property
    def operations(self) -> tuple[str, ...]:
        return ("Get", "Destroy", "Query")


def _refuse_write(obj, m2m):
    raise Forbidden("Certificates are issued by the ACME client (manage.py acme obtain) and cannot be created or "
                    "changed here; destroy one to forget it.")


def _provider_changed(provider, m2m):
    # A changed provider gets a fresh start with the renewal job (see services.renew_due).
    provider.failures = 0
    provider.last_error = ""


ACME_PROVIDER = register(ObjectType(
    model=models.AcmeProvider, name="AcmeProvider", section="Settings › TLS › ACME Providers",
    description="Defines an ACME provider for automatic TLS certificate management, and the host names of the "
    "certificate it obtains.",
    groups=[
        ("Provider", ["directory", "challenge_type", "contact", "domains"]),
        ("Renewal", ["renew_before", "max_retries"]),
        ("External Account Binding", ["eab_key_id", "eab_hmac_key"]),
        ("Account", ["account_uri"]),
    ],
    server_set=("account_uri",),
    secret=("eab_hmac_key",),
    label_property="directory",
    validate=_provider_changed,
    enum_names={"challenge_type": "AcmeChallengeType", "renew_before": "AcmeRenewBefore"},
))

CERTIFICATE = register(IssuedObjectType(
    model=models.Certificate, name="Certificate", section="Settings › TLS › Certificates",
    description="A TLS certificate obtained through ACME; the newest one for a host name is served on the TLS "
    "listeners. Its private key is never shown.",
    groups=[("Certificate", ["names", "provider", "issuer", "serial_number", "not_before", "not_after", "created_at",
                             "chain"])],
    property_names={"provider": "acmeProviderId", "not_before": "notValidBefore", "not_after": "notValidAfter",
                    "chain": "certificate"},
    server_set=("names", "provider", "issuer", "serial_number", "not_before", "not_after", "created_at", "chain"),
    validate=_refuse_write,
))
