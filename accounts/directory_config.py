"""A Directory row as the configuration its backend is built from (directories.base).

A minimal version for the login runtime; the registry face of Directory keeps its own complete
one under the same name.
"""
from __future__ import annotations

from directories.base import LdapConfig, OidcConfig, SecretRef, SqlConfig, SqlStore

from .models import Directory


def _secret(directory: Directory, prefix: str) -> SecretRef:
    kind = getattr(directory, f"{prefix}_kind") or "none"
    return SecretRef(kind=kind, value=getattr(directory, prefix) or "",
                     variable=getattr(directory, f"{prefix}_variable") or "",
                     path=getattr(directory, f"{prefix}_file") or "")


def config_of(directory: Directory):
    d = directory
    if d.kind == Directory.Kind.SQL:
        store = SqlStore(
            kind=d.sql_store, host=d.sql_host, port=d.sql_port, database=d.sql_database,
            auth_username=d.sql_auth_username, auth_secret=_secret(d, "sql_auth_secret"), options=d.sql_options,
            path=d.sql_path, timeout=d.sql_timeout, use_tls=d.sql_use_tls,
            allow_invalid_certs=d.sql_allow_invalid_certs, pool_max_connections=d.sql_pool_max_connections)
        return SqlConfig(
            store=store, column_email=d.column_email, column_secret=d.column_secret, column_class=d.column_class or None,
            column_description=d.column_description or None, query_login=d.query_login,
            query_recipient=d.query_recipient, query_member_of=d.query_member_of or None,
            query_email_aliases=d.query_email_aliases or None)
    if d.kind == Directory.Kind.OIDC:
        return OidcConfig(
            issuer_url=d.issuer_url, require_audience=d.require_audience or None,
            require_scopes=tuple(d.require_scopes or ()), claim_username=d.claim_username,
            username_domain=d.username_domain or None, claim_name=d.claim_name or None,
            claim_groups=d.claim_groups or None)
    return LdapConfig(
        url=d.url, timeout=d.timeout, allow_invalid_certs=d.allow_invalid_certs, use_tls=d.use_tls,
        base_dn=d.base_dn, bind_dn=d.bind_dn or None, bind_secret=_secret(d, "bind_secret"),
        bind_authentication=d.bind_authentication, filter_login=d.filter_login, filter_mailbox=d.filter_mailbox,
        filter_member_of=d.filter_member_of or None, attr_class=tuple(d.attr_class),
        attr_description=tuple(d.attr_description), attr_email=tuple(d.attr_email),
        attr_email_alias=tuple(d.attr_email_alias), attr_member_of=tuple(d.attr_member_of),
        attr_secret=tuple(d.attr_secret), attr_secret_changed=tuple(d.attr_secret_changed),
        group_class=d.group_class, pool_max_connections=d.pool_max_connections,
        pool_timeout_create=d.pool_timeout_create, pool_timeout_recycle=d.pool_timeout_recycle,
        pool_timeout_wait=d.pool_timeout_wait)
