"""Hashing and verification of secrets.

New hashes use the algorithm chosen in the Authentication settings, with the parameters of the
reference (the OWASP minimums): argon2id m=19 MiB t=2 p=1, bcrypt cost 10, scrypt N=2^17 r=8
p=1, PBKDF2-SHA256 600 000 rounds. Verification accepts any of the four whatever the setting,
plus what directories and imports hand over: the Unix crypt family ($6$/$5$ SHA-crypt, $sha1$,
$1$ MD5-crypt, _ BSDi and traditional DES) and the LDAP-style schemes ({SHA}, {SSHA}, {CRYPT},
…), so that a change of setting never locks anyone out; `needs_rehash` tells the caller to upgrade a hash
after a successful login.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

import argon2
import bcrypt as _bcrypt
from passlib.hash import bsdi_crypt, des_crypt, md5_crypt, sha1_crypt, sha256_crypt, sha512_crypt

ARGON2 = argon2.PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, hash_len=32, salt_len=16)
BCRYPT_COST = 10
SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P = 17, 8, 1
PBKDF2_ROUNDS = 600_000


class UnknownHashFormat(ValueError):
    """The stored value names a scheme we cannot verify (an error, not a mismatch)."""


def _b64e(raw: bytes) -> str:
    return base64.b64encode(raw).decode().rstrip("=")


def _b64d(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _as_bytes(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


# --- hashing --------------------------------------------------------------------------------
def hash_secret(secret: str | bytes, algorithm: str) -> str:
    raw = _as_bytes(secret)
    if algorithm == "argon2id":
        return ARGON2.hash(raw)
    if algorithm == "bcrypt":
        # bcrypt reads at most 72 bytes; pre-hashing longer secrets keeps every byte significant.
        return _bcrypt.hashpw(_bcrypt_input(raw), _bcrypt.gensalt(BCRYPT_COST, prefix=b"2b")).decode()
    if algorithm == "scrypt":
        salt = secrets.token_bytes(16)
        digest = _scrypt(raw, salt, SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P, 32)
        return f"$scrypt$ln={SCRYPT_LOG_N},r={SCRYPT_R},p={SCRYPT_P}${_b64e(salt)}${_b64e(digest)}"
    if algorithm == "pbkdf2":
        salt = secrets.token_bytes(16)
        digest = hashlib.pbkdf2_hmac("sha256", raw, salt, PBKDF2_ROUNDS, 32)
        return f"$pbkdf2-sha256$i={PBKDF2_ROUNDS},l=32${_b64e(salt)}${_b64e(digest)}"
    raise ValueError(f"unknown hash algorithm {algorithm!r}")


def _bcrypt_input(raw: bytes) -> bytes:
    if len(raw) <= 72:
        return raw
    return base64.b64encode(hashlib.sha256(raw).digest())


def _scrypt(raw, salt, log_n, r, p, dklen):
    n = 1 << log_n
    return hashlib.scrypt(raw, salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=128 * n * r * p + 2**20)


def algorithm_of(stored: str) -> str | None:
    if stored.startswith("$argon2id$"):
        return "argon2id"
    if stored.startswith(("$2a$", "$2b$", "$2y$", "$2x$")):
        return "bcrypt"
    if stored.startswith("$scrypt$"):
        return "scrypt"
    if stored.startswith("$pbkdf2-sha256$"):
        return "pbkdf2"
    return None


def needs_rehash(stored: str, algorithm: str) -> bool:
    """True when a verified hash should be replaced by one of the current algorithm."""
    current = algorithm_of(stored)
    if current != algorithm:
        return True
    if algorithm == "argon2id":
        return ARGON2.check_needs_rehash(stored)
    return False


# --- verification ---------------------------------------------------------------------------
def verify_secret(secret: str | bytes, stored: str) -> bool:
    """Constant-time check of `secret` against a stored hash. Raises UnknownHashFormat."""
    raw = _as_bytes(secret)
    if not stored:
        return False
    if stored.startswith("$argon2"):
        try:
            return ARGON2.verify(stored, raw)
        except argon2.exceptions.VerificationError:
            return False
        except argon2.exceptions.InvalidHashError:
            raise UnknownHashFormat("malformed argon2 hash") from None
    if stored.startswith("$2"):
        try:
            return _bcrypt.checkpw(_bcrypt_input(raw), stored.encode())
        except ValueError:
            raise UnknownHashFormat("malformed bcrypt hash") from None
    if stored.startswith("$scrypt$"):
        params, salt, digest = _phc(stored, "scrypt")
        got = _scrypt(raw, salt, int(params["ln"]), int(params["r"]), int(params["p"]), len(digest))
        return hmac.compare_digest(got, digest)
    if stored.startswith("$pbkdf2"):
        scheme = stored.split("$")[1]
        name = {"pbkdf2-sha256": "sha256", "pbkdf2-sha512": "sha512", "pbkdf2": "sha1"}.get(scheme)
        if not name:
            raise UnknownHashFormat(f"unsupported scheme {scheme}")
        params, salt, digest = _phc(stored, scheme)
        got = hashlib.pbkdf2_hmac(name, raw, salt, int(params["i"]), len(digest))
        return hmac.compare_digest(got, digest)
    handler = _crypt_handler(stored)
    if handler is not None:
        return _verify_crypt(handler, raw, stored)
    if stored.startswith("{"):
        return _verify_ldap(raw, stored)
    if stored.startswith("$"):
        raise UnknownHashFormat("unsupported hash scheme")
    # A plain value (from an imported directory) compares as plain text.
    return hmac.compare_digest(raw, stored.encode("utf-8"))


# The crypt(3) family, by the prefix the reference dispatches on (spec auth §2.2). libpass (the
# maintained fork of passlib) implements them; the stdlib crypt module is gone from Python 3.13.
_CRYPT_PREFIXES = (("$6$", sha512_crypt), ("$5$", sha256_crypt), ("$sha1$", sha1_crypt), ("$1$", md5_crypt),
                   ("_", bsdi_crypt))


def _crypt_handler(stored: str):
    for prefix, handler in _CRYPT_PREFIXES:
        if stored.startswith(prefix):
            return handler
    return None


def _verify_crypt(handler, raw: bytes, stored: str) -> bool:
    try:
        # The handlers compare their checksums in constant time.
        return handler.verify(raw, stored)
    except (ValueError, TypeError):
        raise UnknownHashFormat(f"malformed {handler.name} hash") from None


def _crypt_payload_handler(value: str):
    """The verifier of a {CRYPT} payload: a $-prefixed or _ crypt, else a traditional
    13-character DES crypt; None for a $-scheme we do not know. The one place {CRYPT} is parsed,
    for verifying and for recognising a pre-hashed value alike."""
    if value.startswith("$2"):
        return _bcrypt
    handler = _crypt_handler(value)
    if handler is None and value.startswith("$"):
        return None
    return handler or des_crypt


def _verify_unix_crypt(raw: bytes, value: str) -> bool:
    handler = _crypt_payload_handler(value)
    if handler is None:
        raise UnknownHashFormat("unsupported crypt scheme")
    if handler is _bcrypt:
        try:
            return _bcrypt.checkpw(_bcrypt_input(raw), value.encode())
        except ValueError:
            raise UnknownHashFormat("malformed bcrypt hash") from None
    return _verify_crypt(handler, raw, value)


def _phc(stored: str, scheme: str):
    parts = stored.split("$")
    # ['', scheme, params, salt, hash]
    if len(parts) != 5 or parts[1] != scheme:
        raise UnknownHashFormat(f"malformed {scheme} hash")
    try:
        params = dict(item.split("=", 1) for item in parts[2].split(","))
        return params, _b64d(parts[3]), _b64d(parts[4])
    except ValueError:
        raise UnknownHashFormat(f"malformed {scheme} hash") from None


_LDAP_DIGESTS = {"SHA": "sha1", "SHA256": "sha256", "SHA512": "sha512", "MD5": "md5"}


def _verify_ldap(raw: bytes, stored: str) -> bool:
    m = re.match(r"^\{([A-Za-z0-9-]+)\}(.*)$", stored, re.S)
    if not m:
        raise UnknownHashFormat("malformed {SCHEME} value")
    scheme, rest = m.group(1).upper(), m.group(2)
    if scheme in ("PLAIN", "CLEAR"):
        return hmac.compare_digest(raw, rest.encode("utf-8"))
    if scheme in ("ARGON2", "ARGON2I", "ARGON2ID", "PBKDF2"):
        return verify_secret(raw, rest)
    if scheme == "CRYPT":
        return _verify_unix_crypt(raw, rest)
    salted = scheme.startswith("S") and scheme[1:] in _LDAP_DIGESTS
    name = _LDAP_DIGESTS.get(scheme[1:] if salted else scheme)
    if not name:
        raise UnknownHashFormat(f"unsupported scheme {scheme}")
    try:
        blob = base64.b64decode(rest, validate=True)
    except ValueError:
        raise UnknownHashFormat(f"malformed {scheme} value") from None
    size = hashlib.new(name).digest_size
    digest, salt = blob[:size], blob[size:]
    if (salted and not salt) or len(digest) != size:
        raise UnknownHashFormat(f"malformed {scheme} value")
    return hmac.compare_digest(hashlib.new(name, raw + salt).digest(), digest)


# --- recognising pre-hashed values (migration path for administrators) --------------------
_PHC_RE = re.compile(r"^\$(argon2(id|i|d)|scrypt|pbkdf2(-sha256|-sha512)?)\$[^$]+(\$[^$]+)?\$[A-Za-z0-9+/.]+\$[A-Za-z0-9+/.]+$")
_BCRYPT_RE = re.compile(r"^\$2[abxy]\$\d{2}\$[./A-Za-z0-9]{53}$")


def is_password_hash(value: str) -> bool:
    """True for a complete hash string of a scheme we verify (stored as-is, policy skipped)."""
    if _BCRYPT_RE.match(value):
        return True
    if _PHC_RE.match(value):
        try:
            verify_secret(b"", value)
        except UnknownHashFormat:
            return False
        return True
    # Only $… and {…} values count (spec auth §2.3): a bare BSDi `_…` is indistinguishable from a
    # 20-character password, which must go through the policy and be hashed.
    handler = _crypt_handler(value) if value.startswith("$") else None
    if handler is not None:
        return _well_formed_crypt(handler, value)
    m = re.match(r"^\{CRYPT\}(.+)$", value, re.I | re.S)
    if m:
        inner = m.group(1)
        handler = _crypt_payload_handler(inner)
        if handler is _bcrypt:
            return bool(_BCRYPT_RE.match(inner))
        return handler is not None and _well_formed_crypt(handler, inner)
    m = re.match(r"^\{(S?(SHA|SHA256|SHA512|MD5))\}(.+)$", value, re.I)
    if m:
        try:
            return _verify_ldap(b"", value) in (True, False)
        except UnknownHashFormat:
            return False
    return False


def _well_formed_crypt(handler, value: str) -> bool:
    # identify() checks the prefix only; parsing checks the salt and checksum lengths.
    try:
        parsed = handler.from_string(value)
    except (ValueError, TypeError):
        return False
    # A salt without its checksum is a configuration string, not a hash.
    return bool(parsed.checksum) and value == value.strip()


# A hash verified when the login name is unknown, so that a miss costs what a hit costs.
_DUMMY: dict[str, str] = {}


def dummy_verify(secret: str | bytes, algorithm: str) -> None:
    stored = _DUMMY.get(algorithm)
    if stored is None:
        stored = _DUMMY[algorithm] = hash_secret(secrets.token_hex(16), algorithm)
    verify_secret(secret, stored)
