"""OAuth clients: the reference's redirect-URI rules, client secrets, and dynamic client
registration (RFC 7591).

Every face that writes a client (JMAP x:OAuthClient, the admin page, manage.py, POST
/auth/register) goes through the model's clean() and save(), which call `check_client` and
`prepare_for_save` below, so the rules hold whoever writes:

- redirect URIs follow the reference's registration rules (no fragment, no "..", https, loopback
  http or a private-use scheme with a dot), not django-oauth-toolkit's (http/https only, and none
  at all refused for the authorization-code grant);
- a secret is stored as a hash, argon2id with the parameters of account passwords (in Django's
  "argon2$…" format, so that django.contrib.auth.hashers.check_password verifies it); a client
  with a secret is confidential, one without is public.

Dynamic registration stores every client it accepts, public ones included: the reference hands
public clients a stateless encrypted id (`swc1.`) and stores nothing, which can be neither listed
nor revoked. A stored row shows up in x:OAuthClient/query and in the admin, carries an audit
trail, and destroying it ends every token issued to it. The price is that registering the same
metadata twice gives two client ids, and that anonymous registration writes rows: it is capped
per address (oauth.registration).
"""
from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.contrib.auth.hashers import get_hasher, identify_hasher
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator
from django.db import IntegrityError

from accounts import hashing
from registry import services as registry
from registry.errors import PrimaryKeyViolation

from . import services
from .models import OAuthClient
from .objects import OAUTH_CLIENT

MAX_URI_LENGTH = 2048
MAX_REDIRECT_URIS = 255
MAX_CONTACTS = 100
CLIENT_ID_LENGTH = 20
SECRET_LENGTH = 48
MASK = "****"

AUTH_METHODS = ("none", "client_secret_post", "client_secret_basic", "client_secret_jwt", "private_key_jwt")
_PRIVATE_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9.+-]*$")
_LOWER_ALNUM = string.ascii_lowercase + string.digits
_ALNUM = string.ascii_letters + string.digits
_email = EmailValidator()


# --- redirect URIs ----------------------------------------------------------------------------
def redirect_uri_error(uri) -> str | None:
    """Why a redirect URI cannot be registered (reference `validate_redirect_uri`), or None."""
    if not isinstance(uri, str) or not uri:
        return "A redirect URI must be a non-empty string."
    if len(uri) > MAX_URI_LENGTH:
        return f"A redirect URI may have at most {MAX_URI_LENGTH} characters."
    # Stored space-separated: white space would split one URI into two.
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in uri):
        return "A redirect URI may not contain white space or control characters."
    if "#" in uri:
        return "A redirect URI may not have a fragment."
    if ".." in uri:
        return 'A redirect URI may not contain "..".'
    if uri.startswith(("https://", "http://")):
        # The login page names the host the code goes to: a user name ("https://trusted@evil/"),
        # a backslash (read as "/" by browsers) or a malformed port would make that name lie.
        if "\\" in uri:
            return "A redirect URI may not contain a backslash."
        try:
            parts = urlsplit(uri)
            parts.port  # noqa: B018  (raises ValueError on a malformed or out-of-range port)
        except ValueError:
            return "The redirect URI is malformed (host or port)."
        if "@" in parts.netloc:
            return "A redirect URI may not carry a user name or password."
    if uri.startswith("https://"):
        return None if parts.hostname else "The https redirect URI has no host."
    if uri.startswith("http://"):
        if services.is_loopback(uri):
            return None
        return "An http redirect URI must be a loopback address (http://127.0.0.1 or http://[::1]); use https."
    scheme, colon, rest = uri.partition(":")
    if colon and rest and "." in scheme and _PRIVATE_SCHEME.match(scheme):
        return None
    return ("A redirect URI must use https, loopback http, or a private-use scheme "
            "in reverse domain notation (com.example.app:/callback).")


def split_uris(value: str) -> list[str]:
    return (value or "").split()


# --- secrets ----------------------------------------------------------------------------------
def new_client_id() -> str:
    return "".join(secrets.choice(_LOWER_ALNUM) for _ in range(CLIENT_ID_LENGTH))


def new_secret() -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(SECRET_LENGTH))


def _django_hash(value: str) -> bool:
    """True for a complete hash in one of the formats of settings.PASSWORD_HASHERS."""
    try:
        hasher = identify_hasher(value)
        hasher.decode(value)
    except Exception:  # noqa: BLE001  (any failure to read it means: not a usable hash)
        return False
    return True


def secret_error(value: str) -> str | None:
    """Why a secret given by an administrator cannot be stored, or None."""
    if not value:
        return None
    if value == MASK:
        return "**** stands for the stored secret; give the new secret itself."
    if _django_hash(value):
        return None
    if value.startswith("$argon2"):
        return None if hashing.is_password_hash(value) else "The argon2 hash is malformed."
    if value.startswith(("$", "{")):
        return ("Only argon2 hashes can be stored as given (other schemes cannot be verified for clients); "
                "give the secret itself, which is then hashed.")
    return None


def stored_secret(value: str) -> str:
    """What the database keeps for a secret: "" (none) or a hash check_password verifies."""
    if not value:
        return ""
    if _django_hash(value):
        return value
    if value.startswith("$argon2") and hashing.is_password_hash(value):
        # The reference's PHC string; Django's argon2 hasher reads it behind its own prefix.
        return get_hasher("argon2").algorithm + value
    return get_hasher("argon2").algorithm + hashing.hash_secret(value, "argon2id")


# --- the model hooks --------------------------------------------------------------------------
def check_client(client) -> None:
    """OAuthClient.clean(): raise a ValidationError keyed by field for what cannot be stored."""
    errors: dict[str, list[ValidationError]] = {}
    uris = split_uris(client.redirect_uris)
    if len(uris) > MAX_REDIRECT_URIS:
        errors.setdefault("redirect_uris", []).append(
            ValidationError(f"At most {MAX_REDIRECT_URIS} redirect URIs.", code="invalid_redirect_uri"))
    for uri in uris:
        problem = redirect_uri_error(uri)
        if problem:
            errors.setdefault("redirect_uris", []).append(
                ValidationError(f"{uri[:200]}: {problem}", code="invalid_redirect_uri"))
    problem = secret_error(client.client_secret or "")
    if problem:
        errors.setdefault("client_secret", []).append(ValidationError(problem, code="invalid_secret"))
    contacts = client.contacts or []
    if len(contacts) > MAX_CONTACTS:
        errors.setdefault("contacts", []).append(ValidationError(f"At most {MAX_CONTACTS} contacts."))
    for address in contacts:
        try:
            _email(address)
        except ValidationError:
            errors.setdefault("contacts", []).append(
                ValidationError(f"{str(address)[:200]} is not an email address.", code="invalid_contact"))
    for field_name in ("description", "logo"):
        if _has_control(getattr(client, field_name) or ""):
            errors.setdefault(field_name, []).append(
                ValidationError("Control characters are not allowed.", code="invalid"))
    if client.logo and not logo_ok(client.logo):
        errors.setdefault("logo", []).append(ValidationError(
            "The logo must be an http(s) URL or a base64-encoded image.", code="invalid"))
    if errors:
        raise ValidationError(errors)


_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]+")
_DATA_IMAGE = re.compile(r"data:image/[a-z0-9.+-]+;base64,[A-Za-z0-9+/=]+", re.I)


def _has_control(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def http_url_ok(value: str) -> bool:
    """An absolute http(s) URL: pages show client URLs as links, so no javascript: or data:."""
    if _has_control(value):
        return False
    try:
        URLValidator(schemes=["http", "https"])(value)
    except ValidationError:
        return False
    return True


def logo_ok(value: str) -> bool:
    return http_url_ok(value) or bool(_BASE64.fullmatch(value) or _DATA_IMAGE.fullmatch(value))


def derive_type(client) -> None:
    """The secret decides the client type: confidential with one, public without."""
    client.client_type = client.CLIENT_CONFIDENTIAL if client.client_secret else client.CLIENT_PUBLIC
    if not client.authorization_grant_type:
        client.authorization_grant_type = client.GRANT_AUTHORIZATION_CODE


def prepare_for_save(client) -> None:
    """OAuthClient.save(): hash a plaintext secret, derive the type, drop duplicate URIs."""
    client.redirect_uris = " ".join(dict.fromkeys(split_uris(client.redirect_uris)))
    client.client_secret = stored_secret(client.client_secret or "")
    derive_type(client)


# --- dynamic client registration (RFC 7591) ---------------------------------------------------
class RegistrationError(Exception):
    """400 {"error", "error_description"} (RFC 7591 §3.2.2)."""

    def __init__(self, error: str, description: str):
        super().__init__(description)
        self.error, self.description = error, description


@dataclass
class Registration:
    metadata: dict
    redirect_uris: list[str]
    auth_method: str
    scope: str | None = None
    client_name: str = ""
    contacts: list[str] = field(default_factory=list)
    logo_uri: str = ""

    @property
    def confidential(self) -> bool:
        return self.auth_method != "none"


def _strings(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _meta_error(description: str) -> RegistrationError:
    return RegistrationError("invalid_client_metadata", description)


def parse_registration(body: dict) -> Registration:
    """Validate registration metadata in the reference's order; raise RegistrationError."""
    uris = body.get("redirect_uris")
    if uris is None or uris == []:
        raise RegistrationError("invalid_redirect_uri", "At least one redirect URI is required.")
    if not _strings(uris):
        raise RegistrationError("invalid_redirect_uri", "redirect_uris must be an array of strings.")
    if len(uris) > MAX_REDIRECT_URIS:
        raise RegistrationError("invalid_redirect_uri", f"At most {MAX_REDIRECT_URIS} redirect URIs.")
    for uri in uris:
        problem = redirect_uri_error(uri)
        if problem:
            raise RegistrationError("invalid_redirect_uri", problem)
    if "response_types" in body:
        types = body["response_types"]
        if not _strings(types) or "code" not in types:
            raise _meta_error('response_types must include "code".')
    if "grant_types" in body:
        grants = body["grant_types"]
        if not _strings(grants) or "authorization_code" not in grants or "refresh_token" not in grants:
            raise _meta_error('grant_types must include "authorization_code" and "refresh_token".')
    method = body.get("token_endpoint_auth_method")
    if method is None:
        method = "none"
    if method not in AUTH_METHODS:
        raise _meta_error(f"token_endpoint_auth_method must be one of {', '.join(AUTH_METHODS)}.")
    for key, allowed in (("application_type", ("web", "native")), ("subject_type", ("public", "pairwise"))):
        if body.get(key) is not None and body[key] not in allowed:
            raise _meta_error(f"{key} must be one of {', '.join(allowed)}.")
    scope = body.get("scope")
    if scope is not None and not isinstance(scope, str):
        raise _meta_error("scope must be a string.")
    name = body.get("client_name")
    if name is not None and (not isinstance(name, str) or len(name) > 255 or _has_control(name)):
        raise _meta_error("client_name must be a string of at most 255 characters, without control characters.")
    logo = body.get("logo_uri")
    if logo is not None and (not isinstance(logo, str) or len(logo) > MAX_URI_LENGTH):
        raise _meta_error(f"logo_uri must be a string of at most {MAX_URI_LENGTH} characters.")
    for key in ("logo_uri", "client_uri", "policy_uri", "tos_uri"):
        value = body.get(key)
        if value is not None and not (isinstance(value, str) and len(value) <= MAX_URI_LENGTH and http_url_ok(value)):
            raise _meta_error(f"{key} must be an absolute http or https URL.")
    contacts = body.get("contacts")
    if contacts is not None:
        if not _strings(contacts) or len(contacts) > MAX_CONTACTS:
            raise _meta_error(f"contacts must be an array of at most {MAX_CONTACTS} email addresses.")
        for address in contacts:
            try:
                _email(address)
            except ValidationError:
                raise _meta_error(f"{address[:200]} is not an email address.") from None
    return Registration(
        metadata=body, redirect_uris=list(dict.fromkeys(uris)), auth_method=method,
        # Unknown scopes are dropped, as the reference does for the scopes of public clients.
        scope=services.valid_scope(scope) if scope is not None else None,
        client_name=name or "", contacts=sorted(set(contacts or [])), logo_uri=logo or "",
    )


# Keys of a registration response that only the server sets (never echoed from the request).
SERVER_KEYS = ("client_id", "client_secret", "client_id_issued_at", "client_secret_expires_at",
               "registration_access_token", "registration_client_uri")


def register_client(reg: Registration, principal=None, actor: str | None = None):
    """Store the client of a valid registration; return (client, plaintext secret or None).

    principal: the authenticated caller (its tenant owns the client), None when anonymous.
    """
    secret = new_secret() if reg.confidential else None
    for attempt in range(3):
        client = OAuthClient(registration_source=OAuthClient.RegistrationSource.DCR, name=reg.client_name,
                             authorization_grant_type=OAuthClient.GRANT_AUTHORIZATION_CODE)
        values = {
            "client_id": new_client_id(), "description": reg.client_name, "contacts": reg.contacts,
            "redirect_uris": " ".join(reg.redirect_uris), "logo": reg.logo_uri, "client_secret": secret or "",
            "tenant": getattr(principal, "tenant_id", None),
        }
        try:
            client = registry.create(OAUTH_CLIENT, values, principal if principal is not None else actor,
                                     instance=client)
        except (PrimaryKeyViolation, IntegrityError):
            if attempt == 2:
                raise
            continue
        return client, secret
    raise RuntimeError("unreachable")


def registration_response(reg: Registration, client, secret: str | None) -> dict:
    out = {k: v for k, v in reg.metadata.items() if k not in SERVER_KEYS}
    out.update({
        "client_id": client.client_id,
        "client_id_issued_at": int(client.created.timestamp()),
        "redirect_uris": reg.redirect_uris,
        "token_endpoint_auth_method": reg.auth_method,
    })
    if reg.scope is not None:
        out["scope"] = reg.scope
    if reg.client_name:
        out["client_name"] = reg.client_name
    if secret is not None:
        out["client_secret"] = secret
        out["client_secret_expires_at"] = 0
    return out
