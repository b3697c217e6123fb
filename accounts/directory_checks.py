"""What a Directory must hold to be usable, checked when it is set (Directory.clean()), so that
the admin page, JMAP and manage.py refuse the same mistakes with the property named, instead of
the first login finding them.

Only the fields of the directory's own variant are checked: the others stay at their defaults
(registry.services resets them when the variant changes).
"""
from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

from directories import filters

from .validators import domain_name_validator

MAX_TIMEOUT = timedelta(hours=1)
# An LDAP attribute description (RFC 4512): a descriptor or a numeric OID, with ;options.
_ATTRIBUTE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)(?:;[A-Za-z0-9-]+)*\Z")
# A column name as a query returns it (letters, digits, _, $; optionally table-qualified).
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(?:\.[A-Za-z_][A-Za-z0-9_$]*)?\Z")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_PLACEHOLDER = re.compile(r"\$([0-9]+)")
_CLAIM = re.compile(r"^[^\s\x00-\x1f\x7f]+\Z")
_HOST = re.compile(r"^(?=.{1,253}\Z)(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.)*"
                   r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.?\Z")


class _Errors(dict):
    def add(self, field: str, message: str, code: str = "invalid_directory") -> None:
        self.setdefault(field, []).append(ValidationError(message, code=code))

    def require(self, obj, field: str, what: str) -> bool:
        value = getattr(obj, field)
        if value is None or (isinstance(value, str) and not value.strip()):
            self.add(field, f"{what} is required.", code="required")
            return False
        return True


def check(directory) -> None:
    errors = _Errors()
    kind = directory.kind
    if kind == "ldap":
        _ldap(directory, errors)
    elif kind == "sql":
        _sql(directory, errors)
    elif kind == "oidc":
        _oidc(directory, errors)
    if errors:
        raise ValidationError(errors)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _duration(errors, obj, field: str, what: str, nullable: bool = False) -> None:
    value = getattr(obj, field)
    if value is None:
        if not nullable:
            errors.add(field, f"{what} is required.", code="required")
        return
    if value <= timedelta(0) or value > MAX_TIMEOUT:
        errors.add(field, f"{what} must be more than 0 and at most one hour.", code="out_of_range")


def _secret(errors, obj, prefix: str, what: str) -> None:
    kind = getattr(obj, f"{prefix}_kind")
    if kind == "value" and not getattr(obj, prefix):
        errors.add(prefix, f"Give the {what} (**** stands for a stored one, and none is stored).")
    elif kind == "env" and not _ENV_NAME.match(getattr(obj, f"{prefix}_variable") or ""):
        errors.add(f"{prefix}_variable", f"Name the environment variable holding the {what} (letters, digits, _).")
    elif kind == "file" and not (getattr(obj, f"{prefix}_file") or "").strip():
        errors.add(f"{prefix}_file", f"Give the path of the file holding the {what}.")


def _filter(errors, obj, field: str, what: str, nullable: bool = False) -> None:
    value = getattr(obj, field)
    if value is None and nullable:
        return
    if not (value or "").strip():
        if nullable:
            errors.add(field, f"{what} may be empty (null) but not blank.")
        else:
            errors.add(field, f"{what} is required.", code="required")
        return
    problem = filters.validate_filter(value)
    if problem:
        errors.add(field, f"{what}: {problem}.")


def _attributes(errors, obj, field: str, what: str, required: bool = True) -> None:
    names = getattr(obj, field) or []
    if required and not names:
        errors.add(field, f"{what}: give at least one attribute.", code="required")
    bad = [n for n in names if not isinstance(n, str) or not _ATTRIBUTE.match(n)]
    if bad:
        errors.add(field, f"{what}: {bad[0]!r} is not an LDAP attribute name.")


def _ldap(obj, errors) -> None:
    url = obj.url or ""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme.lower() not in ("ldap", "ldaps") or not parts.hostname or port == -1:
        errors.add("url", "The URL must be ldap://host[:port] or ldaps://host[:port].")
    elif parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or parts.password:
        errors.add("url", "The URL names the server only: no path, query or credentials.")
    errors.require(obj, "base_dn", "The base DN")
    if obj.bind_dn is not None and not obj.bind_dn.strip():
        errors.add("bind_dn", "The bind DN may be empty (null, an anonymous bind) but not blank.")
    _secret(errors, obj, "bind_secret", "bind password")
    _filter(errors, obj, "filter_login", "The login filter")
    _filter(errors, obj, "filter_mailbox", "The mailbox filter")
    _filter(errors, obj, "filter_member_of", "The member-of filter", nullable=True)
    for field, what, required in (("attr_class", "Class attributes", True),
                                  ("attr_description", "Description attributes", False),
                                  ("attr_email", "E-mail attributes", True),
                                  ("attr_email_alias", "Alias attributes", False),
                                  ("attr_member_of", "Member-of attributes", False),
                                  ("attr_secret", "Secret attributes", not obj.bind_authentication),
                                  ("attr_secret_changed", "Secret-changed attributes", False)):
        _attributes(errors, obj, field, what, required)
    if errors.require(obj, "group_class", "The group class") and not _ATTRIBUTE.match(obj.group_class):
        errors.add("group_class", "The group class is not an LDAP object class name.")
    _duration(errors, obj, "timeout", "The timeout")
    for field in ("pool_timeout_create", "pool_timeout_recycle", "pool_timeout_wait"):
        _duration(errors, obj, field, "The pool timeout")


def _query(errors, obj, field: str, what: str, nullable: bool = False) -> None:
    value = getattr(obj, field)
    if value is None and nullable:
        return
    text = (value or "").strip()
    if not text:
        if nullable:
            errors.add(field, f"{what} may be empty (null) but not blank.")
        else:
            errors.add(field, f"{what} is required.", code="required")
        return
    numbers = {int(n) for n in _PLACEHOLDER.findall(text)}
    if 1 not in numbers:
        errors.add(field, f"{what} must use $1 for the address looked up.")
    elif numbers - {1}:
        errors.add(field, f"{what} may use $1 only (it is given one value); ${max(numbers - {1})} has no value.")
    if ";" in text.rstrip(";").rstrip():
        errors.add(field, f"{what} must be one statement (no ;).")
    if not re.match(r"(?i)^(select|with)\b", text):
        errors.add(field, f"{what} must be a SELECT.")


def _sql(obj, errors) -> None:
    store = obj.sql_store
    if store in ("postgresql", "mysql"):
        if errors.require(obj, "sql_host", "The database host") and not _HOST.match(obj.sql_host):
            errors.add("sql_host", "The database host is not a host name.")
        errors.require(obj, "sql_database", "The database name")
        if obj.sql_auth_username is not None and not obj.sql_auth_username.strip():
            errors.add("sql_auth_username", "The user name may be empty (null) but not blank.")
        _secret(errors, obj, "sql_auth_secret", "database password")
        _duration(errors, obj, "sql_timeout", "The timeout", nullable=True)
    elif store == "sqlite":
        errors.require(obj, "sql_path", "The path of the SQLite database")
    for field, what in (("column_email", "The e-mail column"), ("column_secret", "The secret column")):
        if errors.require(obj, field, what) and not _COLUMN.match(getattr(obj, field)):
            errors.add(field, f"{what} is not a column name.")
    for field, what in (("column_class", "The class column"), ("column_description", "The description column")):
        value = getattr(obj, field)
        if value is not None and not _COLUMN.match(value):
            errors.add(field, f"{what} is not a column name (use null for none).")
    _query(errors, obj, "query_login", "The login query")
    _query(errors, obj, "query_recipient", "The recipient query")
    _query(errors, obj, "query_member_of", "The member-of query", nullable=True)
    _query(errors, obj, "query_email_aliases", "The aliases query", nullable=True)


def _oidc(obj, errors) -> None:
    if errors.require(obj, "issuer_url", "The issuer URL"):
        parts = urlsplit(obj.issuer_url.strip())
        host = parts.hostname or ""
        try:
            parts.port
            port_ok = True
        except ValueError:
            port_ok = False
        if not host or not port_ok or parts.query or parts.fragment or parts.username or parts.password:
            errors.add("issuer_url", "The issuer URL must be an absolute https:// URL without query or credentials.")
        elif parts.scheme != "https" and not (parts.scheme == "http" and _is_loopback(host)):
            errors.add("issuer_url", "The issuer URL must use https (http only for a provider on this machine).")
    if obj.require_audience is not None and not obj.require_audience.strip():
        errors.add("require_audience", "The audience may be empty (null, no check) but not blank.")
    bad = [s for s in obj.require_scopes or [] if not isinstance(s, str) or not _CLAIM.match(s)]
    if bad:
        errors.add("require_scopes", f"{bad[0]!r} is not a scope name.")
    if errors.require(obj, "claim_username", "The username claim") and not _CLAIM.match(obj.claim_username):
        errors.add("claim_username", "The username claim is not a claim name.")
    for field, what in (("claim_name", "The name claim"), ("claim_groups", "The groups claim")):
        value = getattr(obj, field)
        if value is not None and not _CLAIM.match(value):
            errors.add(field, f"{what} is not a claim name (use null for none).")
    if obj.username_domain is not None:
        try:
            domain_name_validator(obj.username_domain)
        except ValidationError:
            errors.add("username_domain", "The username domain is not a domain name.")
