"""OAuth 2.0 and OpenID Connect: codes, tokens, ID tokens and client rules.

django-oauth-toolkit provides the storage (clients, grants, device grants, access and refresh
tokens, kept as SHA-256 checksums only); the wire behaviour is ours, so that it follows the
RFCs where the reference deviates and the reference where clients depend on it.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import string
import time
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from jwcrypto import jwk, jwt
from oauth2_provider.models import AccessToken, Grant, RefreshToken, set_token_value

from accounts import services as account_services
from accounts.authz import credential_permissions
from accounts.models import Account, Credential
from registry import services as registry_services

from .models import DeviceAuthorization as DeviceGrant
from .models import OAuthClient, OidcProvider

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
_memo: dict = {}


def provider() -> OidcProvider:
    return registry_services.current(OidcProvider)


def issuer() -> str:
    return account_services.public_url()


def signing_key() -> jwk.JWK:
    """The ID-token key: generated on first use and kept in the OidcProvider settings."""
    prov = provider()
    memo = _memo.get("key")
    if memo is not None and memo[0] == (prov.signature_algorithm, prov.signature_key):
        return memo[1]
    pem = prov.signature_key
    if not pem:
        key = (jwk.JWK.generate(kty="EC", crv="P-256") if prov.signature_algorithm == "es256"
               else jwk.JWK.generate(kty="RSA", size=2048))
        candidate = key.export_to_pem(private_key=True, password=None).decode()
        # The first writer wins, on any database (SQLite ignores select_for_update): two workers
        # generating at once must not end up signing with a key other than the one published.
        with transaction.atomic():
            if OidcProvider.objects.filter(pk=prov.pk, signature_key="").update(signature_key=candidate):
                # A change of the settings object like any other: audited, and its state moves
                # so that every worker's cached copy is replaced.
                registry_services.audit_event("oauth", "OidcProvider", "singleton", "update", "signatureKey",
                                              None, "****")
                registry_services.touch("OidcProvider", "singleton")
        pem = OidcProvider.objects.values_list("signature_key", flat=True).get(pk=prov.pk)
        prov = provider()
    key = jwk.JWK.from_pem(pem.encode())
    expected = "EC" if prov.signature_algorithm == "es256" else "RSA"
    if key.get("kty") != expected:
        raise ValueError(f"the signature key is {key.get('kty')}, but {prov.signature_algorithm} needs {expected}")
    _memo["key"] = ((prov.signature_algorithm, prov.signature_key), key)
    return key


def jwks() -> dict:
    key = signing_key()
    public = key.export_public(as_dict=True)
    public.update({"use": "sig", "alg": provider().signature_algorithm.upper(), "kid": "default"})
    return {"keys": [public]}


def id_token(account: Account, client_id: str, nonce: str | None) -> str:
    prov = provider()
    now = int(time.time())
    claims = {"iss": issuer(), "sub": str(account.pk), "aud": client_id, "iat": now, "nbf": now,
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
def is_loopback(uri: str) -> bool:
    return bool(re.match(r"^http://(127\.0\.0\.1|\[::1\])(:\d+)?(/|$)", uri))


def redirect_matches(registered: str, presented: str) -> bool:
    """Exact match, or loopback URIs that differ only in the port (RFC 8252 §7.3)."""
    if registered == presented:
        return True
    strip = re.compile(r"^(http://(?:127\.0\.0\.1|\[::1\]))(?::\d+)?(/.*)?$")
    a, b = strip.match(registered), strip.match(presented)
    return bool(a and b and a.group(1) == b.group(1) and (a.group(2) or "/") == (b.group(2) or "/"))


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
            allowed = client.redirect_uris.split()
            if not any(redirect_matches(r, redirect_uri) for r in allowed):
                if account is None or not account.has_stalwart_perm("oAuthClientOverride"):
                    raise OAuthError("invalid_request", "The redirect URI is not registered for this client.")
        return client
    if provider().require_client_registration and (account is None or not account.has_stalwart_perm("oAuthClientOverride")):
        raise OAuthError("invalid_client", "Unknown client.", 401)
    if client is None:
        client, _ = OAuthClient.objects.get_or_create(
            client_id=client_id,
            defaults={"client_type": OAuthClient.CLIENT_PUBLIC, "name": client_id[:255], "ephemeral": True,
                      "authorization_grant_type": OAuthClient.GRANT_AUTHORIZATION_CODE, "redirect_uris": "",
                      "client_secret": ""},
        )
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
    from django.contrib.auth.hashers import check_password

    ok = check_password(client_secret, client.client_secret) if client.hash_client_secret else hmac.compare_digest(
        client_secret.encode(), (client.client_secret or "").encode())
    if not ok:
        raise client_auth_failed()
    return client


def valid_scope(scope: str | None) -> str:
    return " ".join(s for s in (scope or "").split() if s in SCOPES)


# --- authorization codes --------------------------------------------------------------------
def create_code(account: Account, client: OAuthClient, redirect_uri: str, scope: str, nonce: str,
                challenge: str, method: str) -> str:
    code = random_code()
    Grant.objects.create(user=account, application=client, code=digest(code), redirect_uri=redirect_uri,
                         scope=scope, nonce=nonce or "", code_challenge=challenge or "",
                         code_challenge_method=method or "",
                         expires=timezone.now() + provider().auth_code_expiry)
    return code


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
                  client_secret: str | None) -> dict:
    if not code or not redirect_uri or not client_id:
        raise OAuthError("invalid_request", "code, redirect_uri and client_id are required.")
    client = authenticate_client(client_id, client_secret)
    error = None
    with transaction.atomic():
        grant = Grant.objects.select_for_update().select_related("application", "user").filter(code=digest(code)).first()
        if grant is None or grant.expires <= timezone.now():
            raise OAuthError("invalid_grant", "The authorization code is unknown, used or expired.",
                             counts_towards_ban=grant is None)
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
            return issue_tokens(grant.user, grant.application, grant.scope, nonce=grant.nonce, id_token_too=True)
    raise error


# --- tokens ---------------------------------------------------------------------------------
def issue_tokens(account: Account, client: OAuthClient, scope: str, *, nonce: str | None = None,
                 id_token_too: bool = False, refresh: bool = True) -> dict:
    prov = provider()
    now = timezone.now()
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    access = AccessToken(user=account, application=client, scope=scope, expires=now + prov.access_token_expiry)
    set_token_value(access, raw)
    access.save()
    out = {"access_token": raw, "token_type": "bearer", "expires_in": int(prov.access_token_expiry.total_seconds())}
    if refresh:
        raw_refresh = TOKEN_PREFIX + secrets.token_urlsafe(32)
        rt = RefreshToken(user=account, application=client, access_token=access)
        set_token_value(rt, raw_refresh)
        rt.save()
        out["refresh_token"] = raw_refresh
    if scope:
        out["scope"] = scope
    if id_token_too:
        out["id_token"] = id_token(account, client.client_id, nonce)
    return out


def refresh_tokens(raw: str | None, client_id: str | None, client_secret: str | None) -> dict:
    if not raw:
        raise OAuthError("invalid_request", "refresh_token is required.")
    client = authenticate_client(client_id, client_secret) if client_id else None
    prov = provider()
    with transaction.atomic():
        rt = (RefreshToken.objects.select_for_update().select_related("application", "user")
              .filter(token_checksum=digest(raw), revoked__isnull=True).first())
        if rt is None or rt.created + prov.refresh_token_expiry <= timezone.now():
            raise OAuthError("invalid_grant", "The refresh token is unknown, revoked or expired.",
                             counts_towards_ban=rt is None)
        if client_expired(rt.application):
            raise OAuthError("invalid_client", "The client has expired.", 401)
        if client is None and rt.application.client_type == OAuthClient.CLIENT_CONFIDENTIAL:
            # RFC 6749 §6: a confidential client authenticates to refresh (a stolen refresh token
            # alone is not enough).
            raise client_auth_failed()
        if client is not None and rt.application_id != client.pk:
            raise OAuthError("invalid_grant", "The refresh token was issued to another client.")
        remaining = rt.created + prov.refresh_token_expiry - timezone.now()
        renew = remaining <= prov.refresh_token_renewal
        # RFC 6749 §6: the new access token has the scope of the original grant.
        # (Read apart: PostgreSQL refuses FOR UPDATE across the nullable access_token join.)
        scope = AccessToken.objects.filter(pk=rt.access_token_id).values_list("scope", flat=True).first() or ""
        out = issue_tokens(rt.user, rt.application, scope, refresh=renew)
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
        return "access_token", at.user, at.expires, at.created, at.application, at.scope
    rt = RefreshToken.objects.select_related("user", "application").filter(token_checksum=digest(raw),
                                                                           revoked__isnull=True).first()
    if rt is not None and rt.created + provider().refresh_token_expiry > now:
        return "refresh_token", rt.user, rt.created + provider().refresh_token_expiry, rt.created, rt.application, ""
    return None


def bearer_access_token(value: str, remote_ip: str | None):
    """accounts.http_auth Bearer method: our access tokens (refresh tokens are refused)."""
    from accounts.http_auth import _principal

    token = value.strip()
    if not token.startswith(TOKEN_PREFIX):
        return None
    at = (AccessToken.objects.select_related("user").filter(token_checksum=digest(token), expires__gt=timezone.now())
          .first())
    if at is None or at.user is None or not at.user.is_active:
        raise account_services.AuthFailed("Invalid or expired token.")
    account = at.user
    cred = account.credentials.filter(kind=Credential.Kind.PASSWORD).first()
    perms = credential_permissions(account, cred)
    if "authenticate" not in perms:
        raise account_services.Unauthorized("This account may not log in.")
    principal = _principal(account_services.AuthResult(account, cred, perms))
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


def decide_device(user_code: str, account: Account, approve: bool) -> bool:
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
    return True


def poll_device(device_code: str | None, client_id: str | None) -> dict:
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
            grant.delete()
        else:  # django-oauth-toolkit's "expired", or a grant without its user
            grant.delete()
            error = OAuthError("expired_token", "The device code is unknown or has expired.")
    # Raised after the block, so that the poll time and the deletions above are kept.
    if error is not None:
        raise error
    client = client_for_flow(client_id, None, account)
    return issue_tokens(account, client, grant.scope, nonce=grant.nonce, id_token_too=True)
