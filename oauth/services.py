"""OAuth 2.0 and OpenID Connect: codes, tokens, ID tokens and client rules.

django-oauth-toolkit provides the storage (clients, grants, device grants, access and refresh
tokens, kept as SHA-256 checksums only); the wire behaviour is ours, so that it follows the
RFCs where the reference deviates and the reference where clients depend on it.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import string
import time
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.contrib.auth.hashers import check_password
from django.db import transaction
from django.utils import timezone
from jwcrypto import jwk, jwt
from oauth2_provider.models import AccessToken, Grant, RefreshToken, set_token_value

from accounts import login as account_login, services as account_services
from accounts.authz import credential_permissions
from accounts.http_auth import _principal
from accounts.models import Account, Credential
from registry import ids, memo
from registry import services as registry_services

from .models import CredentialLink, OAuthClient, OidcProvider
from .models import DeviceAuthorization as DeviceGrant

SCOPES = ["openid", "offline_access", "urn:ietf:params:oauth:scope:mail",
          "urn:ietf:params:oauth:scope:contacts", "urn:ietf:params:oauth:scope:calendars"]
TOKEN_PREFIX = "sw1."
USER_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
DEVICE_INTERVAL = 5
# What the storage holds: OAuthClient.client_id and Grant.nonce are 255 characters long,
# the device grant's client_id 100. Longer values are refused (invalid_request), not cut.
MAX_CLIENT_ID = 255
MAX_DEVICE_CLIENT_ID = 100
MAX_NONCE = 255
_ALNUM = string.ascii_letters + string.digits
# Signing keys: RS256 below 2048 bits is forgeable in practice (RFC 7518 §3.3 requires 2048); far
# above 8192 bits every ID token would cost a noticeable share of a second to sign.
MIN_RSA_BITS, MAX_RSA_BITS = 2048, 8192
MAX_KEY_PEM = 16 * 1024

log = logging.getLogger(__name__)


class OAuthError(Exception):
    """An error of the token or device endpoints (RFC 6749 §5.2, RFC 8628 §3.5).

    `counts_towards_ban`: a failed authentication (a wrong client secret, an unknown code, refresh
    token or device code, which are guesses), counted toward authBanRate by the view, which knows
    the client's address.
    """

    def __init__(self, error: str, description: str = "", status: int = 400, *, counts_towards_ban: bool = False):
        super().__init__(description or error)
        self.error, self.description, self.status = error, description, status
        self.counts_towards_ban = counts_towards_ban


def client_auth_failed() -> OAuthError:
    return OAuthError("invalid_client", "Client authentication failed.", 401, counts_towards_ban=True)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def random_code(length: int = 40) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def new_user_code() -> str:
    raw = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8))
    return f"{raw[:4]}-{raw[4:]}"


def normalise_user_code(value: str) -> str:
    """People type codes in any case, with or without the hyphen."""
    raw = re.sub(r"[^A-Za-z0-9]", "", value or "").upper()
    return f"{raw[:4]}-{raw[4:]}" if len(raw) == 8 else ""


# --- settings, issuer, keys -------------------------------------------------------------------
def provider() -> OidcProvider:
    return registry_services.current(OidcProvider)


def issuer() -> str:
    """The issuer when no request says where the client reached us (network.endpoint.public_base
    is the one of a request)."""
    return account_services.public_url()


def signature_key_problem(pem: str, algorithm: str) -> tuple[str, str] | None:
    """(field, reason) when `pem` cannot sign with `algorithm`, or None. An empty key is fine
    (one is generated on first use)."""
    if not pem:
        return None
    if len(pem) > MAX_KEY_PEM:
        return "signature_key", f"The signature key may have at most {MAX_KEY_PEM} characters."
    try:
        key = serialization.load_pem_private_key(pem.encode("utf-8"), password=None)
    except (ValueError, TypeError, UnicodeError, UnsupportedAlgorithm):
        # TypeError: an encrypted key (no password to give); UnicodeError: lone surrogates.
        return "signature_key", "The signature key is not an unencrypted PEM private key."
    if algorithm == "es256":
        if not (isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"):
            return "signature_algorithm", "ES256 needs a P-256 EC private key; set signatureKey to \"\" to generate one."
    elif algorithm == "rs256":
        if not isinstance(key, rsa.RSAPrivateKey):
            return "signature_algorithm", "RS256 needs an RSA private key; set signatureKey to \"\" to generate one."
        if not MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
            return "signature_key", f"RS256 needs an RSA key of {MIN_RSA_BITS} to {MAX_RSA_BITS} bits."
    else:
        return "signature_algorithm", "Unknown signature algorithm."
    return None


def signing_key() -> jwk.JWK:
    """The ID-token key: generated on first use and kept in the OidcProvider settings.

    A stored key that cannot sign with the configured algorithm (written to the database by
    hand: every face refuses it) is replaced like a missing one, so that the JWKS and the token
    endpoints keep working; the replacement is logged and audited.
    """
    prov = provider()
    return memo.get("oauth.signing-key", (prov.signature_algorithm, prov.signature_key), lambda: _signing_key(prov))


def _signing_key(prov) -> jwk.JWK:
    pem = prov.signature_key
    problem = signature_key_problem(pem, prov.signature_algorithm)
    if problem is not None:
        log.error("the stored OIDC signing key is unusable (%s): generating a new one", problem[1])
    if not pem or problem is not None:
        key = (jwk.JWK.generate(kty="EC", crv="P-256") if prov.signature_algorithm == "es256"
               else jwk.JWK.generate(kty="RSA", size=2048))
        candidate = key.export_to_pem(private_key=True, password=None).decode()
        # The first writer wins, on any database (the row lock on PostgreSQL, the write lock of
        # an IMMEDIATE transaction on SQLite): two workers generating at once must not end up
        # signing with a key other than the one published. The comparison is made on the
        # decrypted value: the column is encrypted with a random IV, so SQL equality never holds.
        with transaction.atomic():
            current = OidcProvider.objects.select_for_update().values_list("signature_key", flat=True).get(pk=prov.pk)
            if current == pem:
                OidcProvider.objects.filter(pk=prov.pk).update(signature_key=candidate)
                # A change of the settings object like any other: audited, and its state moves
                # so that every worker's cached copy is replaced.
                registry_services.audit_event("oauth", "OidcProvider", "singleton", "update", "signatureKey",
                                              "****" if pem else None, "****")
                registry_services.touch("OidcProvider", "singleton")
        pem = OidcProvider.objects.values_list("signature_key", flat=True).get(pk=prov.pk)
        prov = provider()
    return jwk.JWK.from_pem(pem.encode())


def jwks() -> dict:
    key = signing_key()
    public = key.export_public(as_dict=True)
    public.update({"use": "sig", "alg": provider().signature_algorithm.upper(), "kid": "default"})
    return {"keys": [public]}


def id_token(account: Account, client_id: str, nonce: str | None, issuer_url: str | None = None) -> str:
    prov = provider()
    now = int(time.time())
    claims = {"iss": issuer_url or issuer(), "sub": str(account.pk), "aud": client_id, "iat": now, "nbf": now,
              "exp": now + int(prov.id_token_expiry.total_seconds()),
              "preferred_username": account.email_address, "email": account.email_address}
    if nonce:
        claims["nonce"] = nonce
    if account.description:
        claims["name"] = account.description
    token = jwt.JWT(header={"typ": "JWT", "alg": prov.signature_algorithm.upper(), "kid": "default"}, claims=claims)
    token.make_signed_token(signing_key())
    return token.serialize()


# --- clients --------------------------------------------------------------------------------
# The loopback addresses a registered client may name (the reference's rule, which refuses
# "localhost": a name can be made to resolve elsewhere).
_LOOPBACK = re.compile(r"^http://(127\.0\.0\.1|\[::1\])(:\d{1,5})?(/|$)")
# What an unregistered client may use, as RFC 8252 §7.3 lists it (§8.3 discourages but allows the
# name): the native app listens on the user's own machine, on any port.
_LOOPBACK_OR_LOCALHOST = re.compile(r"^http://(127\.0\.0\.1|\[::1\]|localhost)(:\d{1,5})?(/|$)")
MAX_REDIRECT_URI = 2048


def is_loopback(uri: str) -> bool:
    return bool(_LOOPBACK.match(uri))


def redirect_matches(registered: str, presented: str) -> bool:
    """Exact match, or loopback URIs that differ only in the port (RFC 8252 §7.3)."""
    if registered == presented:
        return True
    strip = re.compile(r"^(http://(?:127\.0\.0\.1|\[::1\]|localhost))(?::\d{1,5})?(/.*)?$")
    a, b = strip.match(registered), strip.match(presented)
    return bool(a and b and a.group(1) == b.group(1) and (a.group(2) or "/") == (b.group(2) or "/"))


def unregistered_redirect_error(uri: str) -> str | None:
    """Why a client that registered nothing may not have its code sent to `uri`, or None.

    Nobody vouched for such a URI, so only destinations a browser treats as a web page of a named
    host are accepted: https, or http to the user's own machine (RFC 8252 §7.3). Everything else
    (javascript:, data:, file:, private schemes, "//host", relative paths) could run script in the
    login page's origin or hand the code to whatever claims the scheme.
    """
    if not isinstance(uri, str) or not uri:
        return "The redirect URI is missing."
    if len(uri) > MAX_REDIRECT_URI:
        return f"The redirect URI may have at most {MAX_REDIRECT_URI} characters."
    # Browsers drop white space and control characters and read "\\" as "/": what they would
    # visit is then not what was checked here.
    if any(c.isspace() or ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c == "\\" for c in uri):
        return "The redirect URI may not contain white space, control characters or backslashes."
    if "#" in uri:
        return "The redirect URI may not have a fragment."
    if _LOOPBACK_OR_LOCALHOST.match(uri):
        return None
    if not uri.startswith("https://"):
        return ("Without a registered client, the redirect URI must be an https URI, or an http URI of a "
                "loopback address (127.0.0.1, [::1] or localhost).")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018  (raises ValueError on a malformed port)
    except ValueError:
        return "The redirect URI is malformed."
    if not parts.hostname:
        return "The https redirect URI has no host."
    if "@" in parts.netloc:
        # "https://trusted.example@evil.example/" reads as the first host and goes to the second.
        return "The redirect URI may not carry a user name or password."
    return None


def check_redirect(client: OAuthClient | None, redirect_uri: str) -> None:
    """The redirect URI rules, for whoever signs in (OAuthError when refused).

    A registered client gets codes only at one of its registered URIs: nobody's permissions
    widen that, since the code goes to whoever controls the URI. Any other client (unknown, or
    ephemeral) gets them at https and loopback http URIs only.
    """
    if client is not None and not client.ephemeral:
        if not any(redirect_matches(r, redirect_uri) for r in client.redirect_uris.split()):
            raise OAuthError("invalid_request", "The redirect URI is not registered for this client.")
        return
    problem = unregistered_redirect_error(redirect_uri)
    if problem is not None:
        raise OAuthError("invalid_request", problem)


def redirect_destination(redirect_uri: str) -> str:
    """What the login page names as the code's destination: the origin, or the scheme of a
    registered private-use scheme (a native app)."""
    if redirect_uri.startswith(("https://", "http://")):
        parts = urlsplit(redirect_uri)
        netloc = parts.netloc
        if not netloc.isascii():
            # "аpple.com" with a Cyrillic "а" reads as apple.com: name the host as DNS sees it.
            try:
                netloc = netloc.encode("idna").decode("ascii")
            except UnicodeError:
                netloc = netloc.encode("ascii", "backslashreplace").decode("ascii")
        return f"{parts.scheme}://{netloc}"
    return redirect_uri.partition(":")[0] + ":"


def find_client(client_id: str) -> OAuthClient | None:
    return OAuthClient.objects.filter(client_id=client_id).first() if client_id else None


def client_for_flow(client_id: str, redirect_uri: str | None, account: Account | None) -> OAuthClient:
    """The client of a flow, or OAuthError. Unknown ids are accepted unless the settings say no."""
    if not client_id or len(client_id) > MAX_CLIENT_ID:
        raise OAuthError("invalid_request", "client_id is missing or too long.")
    client = find_client(client_id)
    if client is not None and not client.ephemeral:
        if client.expires_at and client.expires_at <= timezone.now():
            raise OAuthError("invalid_client", "The client has expired.", 401)
        if redirect_uri is not None:
            check_redirect(client, redirect_uri)
        return client
    if provider().require_client_registration and (account is None or not account.has_stalwart_perm("oAuthClientOverride")):
        raise OAuthError("invalid_client", "Unknown client.", 401)
    if redirect_uri is not None:
        check_redirect(None, redirect_uri)
    if client is None:
        with transaction.atomic():
            client, created = OAuthClient.objects.get_or_create(
                client_id=client_id,
                defaults={"client_type": OAuthClient.CLIENT_PUBLIC, "name": client_id[:255], "ephemeral": True,
                          "authorization_grant_type": OAuthClient.GRANT_AUTHORIZATION_CODE, "redirect_uris": "",
                          "client_secret": ""},
            )
            if created:
                # An x:OAuthClient like any other: its state moves and /changes lists it.
                registry_services.touch("OAuthClient", ids.encode(client.pk), "created")
    return client


def client_expired(client: OAuthClient | None) -> bool:
    """expiresAt has passed: the client stops working, at the token endpoint too."""
    return bool(client is not None and client.expires_at and client.expires_at <= timezone.now())


def authenticate_client(client_id: str | None, client_secret: str | None) -> OAuthClient | None:
    """Check the secret of a confidential client; public and unknown clients pass (PKCE protects them)."""
    client = find_client(client_id) if client_id else None
    if client_expired(client):
        raise OAuthError("invalid_client", "The client has expired.", 401)
    if client is None or client.client_type != OAuthClient.CLIENT_CONFIDENTIAL:
        return client
    if not client_secret:
        raise client_auth_failed()
    ok = check_password(client_secret, client.client_secret) if client.hash_client_secret else hmac.compare_digest(
        client_secret.encode(), (client.client_secret or "").encode())
    if not ok:
        raise client_auth_failed()
    return client


def valid_scope(scope: str | None) -> str:
    return " ".join(s for s in (scope or "").split() if s in SCOPES)


# --- authorization codes --------------------------------------------------------------------
def create_code(account: Account, client: OAuthClient, redirect_uri: str, scope: str, nonce: str,
                challenge: str, method: str, credential: Credential | None = None) -> str:
    """`credential`: what the user signed in with (AuthResult.credential); the tokens carry its scope."""
    code = random_code()
    grant = Grant.objects.create(user=account, application=client, code=digest(code), redirect_uri=redirect_uri,
                                 scope=scope, nonce=nonce or "", code_challenge=challenge or "",
                                 code_challenge_method=method or "",
                                 expires=timezone.now() + provider().auth_code_expiry)
    link_credential(credential, grant=grant)
    return code


# --- credential scope (spec/auth.md §5.5) ---------------------------------------------------
def link_credential(credential: Credential | None, **target) -> None:
    """Record that a grant or token was obtained with an app password (the password needs no
    link: a new password already ends everything, see revoke_account_tokens)."""
    if credential is not None and credential.kind != Credential.Kind.PASSWORD:
        CredentialLink.objects.create(credential=credential, **target)


def _link_of(**target) -> CredentialLink | None:
    return CredentialLink.objects.select_related("credential").filter(**target).first()


def linked_credential(link: CredentialLink | None) -> Credential | None:
    """The app password behind a grant or token, None for the password; OAuthError when that
    app password was destroyed or has expired."""
    if link is None:
        return None
    cred = link.credential
    if cred is None or cred.is_expired(timezone.now()):
        raise OAuthError("invalid_grant", "The app password this was obtained with was revoked, changed or has expired.")
    return cred


def revoke_credential_tokens(sender=None, instance=None, created=False, **kwargs) -> None:
    """Credential post_save and pre_delete: a changed or destroyed app password ends every grant
    and token obtained with it, as a new password does for the password's."""
    if created or instance is None or instance.pk is None or instance.kind == Credential.Kind.PASSWORD:
        return
    RefreshToken.objects.filter(credential_link__credential=instance).delete()
    AccessToken.objects.filter(credential_link__credential=instance).delete()
    Grant.objects.filter(credential_link__credential=instance).delete()
    DeviceGrant.objects.filter(credential_link__credential=instance).delete()


def check_pkce(grant: Grant, verifier: str | None) -> bool:
    if not grant.code_challenge:
        return not verifier
    if not verifier or not re.fullmatch(r"[A-Za-z0-9\-._~]{43,128}", verifier):
        return False
    if grant.code_challenge_method == "S256":
        computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    else:
        computed = verifier
    return hmac.compare_digest(computed, grant.code_challenge)


def exchange_code(code: str, client_id: str | None, redirect_uri: str | None, verifier: str | None,
                  client_secret: str | None, issuer: str | None = None) -> dict:
    if not code or not redirect_uri or not client_id:
        raise OAuthError("invalid_request", "code, redirect_uri and client_id are required.")
    client = authenticate_client(client_id, client_secret)
    error = None
    with transaction.atomic():
        grant = Grant.objects.select_for_update().select_related("application", "user").filter(code=digest(code)).first()
        if grant is None or grant.expires <= timezone.now():
            raise OAuthError("invalid_grant", "The authorization code is unknown, used or expired.",
                             counts_towards_ban=grant is None)
        link = _link_of(grant_id=grant.pk)
        # A code is single-use: whatever happens next, it is gone. The errors below are raised
        # after the block, which would otherwise roll the deletion back with them.
        grant.delete()
        if grant.application.client_id != client_id or grant.redirect_uri != redirect_uri:
            error = OAuthError("invalid_grant", "The code was issued to another client or redirect URI.")
        elif not check_pkce(grant, verifier):
            error = OAuthError("invalid_grant", "The PKCE code verifier does not match.")
        elif client is None and grant.application.client_type == OAuthClient.CLIENT_CONFIDENTIAL:
            error = client_auth_failed()
        else:
            try:
                credential = linked_credential(link)
            except OAuthError as exc:
                error = exc
            else:
                return issue_tokens(grant.user, grant.application, grant.scope, nonce=grant.nonce, id_token_too=True,
                                    credential=credential, issuer=issuer)
    raise error


# --- tokens ---------------------------------------------------------------------------------
def issue_tokens(account: Account, client: OAuthClient, scope: str, *, nonce: str | None = None,
                 id_token_too: bool = False, refresh: bool = True, credential: Credential | None = None,
                 issuer: str | None = None) -> dict:
    prov = provider()
    now = timezone.now()
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    access = AccessToken(user=account, application=client, scope=scope, expires=now + prov.access_token_expiry)
    set_token_value(access, raw)
    access.save()
    link_credential(credential, access_token=access)
    out = {"access_token": raw, "token_type": "bearer", "expires_in": int(prov.access_token_expiry.total_seconds())}
    if refresh:
        raw_refresh = TOKEN_PREFIX + secrets.token_urlsafe(32)
        rt = RefreshToken(user=account, application=client, access_token=access)
        set_token_value(rt, raw_refresh)
        rt.save()
        link_credential(credential, refresh_token=rt)
        out["refresh_token"] = raw_refresh
    if scope:
        out["scope"] = scope
    if id_token_too:
        out["id_token"] = id_token(account, client.client_id, nonce, issuer)
    return out


def refresh_tokens(raw: str | None, client_id: str | None, client_secret: str | None) -> dict:
    if not raw:
        raise OAuthError("invalid_request", "refresh_token is required.")
    if not client_id:
        # RFC 6749 §6: the token is bound to the client it was issued to, and a public client
        # identifies itself (§3.2.1) so that the binding can be checked.
        raise OAuthError("invalid_grant", "The refresh token was issued to another client.")
    client = authenticate_client(client_id, client_secret)
    prov = provider()
    with transaction.atomic():
        rt = (RefreshToken.objects.select_for_update().select_related("application", "user")
              .filter(token_checksum=digest(raw), revoked__isnull=True).first())
        if rt is None or rt.created + prov.refresh_token_expiry <= timezone.now():
            raise OAuthError("invalid_grant", "The refresh token is unknown, revoked or expired.",
                             counts_towards_ban=rt is None)
        if client_expired(rt.application):
            raise OAuthError("invalid_client", "The client has expired.", 401)
        if rt.application is None or rt.application.client_id != client_id:
            raise OAuthError("invalid_grant", "The refresh token was issued to another client.")
        if client is None and rt.application.client_type == OAuthClient.CLIENT_CONFIDENTIAL:
            # RFC 6749 §6: a confidential client authenticates to refresh (a stolen refresh token
            # alone is not enough).
            raise client_auth_failed()
        remaining = rt.created + prov.refresh_token_expiry - timezone.now()
        renew = remaining <= prov.refresh_token_renewal
        # RFC 6749 §6: the new access token has the scope of the original grant.
        # (Read apart: PostgreSQL refuses FOR UPDATE across the nullable access_token join.)
        scope = AccessToken.objects.filter(pk=rt.access_token_id).values_list("scope", flat=True).first() or ""
        credential = linked_credential(_link_of(refresh_token_id=rt.pk))
        out = issue_tokens(rt.user, rt.application, scope, refresh=renew, credential=credential)
        if renew:
            rt.revoked = timezone.now()
            rt.save(update_fields=["revoked"])
        return out


def token_owner(raw: str):
    """(kind, account, expires, issued) of a live token, or None."""
    if not raw or not raw.startswith(TOKEN_PREFIX):
        return None
    now = timezone.now()
    at = AccessToken.objects.select_related("user", "application").filter(token_checksum=digest(raw)).first()
    if at is not None and at.expires > now:
        if not _credential_alive(access_token_id=at.pk):
            return None
        return "access_token", at.user, at.expires, at.created, at.application, at.scope
    rt = RefreshToken.objects.select_related("user", "application").filter(token_checksum=digest(raw),
                                                                           revoked__isnull=True).first()
    if rt is not None and rt.created + provider().refresh_token_expiry > now:
        if not _credential_alive(refresh_token_id=rt.pk):
            return None
        return "refresh_token", rt.user, rt.created + provider().refresh_token_expiry, rt.created, rt.application, ""
    return None


def _credential_alive(**target) -> bool:
    try:
        linked_credential(_link_of(**target))
    except OAuthError:
        return False
    return True


def bearer_access_token(value: str, remote_ip: str | None):
    """accounts.http_auth Bearer method: our access tokens (refresh tokens are refused)."""
    token = value.strip()
    if not token.startswith(TOKEN_PREFIX):
        return None
    at = (AccessToken.objects.select_related("user").filter(token_checksum=digest(token), expires__gt=timezone.now())
          .first())
    if at is None or at.user is None or not at.user.is_active:
        raise account_login.AuthFailed("Invalid or expired token.")
    account = at.user
    link = _link_of(access_token_id=at.pk)
    if link is not None:
        # Obtained with an app password: that credential's session, checked as at a Basic login
        # with it (its permissions, expiry and allowed addresses).
        if link.credential is None:
            raise account_login.AuthFailed("Invalid or expired token.")
        principal = _principal(account_login._finish(account, link.credential, remote_ip))
        principal.expires_at = min(at.expires, principal.expires_at or at.expires)
        return principal
    cred = account.credentials.filter(kind=Credential.Kind.PASSWORD).first()
    perms = credential_permissions(account, cred)
    if "authenticate" not in perms:
        raise account_login.Unauthorized("This account may not log in.")
    principal = _principal(account_login.AuthResult(account, cred, perms))
    principal.expires_at = min(at.expires, principal.expires_at or at.expires)
    return principal


def revoke_account_tokens(sender=None, account=None, **kwargs) -> None:
    """A new password ends everything granted under the old one."""
    AccessToken.objects.filter(user=account).delete()
    RefreshToken.objects.filter(user=account).delete()
    Grant.objects.filter(user=account).delete()
    DeviceGrant.objects.filter(user=account).delete()


# --- device flow (RFC 8628) -----------------------------------------------------------------
@dataclass
class DeviceStart:
    device_code: str
    user_code: str
    expires_in: int


def start_device_flow(client_id: str, scope: str, nonce: str) -> DeviceStart:
    if not client_id:
        raise OAuthError("invalid_request", "client_id is required.")
    if len(client_id) > MAX_DEVICE_CLIENT_ID:
        raise OAuthError("invalid_request", f"client_id may have at most {MAX_DEVICE_CLIENT_ID} characters.")
    if len(nonce or "") > MAX_NONCE:
        raise OAuthError("invalid_request", f"nonce may have at most {MAX_NONCE} characters.")
    prov = provider()
    device_code, user_code = random_code(), new_user_code()
    DeviceGrant.objects.create(device_code=digest(device_code), user_code=digest(user_code), scope=valid_scope(scope),
                               client_id=client_id, interval=DEVICE_INTERVAL, nonce=nonce or "",
                               expires=timezone.now() + prov.user_code_expiry)
    return DeviceStart(device_code, user_code, int(prov.user_code_expiry.total_seconds()))


def decide_device(user_code: str, account: Account, approve: bool, credential: Credential | None = None) -> bool:
    code = normalise_user_code(user_code)
    if not code:
        return False
    with transaction.atomic():
        grant = DeviceGrant.objects.select_for_update().filter(user_code=digest(code)).first()
        if grant is None or grant.expires <= timezone.now() or grant.status != DeviceGrant.AUTHORIZATION_PENDING:
            return False
        grant.user = account
        grant.status = DeviceGrant.AUTHORIZED if approve else DeviceGrant.DENIED
        if approve:
            grant.expires = timezone.now() + provider().auth_code_expiry
        grant.save()
        if approve:
            link_credential(credential, device=grant)
    return True


def poll_device(device_code: str | None, client_id: str | None, issuer: str | None = None) -> dict:
    if not device_code or not client_id:
        raise OAuthError("invalid_request", "device_code and client_id are required.")
    error = None
    with transaction.atomic():
        grant = DeviceGrant.objects.select_for_update().filter(device_code=digest(device_code)).first()
        now = timezone.now()
        if grant is None or grant.expires <= now:
            error = OAuthError("expired_token", "The device code is unknown or has expired.",
                               counts_towards_ban=grant is None)
        elif grant.client_id != client_id:
            error = OAuthError("invalid_grant", "The device code was issued to another client.")
        elif grant.status == DeviceGrant.DENIED:
            grant.delete()
            error = OAuthError("access_denied", "The user denied the request.")
        elif grant.status == DeviceGrant.AUTHORIZATION_PENDING:
            too_soon = grant.polled_at is not None and now - grant.polled_at < timedelta(seconds=grant.interval)
            if too_soon:
                grant.interval += 5  # RFC 8628 §3.5: slow down by 5 seconds
            grant.polled_at = now
            grant.save()
            error = OAuthError("slow_down" if too_soon else "authorization_pending")
        elif grant.status == DeviceGrant.AUTHORIZED and grant.user is not None:
            account = grant.user
            link = _link_of(device_id=grant.pk)
            grant.delete()
        else:  # django-oauth-toolkit's "expired", or a grant without its user
            grant.delete()
            error = OAuthError("expired_token", "The device code is unknown or has expired.")
    # Raised after the block, so that the poll time and the deletions above are kept.
    if error is not None:
        raise error
    credential = linked_credential(link)
    client = client_for_flow(client_id, None, account)
    return issue_tokens(account, client, grant.scope, nonce=grant.nonce, id_token_too=True, credential=credential,
                        issuer=issuer)
