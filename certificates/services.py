"""The ACME client and everything that changes certificates (spec discovery §9).

`obtain(provider)` runs one order with certbot's `acme` library: it registers the provider's
account (or reuses it), orders a certificate for the provider's names, answers the HTTP-01
challenges by publishing the key authorizations where the responder (views.py) finds them,
finalizes with a CSR for a fresh ECDSA P-256 key, and stores the chain and key: a Certificate
row, and the files VAR_DIR/tls/<primary name>/fullchain.pem and privkey.pem that the TLS
listeners serve (tls.py). `renew_due()` does that for every provider whose newest certificate
is far enough into its lifetime. Every change is audited through registry.services.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.http.request import validate_host
from django.utils import timezone

from registry import ids
from registry import services as registry
from telemetry import trace

from .models import AcmeChallenge, AcmeProvider, Certificate

log = logging.getLogger(__name__)

CHALLENGE_TTL = dt.timedelta(seconds=3600)
USER_AGENT = "stalwart-django-acme"


class AcmeFailure(Exception):
    """An order that did not end with a certificate; the message says why, for people."""


# --- the HTTP-01 responder's store -----------------------------------------------------------
def http01_active() -> bool:
    """Whether /.well-known/acme-challenge/ answers: some provider uses HTTP-01, or none exists."""
    types = set(AcmeProvider.objects.values_list("challenge_type", flat=True).distinct())
    return not types or AcmeProvider.ChallengeType.HTTP_01 in types


def published_key_authorization(token: str) -> str | None:
    return (AcmeChallenge.objects.filter(token=token, expires_at__gt=timezone.now())
            .values_list("key_authorization", flat=True).first())


def publish(token: str, key_authorization: str) -> None:
    now = timezone.now()
    AcmeChallenge.objects.filter(expires_at__lte=now).delete()
    AcmeChallenge.objects.update_or_create(
        token=token, defaults={"key_authorization": key_authorization, "expires_at": now + CHALLENGE_TTL})


def withdraw(tokens) -> None:
    AcmeChallenge.objects.filter(token__in=list(tokens)).delete()


# --- keys, CSR and files ----------------------------------------------------------------------
def new_private_key():
    return ec.generate_private_key(ec.SECP256R1())


def private_pem(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def load_private_key(pem: str):
    return serialization.load_pem_private_key(pem.encode(), password=None)


def make_csr(key, names: list[str]) -> bytes:
    builder = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False))
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def tls_dir() -> Path:
    return Path(settings.VAR_DIR) / "tls"


def _atomic_write(path: Path, data: str, mode: int) -> None:
    """Write next to the target and rename over it: a reader sees the old file or the new one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_files(cert: Certificate) -> Path:
    """VAR_DIR/tls/<primary name>/{fullchain,privkey}.pem, the key readable by the owner only."""
    directory = tls_dir() / cert.primary_name
    directory.mkdir(parents=True, exist_ok=True)
    # The key first: a listener that reads in between sees the new key with the old chain, refuses
    # the pair, and keeps what it had until the chain arrives (tls.py).
    _atomic_write(directory / "privkey.pem", cert.private_key, 0o600)
    _atomic_write(directory / "fullchain.pem", cert.chain, 0o644)
    return directory


# --- audit through the registry ---------------------------------------------------------------
def _provider_decl():
    return AcmeProvider._declaration


def _update_provider(provider_pk: int, actor, **values) -> AcmeProvider:
    """Write server-set state of a provider, audited like any other change."""
    decl = _provider_decl()
    with transaction.atomic():
        obj = AcmeProvider.objects.select_for_update().get(pk=provider_pk)
        before = registry.snapshot(decl, obj)
        for name, value in values.items():
            setattr(obj, name, value)
        obj.save(update_fields=list(values))
        after = registry.snapshot(decl, obj)
        if after != before:
            registry.record(actor, decl, obj, "update", before, after)
    return obj


def _note_attempt(provider_pk: int, error: str = "") -> None:
    """The renewal job's bookkeeping (not a configuration change: not audited)."""
    fields = {"last_attempt_at": timezone.now(), "last_error": error[:4000]}
    qs = AcmeProvider.objects.filter(pk=provider_pk)
    if error:
        qs.update(failures=F("failures") + 1, **fields)
    else:
        qs.update(failures=0, **fields)


def store(provider: AcmeProvider, fullchain_pem: str, key, actor) -> Certificate:
    """Keep an issued certificate: its row (audited) and its files, in one transaction."""

    chain = x509.load_pem_x509_certificates(fullchain_pem.encode())
    leaf = chain[0]
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = sorted({n.lower() for n in san.get_values_for_type(x509.DNSName)})
    except x509.ExtensionNotFound:
        names = []
    if not names:
        raise AcmeFailure("The issued certificate names no host.")
    decl = Certificate._declaration
    with transaction.atomic():
        cert = Certificate(
            provider=provider, names=names, issuer=leaf.issuer.rfc4514_string()[:1024],
            serial_number=format(leaf.serial_number, "x"), not_before=leaf.not_valid_before_utc,
            not_after=leaf.not_valid_after_utc, chain=fullchain_pem, private_key=private_pem(key),
        )
        cert.save()
        registry.record(actor, decl, cert, "create", {}, registry.snapshot(decl, cert))
        write_files(cert)
    return cert


# --- the ACME client --------------------------------------------------------------------------
def _account_jwk(provider: AcmeProvider, actor):
    # Loaded when an order runs: every worker imports this module (HTTP-01) and never needs them.
    import josepy

    if not provider.account_key:
        pem = private_pem(new_private_key())
        AcmeProvider.objects.filter(pk=provider.pk).update(account_key=pem)
        provider.account_key = pem
        registry.audit_event(actor, "AcmeProvider", ids.encode(provider.pk), "update", field="accountKey",
                             new="****")
    return josepy.JWKEC(key=load_private_key(provider.account_key))


def _client(provider: AcmeProvider, jwk, ca_bundle):
    # Loaded when an order runs: every worker imports this module (HTTP-01) and never needs them.
    import josepy
    from acme import client as acme_client

    net = acme_client.ClientNetwork(jwk, alg=josepy.ES256, user_agent=USER_AGENT,
                                    verify_ssl=ca_bundle or True)
    directory = acme_client.ClientV2.get_directory(provider.directory, net)
    return acme_client.ClientV2(directory, net)


def _account(provider: AcmeProvider, client, jwk, actor) -> AcmeProvider:
    """Register the account, or reuse the one registered with this directory."""
    # Loaded when an order runs: every worker imports this module (HTTP-01) and never needs them.
    from acme import errors, messages

    if provider.account_uri and provider.account_directory == provider.directory:
        client.net.account = messages.RegistrationResource(uri=provider.account_uri, body=messages.Registration())
        return provider
    eab = None
    if provider.eab_key_id:
        eab = messages.ExternalAccountBinding.from_data(
            account_public_key=jwk.public_key(), kid=provider.eab_key_id, hmac_key=provider.eab_hmac_key,
            directory=client.directory)
    elif client.external_account_required():
        raise AcmeFailure("This CA requires External Account Binding: set eabKeyId and eabHmacKey on the provider.")
    registration = messages.NewRegistration.from_data(
        email=",".join(provider.contact), terms_of_service_agreed=True, external_account_binding=eab)
    try:
        regr = client.new_account(registration)
    except errors.ConflictError as exc:  # the key already has an account there
        regr = messages.RegistrationResource(uri=exc.location, body=messages.Registration())
        client.net.account = regr
    return _update_provider(provider.pk, actor, account_uri=regr.uri, account_directory=provider.directory)


def _describe(exc) -> str:
    # Loaded when an order runs: every worker imports this module (HTTP-01) and never needs them.
    from acme import errors, messages

    if isinstance(exc, errors.ValidationError):
        parts = []
        for authzr in exc.failed_authzrs:
            for challb in authzr.body.challenges:
                if challb.error is not None:
                    parts.append(f"{authzr.body.identifier.value}: {challb.error}")
        return "The CA could not validate: " + "; ".join(parts)
    if isinstance(exc, errors.TimeoutError):
        return "The CA did not finish the order in time."
    if isinstance(exc, messages.Error):
        return f"The CA refused: {exc}"
    return f"{type(exc).__name__}: {exc}"


def check_names(names) -> None:
    """Refuse early what the CA's check would fail on here: a name Django would answer 400 for."""
    refused = [n for n in names if not validate_host(n, settings.ALLOWED_HOSTS)]
    if refused:
        raise AcmeFailure(
            f"{', '.join(refused)} not in ALLOWED_HOSTS: this server would answer the CA's HTTP-01 check with 400. "
            "Add the names to ALLOWED_HOSTS (the serving processes need them too).")


def obtain(provider: AcmeProvider, *, actor="acme", ca_bundle: str | None = None,
           timeout: float = 90) -> Certificate:
    """Run one ACME order for the provider's names; return the stored certificate.

    Raises AcmeFailure with a readable reason, and counts the failure on the provider.
    """
    # Loaded when an order runs: every worker imports this module (HTTP-01) and never needs them.
    import requests
    from acme import challenges, errors, messages

    if provider.challenge_type != AcmeProvider.ChallengeType.HTTP_01:
        raise AcmeFailure(f"Only Http01 is implemented; this provider uses {provider.challenge_type}.")
    names = sorted(provider.domains)
    tokens = []
    try:
        check_names(names)
        jwk = _account_jwk(provider, actor)
        client = _client(provider, jwk, ca_bundle)
        provider = _account(provider, client, jwk, actor)
        key = new_private_key()
        order = client.new_order(make_csr(key, names))
        for authzr in order.authorizations:
            if authzr.body.status == messages.STATUS_VALID:
                continue  # validated recently for this account: nothing to answer
            challb = next((c for c in authzr.body.challenges if isinstance(c.chall, challenges.HTTP01)), None)
            if challb is None:
                raise AcmeFailure(f"The CA offers no HTTP-01 challenge for {authzr.body.identifier.value}.")
            response, key_authorization = challb.response_and_validation(jwk)
            token = challb.chall.encode("token")
            publish(token, key_authorization)
            tokens.append(token)
            client.answer_challenge(challb, response)
        deadline = dt.datetime.now() + dt.timedelta(seconds=timeout)
        order = client.poll_and_finalize(order, deadline)
        cert = store(provider, order.fullchain_pem, key, actor)
    except AcmeFailure as exc:
        _note_attempt(provider.pk, str(exc))
        raise
    except (errors.Error, messages.Error, requests.RequestException, ValueError) as exc:
        message = _describe(exc)
        _note_attempt(provider.pk, message)
        raise AcmeFailure(message) from exc
    finally:
        withdraw(tokens)
    _note_attempt(provider.pk)
    log.info("certificate %s issued for %s until %s", ids.encode(cert.pk), ", ".join(cert.names), cert.not_after)
    return cert


# --- renewal ----------------------------------------------------------------------------------
def latest_certificate(provider: AcmeProvider) -> Certificate | None:
    return provider.certificates.order_by("-not_after", "-pk").first()


def due_reason(provider: AcmeProvider, now=None) -> str | None:
    """Why the provider needs a new certificate now, or None when it does not."""
    now = now or timezone.now()
    cert = latest_certificate(provider)
    if cert is None:
        return "no certificate yet"
    if set(cert.names) != set(provider.domains):
        return "the names changed"
    if cert.not_after <= now:
        return "expired"
    if cert.lifetime_elapsed(now) >= provider.renew_fraction:
        return f"{provider.get_renew_before_display().lower()}"
    return None


@dataclass
class Outcome:
    provider: AcmeProvider
    action: str  # "renewed", "failed", "skipped"
    detail: str
    certificate: Certificate | None = None


def renew_due(*, actor="acme", ca_bundle: str | None = None, now=None) -> list[Outcome]:
    """Obtain a certificate for every HTTP-01 provider that needs one (see due_reason).

    A provider that failed more than maxRetries times in a row is skipped until it is changed
    or an explicit `acme obtain` succeeds.
    """
    out = []
    for provider in AcmeProvider.objects.filter(challenge_type=AcmeProvider.ChallengeType.HTTP_01).order_by("pk"):
        reason = due_reason(provider, now)
        if reason is None:
            continue
        if provider.failures > provider.max_retries:
            out.append(Outcome(provider, "skipped", f"{reason}; {provider.failures} failures in a row "
                               f"(maxRetries {provider.max_retries}): last error: {provider.last_error}"))
            continue
        try:
            cert = obtain(provider, actor=actor, ca_bundle=ca_bundle)
        except AcmeFailure as exc:
            log.warning("ACME provider %s: %s", ids.encode(provider.pk), exc)
            out.append(Outcome(provider, "failed", f"{reason}: {exc}"))
            trace.emit("acme.error", id=ids.encode(provider.pk), reason=reason, details=str(exc))
        else:
            out.append(Outcome(provider, "renewed", reason, cert))
            trace.emit("acme.order-completed", id=ids.encode(provider.pk), reason=reason,
                       domain=list(getattr(cert, "names", None) or []))
    return out
