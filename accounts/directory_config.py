"""A Directory row as the configuration its backend is built from (directories.base).

The row keeps every variant's columns; the config carries only its own variant's, with
durations as timedeltas, lists as tuples and each secret as a SecretRef holding the decrypted
value (or the variable / file to read it from at each connection).
"""
from __future__ import annotations

from directories.base import LdapConfig, OidcConfig, SecretRef, SqlConfig, SqlStore

from .models import Directory


def secret_ref(kind: str, value: str, variable: str, path: str) -> SecretRef:
    if kind == Directory.SecretKind.VALUE:
        return SecretRef(kind="value", value=value or "")
    if kind == Directory.SecretKind.ENVIRONMENT_VARIABLE:
        return SecretRef(kind="env", variable=variable or "")
    if kind == Directory.SecretKind.FILE:
        return SecretRef(kind="file", path=path or "")
    return SecretRef()


def _tuple(values) -> tuple[str, ...]:
    return tuple(values or ())


def config_of(directory: Directory) -> LdapConfig | SqlConfig | OidcConfig:
    d = directory
    if d.kind == Directory.Kind.LDAP:
        return LdapConfig(
            url=d.url, timeout=d.timeout, allow_invalid_certs=d.allow_invalid_certs, use_tls=d.use_tls,
            base_dn=d.base_dn, bind_dn=d.bind_dn or None,
            bind_secret=secret_ref(d.bind_secret_kind, d.bind_secret, d.bind_secret_variable, d.bind_secret_file),
            bind_authentication=d.bind_authentication, filter_login=d.filter_login, filter_mailbox=d.filter_mailbox,
            filter_member_of=d.filter_member_of or None, attr_class=_tuple(d.attr_class),
            attr_description=_tuple(d.attr_description), attr_email=_tuple(d.attr_email),
            attr_email_alias=_tuple(d.attr_email_alias), attr_member_of=_tuple(d.attr_member_of),
            attr_secret=_tuple(d.attr_secret), attr_secret_changed=_tuple(d.attr_secret_changed),
            group_class=d.group_class, pool_max_connections=d.pool_max_connections,
            pool_timeout_create=d.pool_timeout_create, pool_timeout_recycle=d.pool_timeout_recycle,
            pool_timeout_wait=d.pool_timeout_wait,
        )
    if d.kind == Directory.Kind.SQL:
        store = SqlStore(
            kind=d.sql_store, host=d.sql_host, port=d.sql_port or {"postgresql": 5432, "mysql": 3306}.get(d.sql_store),
            database=d.sql_database, auth_username=d.sql_auth_username,
            auth_secret=secret_ref(d.sql_auth_secret_kind, d.sql_auth_secret, d.sql_auth_secret_variable,
                                   d.sql_auth_secret_file),
            options=d.sql_options, path=d.sql_path, timeout=d.sql_timeout, use_tls=d.sql_use_tls,
            allow_invalid_certs=d.sql_allow_invalid_certs, pool_max_connections=d.sql_pool_max_connections,
        )
        return SqlConfig(
            store=store, column_email=d.column_email, column_secret=d.column_secret, column_class=d.column_class,
            column_description=d.column_description, query_login=d.query_login, query_recipient=d.query_recipient,
            query_member_of=d.query_member_of, query_email_aliases=d.query_email_aliases,
        )
    if d.kind == Directory.Kind.OIDC:
        return OidcConfig(
            issuer_url=d.issuer_url, require_audience=d.require_audience, require_scopes=_tuple(d.require_scopes),
            claim_username=d.claim_username, username_domain=d.username_domain, claim_name=d.claim_name,
            claim_groups=d.claim_groups,
        )
    raise ValueError(f"unknown directory kind {d.kind!r}")
