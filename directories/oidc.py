"""The OpenID Connect directory: Bearer tokens issued by an external identity provider.

A mail server does not run the provider's login flow; a client arrives with an access token it
got from the provider, and this backend decides whose it is:

- a JWT (three base64url parts whose header names an algorithm) is validated offline: the
  signature with the provider's published keys (discovery document → `jwks_uri`), then `iss`,
  `exp`/`nbf`/`iat`, `requireAudience` and `requireScopes`. A JWT that fails is refused; it never
  falls through to the userinfo endpoint, or a token minted for another audience would get in
  there;
- anything else is opaque: the provider's userinfo endpoint is asked who it belongs to. Userinfo
  says nothing of audience or scopes, so neither can be checked on this path (docs say so).

Signatures are checked by jwcrypto; only asymmetric algorithms are accepted, and only with a
published key of the matching type (no `none`, no HS256 keyed with a public key).

The discovery document and the key set are cached per backend (one per worker and directory
state). An unknown `kid`, or a known one whose key no longer verifies (a provider that reuses the
kid when it rotates, as this project's own provider does), refetches the key set, at most once
per `refresh_interval`, so that a flood of forged tokens cannot make us hammer the provider.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from urllib.parse import urlsplit

import requests
import requests.auth
from jwcrypto import jwk, jws
from jwcrypto.common import JWException

from .base import DirectoryError, DirectoryUnavailable, ExternalPrincipal, OidcConfig

log = logging.getLogger(__name__)

# The JWS algorithms a provider's public keys can verify (RFC 7518 §3.1, RFC 8037), with the key
# type and curves each one needs. HS* and "none" are absent on purpose.
_ALGORITHMS = {
    "RS256": ("RSA", None), "RS384": ("RSA", None), "RS512": ("RSA", None),
    "PS256": ("RSA", None), "PS384": ("RSA", None), "PS512": ("RSA", None),
    "ES256": ("EC", {"P-256"}), "ES384": ("EC", {"P-384"}), "ES512": ("EC", {"P-521"}),
    "EdDSA": ("OKP", {"Ed25519", "Ed448"}),
}
_COMPACT_JWS = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
MAX_TOKEN = 16 * 1024
MAX_DOCUMENT = 1024 * 1024


def _b64_json(segment: str):
    try:
        return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None


def jwt_header(token: str) -> dict | None:
    """The JOSE header when `token` is a compact JWS, else None (an opaque token)."""
    if len(token) > MAX_TOKEN or not _COMPACT_JWS.match(token):
        return None
    header = _b64_json(token.split(".", 1)[0])
    if not isinstance(header, dict) or not isinstance(header.get("alg"), str):
        return None
    return header


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _words(value) -> set[str]:
    """A scope-like claim: a space-separated string or a list of strings."""
    if isinstance(value, str):
        return set(value.split())
    if isinstance(value, list):
        return {v for v in value if isinstance(v, str)}
    return set()


def _address(value) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip().lower()
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in value):
        return None
    return value


def principal_from_claims(config: OidcConfig, claims: dict) -> ExternalPrincipal | None:
    """The account a verified set of claims (a JWT's payload or a userinfo answer) names, or None.

    The login is `claimUsername`, with `usernameDomain` appended when it has no domain; without a
    usable one, the `email` claim. An email the provider says it has not verified
    (`email_verified: false`) is never used: anyone could otherwise claim an address of ours.
    """
    email = None if claims.get("email_verified") is False else _address(claims.get("email"))
    name = None
    raw = claims.get(config.claim_username)
    if isinstance(raw, str) and raw.strip():
        raw = raw.strip()
        if "@" not in raw and config.username_domain:
            raw = f"{raw}@{config.username_domain.strip().lstrip('@')}"
        name = _address(raw)
    name = name or email
    if name is None:
        return None
    description = ""
    if config.claim_name:
        value = claims.get(config.claim_name)
        if isinstance(value, str):
            description = value.strip()
    groups: tuple[str, ...] = ()
    if config.claim_groups:
        value = claims.get(config.claim_groups)
        items = value.split() if isinstance(value, str) else value if isinstance(value, list) else []
        groups = tuple(dict.fromkeys(g.strip() for g in items if isinstance(g, str) and g.strip()))
    emails = (name,) + ((email,) if email and email != name else ())
    return ExternalPrincipal(name=name, kind="user", description=description, emails=emails, groups=groups,
                             verified=True)


class OidcDirectory:
    # Seconds. Instance attributes may be changed (tests do), class values are the defaults.
    discovery_ttl = 3600
    jwks_ttl = 3600
    refresh_interval = 30   # at most one key-set fetch per this many seconds, whatever asks for it
    leeway = 30             # clock skew allowed on exp, nbf and iat
    userinfo_ttl = 60
    userinfo_cache_size = 4096
    # Userinfo calls for tokens not in the cache, per worker and directory: a bucket of this
    # many, refilled at userinfo_rate a second. A flood of made-up tokens from many addresses
    # (each under the ban's count) would otherwise become as many calls to the provider;
    # beyond the bucket the answer is "temporarily unavailable" (503, never a ban).
    userinfo_burst = 40
    userinfo_rate = 20.0
    timeout = 10
    userinfo_timeout = 5

    def __init__(self, config: OidcConfig, *, clock=time.time):
        if not config.issuer_url:
            raise DirectoryError("the directory has no issuer URL")
        self.config = config
        self._clock = clock
        self._lock = threading.Lock()
        # The environment applies (HTTPS_PROXY, REQUESTS_CA_BUNDLE for a provider behind a
        # private CA), as for any other client on the machine.
        self._http = requests.Session()
        self._meta: dict | None = None
        self._meta_at = 0.0
        self._meta_failed: float | None = None
        self._keys: list[jwk.JWK] | None = None
        self._keys_at = 0.0
        self._keys_tried: float | None = None  # the last key-set fetch attempt, successful or not
        self._userinfo: OrderedDict[str, tuple[float, ExternalPrincipal | None]] = OrderedDict()
        self._bucket = float(self.userinfo_burst)
        self._bucket_at = clock()

    # --- the Backend protocol -----------------------------------------------------------------
    def authenticate(self, login: str, secret: str) -> ExternalPrincipal | None:
        """A provider checks passwords in its own login flow, never for us."""
        return None

    def lookup(self, login: str) -> ExternalPrincipal | None:
        """OpenID Connect has no way to look someone up without their token."""
        return None

    def authenticate_bearer(self, token: str) -> ExternalPrincipal | None:
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN:
            return None
        header = jwt_header(token)
        if header is not None:
            return self._validate_jwt(token, header)
        return self._ask_userinfo(token)

    def close(self) -> None:
        self._http.close()

    # --- HTTP ---------------------------------------------------------------------------------
    def _get(self, url: str, *, auth=None, timeout: float | None = None) -> tuple[int, object]:
        """(status, parsed JSON body or None). Unreachable or failing (5xx, 429) → unavailable."""
        try:
            with self._http.get(url, headers={"Accept": "application/json"}, auth=auth,
                                timeout=timeout or self.timeout, allow_redirects=False, stream=True) as resp:
                status = resp.status_code
                if status >= 500 or status == 429:
                    raise DirectoryUnavailable(f"the identity provider answered {status} at {_origin(url)}")
                body = resp.raw.read(MAX_DOCUMENT + 1, decode_content=True)
        except requests.RequestException as exc:
            raise DirectoryUnavailable(f"the identity provider is unreachable at {_origin(url)}: "
                                       f"{type(exc).__name__}") from None
        if len(body) > MAX_DOCUMENT:
            raise DirectoryError(f"the identity provider's answer at {_origin(url)} is too large")
        try:
            return status, json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return status, None

    def metadata(self) -> dict:
        """The provider's discovery document, checked and cached: also what /api/discover/{email}
        answers for a domain bound to this directory (oauth.md §6.12)."""
        with self._lock:
            now = self._clock()
            if self._meta is not None and now - self._meta_at < self.discovery_ttl:
                return self._meta
            if self._meta_failed is not None and now - self._meta_failed < self.refresh_interval:
                # Asked and failed a moment ago: every request would otherwise wait on the provider.
                raise DirectoryUnavailable(f"the discovery document of {self.config.issuer_url} could not be "
                                           "fetched")
        issuer = self.config.issuer_url
        try:
            status, doc = self._get(issuer.rstrip("/") + "/.well-known/openid-configuration")
        except DirectoryUnavailable:
            with self._lock:
                self._meta_failed = self._clock()
            raise
        if status != 200 or not isinstance(doc, dict):
            raise DirectoryError(f"no OpenID Connect discovery document at {issuer} (status {status})")
        # OpenID Connect Discovery §4.3: the document's issuer is exactly the configured one.
        if doc.get("issuer") != issuer:
            raise DirectoryError(f"the discovery document names issuer {doc.get('issuer')!r}, not {issuer!r}")
        if not _http_url(doc.get("jwks_uri")):
            raise DirectoryError("the discovery document has no usable jwks_uri")
        if "userinfo_endpoint" in doc and not _http_url(doc["userinfo_endpoint"]):
            raise DirectoryError("the discovery document's userinfo_endpoint is not an http(s) URL")
        with self._lock:
            self._meta, self._meta_at = doc, self._clock()
        return doc

    # --- keys -----------------------------------------------------------------------------------
    def _fetch_keys(self) -> list[jwk.JWK]:
        status, doc = self._get(self.metadata()["jwks_uri"])
        if status != 200 or not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
            raise DirectoryError(f"the identity provider's key set is unusable (status {status})")
        keys = []
        for entry in doc["keys"]:
            if not isinstance(entry, dict) or entry.get("kty") not in ("RSA", "EC", "OKP"):
                continue  # symmetric keys above all: a provider's secret is no business of ours
            if entry.get("use", "sig") != "sig":
                continue
            try:
                key = jwk.JWK(**{k: v for k, v in entry.items() if k in _PUBLIC_MEMBERS})
            except (JWException, ValueError, TypeError):
                log.warning("skipping an unreadable key in the key set of %s", self.config.issuer_url)
                continue
            keys.append(key)
        return keys

    def _current_keys(self) -> list[jwk.JWK]:
        with self._lock:
            if self._keys is not None and self._clock() - self._keys_at < self.jwks_ttl:
                return self._keys
        if not self._refresh_keys():
            with self._lock:
                if self._keys is None or self._clock() - self._keys_at >= self.jwks_ttl:
                    # The last attempt failed a moment ago: answer at once instead of asking again.
                    raise DirectoryUnavailable(f"the key set of {self.config.issuer_url} could not be fetched")
        return self._keys

    def _refresh_keys(self) -> bool:
        """Fetch the key set unless one was fetched (or tried) within `refresh_interval`. True
        when a fetch happened."""
        with self._lock:
            now = self._clock()
            if self._keys_tried is not None and now - self._keys_tried < self.refresh_interval:
                return False
            self._keys_tried = now
        keys = self._fetch_keys()
        with self._lock:
            self._keys, self._keys_at = keys, self._clock()
        return True

    @staticmethod
    def _candidates(keys: list[jwk.JWK], alg: str, kid) -> list[jwk.JWK]:
        kty, curves = _ALGORITHMS[alg]
        found = []
        for key in keys:
            if kid is not None and key.get("kid") != kid:
                continue
            if key.get("kty") != kty or key.get("alg", alg) != alg:
                continue
            if curves is not None and key.get("crv") not in curves:
                continue
            found.append(key)
        return found

    def _verified_payload(self, token: str, header: dict) -> bytes | None:
        alg, kid = header["alg"], header.get("kid")
        if alg not in _ALGORITHMS:
            log.info("refused a token signed with %r from %s", alg[:20], self.config.issuer_url)
            return None
        if kid is not None and not isinstance(kid, str):
            return None
        obj = jws.JWS()
        try:
            obj.deserialize(token)
        except JWException:
            return None  # unparsable: no key could verify it, so no reason to refetch the key set
        obj.allowed_algs = [alg]
        keys = self._current_keys()
        for attempt in (1, 2):
            for key in self._candidates(keys, alg, kid):
                try:
                    obj.verify(key)
                    return obj.payload
                except JWException:
                    continue
            # An unknown kid, or none of the keys verifies: the provider may have rotated.
            if attempt == 1 and self._refresh_keys():
                keys = self._keys
                continue
            break
        log.info("refused a token from %s: no published key verifies it (kid %r)", self.config.issuer_url,
                 kid[:64] if isinstance(kid, str) else kid)
        return None

    # --- JWT ------------------------------------------------------------------------------------
    def _validate_jwt(self, token: str, header: dict) -> ExternalPrincipal | None:
        payload = self._verified_payload(token, header)
        if payload is None:
            return None
        try:
            claims = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(claims, dict):
            return None
        problem = self._claims_problem(claims)
        if problem is not None:
            log.info("refused a token from %s: %s", self.config.issuer_url, problem)
            return None
        principal = principal_from_claims(self.config, claims)
        if principal is None:
            log.info("refused a token from %s: neither %r nor a verified email claim names the account",
                     self.config.issuer_url, self.config.claim_username)
        return principal

    def _claims_problem(self, claims: dict) -> str | None:
        config, now, leeway = self.config, self._clock(), self.leeway
        # The discovery document's issuer was checked to be exactly this one.
        if claims.get("iss") != config.issuer_url:
            return "wrong issuer"
        exp = claims.get("exp")
        if not _is_number(exp):
            return "no expiry"
        if now > exp + leeway:
            return "expired"
        nbf, iat = claims.get("nbf"), claims.get("iat")
        if nbf is not None and (not _is_number(nbf) or nbf > now + leeway):
            return "not valid yet"
        if iat is not None and (not _is_number(iat) or iat > now + leeway):
            return "issued in the future"
        if config.require_audience:
            aud = claims.get("aud")
            audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
            if config.require_audience not in audiences:
                return "wrong audience"
        if config.require_scopes:
            granted = _words(claims.get("scope")) | _words(claims.get("scp"))
            missing = [s for s in config.require_scopes if s not in granted]
            if missing:
                return f"missing scope {missing[0]!r}"
        return None

    # --- opaque tokens: userinfo ----------------------------------------------------------------
    def _ask_userinfo(self, token: str) -> ExternalPrincipal | None:
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
        now = self._clock()
        with self._lock:
            hit = self._userinfo.get(digest)
            if hit is not None and hit[0] > now:
                return hit[1]
            self._bucket = min(float(self.userinfo_burst),
                               self._bucket + (now - self._bucket_at) * self.userinfo_rate)
            self._bucket_at = now
            if self._bucket < 1:
                raise DirectoryUnavailable("too many userinfo look-ups of unknown tokens; the provider is spared")
            self._bucket -= 1
        endpoint = self.metadata().get("userinfo_endpoint")
        if not endpoint:
            log.info("refused an opaque token: %s publishes no userinfo endpoint", self.config.issuer_url)
            return None
        status, body = self._get(endpoint, auth=_Bearer(token), timeout=self.userinfo_timeout)
        if status == 200 and isinstance(body, dict):
            principal = principal_from_claims(self.config, body)
        elif status in (400, 401, 403):
            principal = None
        else:
            raise DirectoryError(f"the userinfo endpoint of {self.config.issuer_url} answered {status} "
                                 "without a JSON object")
        with self._lock:
            self._userinfo[digest] = (now + self.userinfo_ttl, principal)
            self._userinfo.move_to_end(digest)
            while len(self._userinfo) > self.userinfo_cache_size:
                self._userinfo.popitem(last=False)
        return principal


# The members of a public JWK we hand to jwcrypto; private members a careless provider publishes
# are dropped, so that a key never signs here.
_PUBLIC_MEMBERS = {"kty", "kid", "alg", "use", "key_ops", "n", "e", "crv", "x", "y"}


class _Bearer(requests.auth.AuthBase):
    """The token as an auth object, not a header: a ~/.netrc entry for the provider's host would
    otherwise replace the header with its own credentials."""

    def __init__(self, token: str):
        self.token = token

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


def _http_url(value) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _origin(url: str) -> str:
    """Where a request went, for messages: never the path or query (they may carry anything)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
