"""The contract between the login pipeline and the directory backends.

A backend is built once per directory state from its configuration and is shared by the
threads of a worker (it owns its connection pool). Every method either answers or raises:

- `DirectoryUnavailable`: the directory could not be asked (connection refused, timeout, TLS
  failure, pool exhausted, provider's keys unreachable). A temporary failure: the caller answers
  503 / `temporarily_unavailable` and must not count it toward fail-to-ban.
- `DirectoryError`: the directory answered something unusable (a query returning the wrong
  columns, a malformed entry). Logged; the login fails without revealing why.

A wrong password or unknown login is not an exception: `authenticate` returns None.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol


class DirectoryUnavailable(Exception):
    """The directory cannot be reached right now."""


class DirectoryError(Exception):
    """The directory answered, but not in a way the configuration allows us to use."""


@dataclass(frozen=True)
class ExternalPrincipal:
    """One entry of an external directory, as the server will mirror it.

    `name` is the login address (lower-case, with its domain). `secret_hash` is the stored hash
    the directory gave us (SQL, LDAP hash mode), to be verified by the caller with the server's
    hash verifiers when `verified` is False. `secret_marker` is an opaque value that changes
    when the directory password changes (LDAP bind mode: the `attrSecretChanged` value), so that
    OAuth tokens issued before the change stop working.
    """

    name: str
    kind: str = "user"  # "user" or "group"
    description: str = ""
    emails: tuple[str, ...] = ()  # primary first, then aliases
    groups: tuple[str, ...] = ()  # group names (addresses or plain names) the entry is member of
    secret_hash: str | None = None
    secret_marker: str | None = None
    verified: bool = False  # True when the backend itself proved the secret (LDAP bind, OIDC token)


@dataclass(frozen=True)
class SecretRef:
    """The reference's SecretKeyOptional: None, a value, an environment variable or a file."""

    kind: str = "none"  # none | value | env | file
    value: str = ""
    variable: str = ""
    path: str = ""

    def resolve(self) -> str | None:
        """The secret itself, read now (so that a rotated file or variable is picked up)."""
        if self.kind == "value":
            return self.value
        if self.kind == "env":
            value = os.environ.get(self.variable)
            if value is None:
                raise DirectoryError(f"environment variable {self.variable} is not set")
            return value
        if self.kind == "file":
            try:
                with open(self.path, encoding="utf-8") as fh:
                    return fh.read().strip()
            except OSError as exc:
                raise DirectoryError(f"cannot read the secret file: {exc.strerror}") from None
        return None


@dataclass(frozen=True)
class LdapConfig:
    url: str = "ldap://localhost:389"
    timeout: timedelta = timedelta(seconds=30)
    allow_invalid_certs: bool = False
    use_tls: bool = False
    base_dn: str = ""
    bind_dn: str | None = None
    bind_secret: SecretRef = field(default_factory=SecretRef)
    bind_authentication: bool = True
    filter_login: str = "(&(objectClass=inetOrgPerson)(mail=?))"
    filter_mailbox: str = ("(|(&(objectClass=inetOrgPerson)(|(mail=?)(mailAlias=?)))"
                           "(&(objectClass=groupOfNames)(|(mail=?)(mailAlias=?))))")
    filter_member_of: str | None = "(&(objectClass=groupOfNames)(member=?))"
    attr_class: tuple[str, ...] = ("objectClass",)
    attr_description: tuple[str, ...] = ("description",)
    attr_email: tuple[str, ...] = ("mail",)
    attr_email_alias: tuple[str, ...] = ("mailAlias",)
    attr_member_of: tuple[str, ...] = ("memberOf",)
    attr_secret: tuple[str, ...] = ("userPassword",)
    attr_secret_changed: tuple[str, ...] = ("pwdChangeTime",)
    group_class: str = "groupOfNames"
    pool_max_connections: int = 10
    pool_timeout_create: timedelta = timedelta(seconds=30)
    pool_timeout_recycle: timedelta = timedelta(seconds=30)
    pool_timeout_wait: timedelta = timedelta(seconds=30)


@dataclass(frozen=True)
class SqlStore:
    """The reference's SqlAuthStore. kind: default (this server's own database) | postgresql |
    mysql | sqlite."""

    kind: str = "default"
    host: str = ""
    port: int | None = None
    database: str = "stalwart"
    auth_username: str | None = "stalwart"
    auth_secret: SecretRef = field(default_factory=SecretRef)
    options: str | None = None
    path: str = ""  # sqlite
    timeout: timedelta | None = timedelta(seconds=15)
    use_tls: bool = False
    allow_invalid_certs: bool = False
    pool_max_connections: int = 10


@dataclass(frozen=True)
class SqlConfig:
    store: SqlStore = field(default_factory=SqlStore)
    column_email: str = "name"
    column_secret: str = "secret"
    column_class: str | None = "type"
    column_description: str | None = "description"
    query_login: str = "SELECT name, secret, description, type FROM accounts WHERE name = $1"
    query_recipient: str = "SELECT name, secret, description, type FROM accounts WHERE name = $1 AND active = true"
    query_member_of: str | None = "SELECT member_of FROM group_members WHERE name = $1"
    query_email_aliases: str | None = "SELECT address FROM emails WHERE name = $1"


@dataclass(frozen=True)
class OidcConfig:
    issuer_url: str = ""
    require_audience: str | None = "stalwart"
    require_scopes: tuple[str, ...] = ("openid", "email")
    claim_username: str = "preferred_username"
    username_domain: str | None = None
    claim_name: str | None = "name"
    claim_groups: str | None = None


class Backend(Protocol):
    """What every backend offers. `login` is the full address, already lower-cased."""

    def authenticate(self, login: str, secret: str) -> ExternalPrincipal | None:
        """Check a password. LDAP bind mode binds as the entry; hash mode and SQL return the
        entry with `secret_hash` and `verified=False`, for the caller to verify."""

    def lookup(self, login: str) -> ExternalPrincipal | None:
        """The entry of a login address, without checking any secret (for `directory test`)."""

    def authenticate_bearer(self, token: str) -> ExternalPrincipal | None:
        """OIDC only: a verified token's principal; None when the token is not for us."""

    def close(self) -> None:
        """Release pooled connections (the configuration changed or the worker stops)."""



def build(config) -> Backend:
    """The backend for a configuration. Each backend module is imported only when a directory of
    its kind exists, so that a server without LDAP never loads the LDAP library."""
    module, cls = {LdapConfig: ("ldap", "LdapDirectory"), SqlConfig: ("sql", "SqlDirectory"),
                   OidcConfig: ("oidc", "OidcDirectory")}[type(config)]
    return getattr(importlib.import_module(f"directories.{module}"), cls)(config)
