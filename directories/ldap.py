"""The LDAP directory (OpenLDAP, Active Directory, any RFC 4511 server), on ldap3.

Two modes, as the reference's `bindAuthentication`:

- bind mode (true): the entry is found with `filterLogin` on a connection bound as `bindDn`
  (or anonymous), then the connection binds as that entry's DN with the user's password. The
  server itself proves the password, so the principal comes back `verified=True`;
- hash mode (false): the entry's `attrSecret` is read and returned as `secret_hash` for the
  caller to verify with the server's own hash verifiers.

Filters are templates: `?` (and `{user}`, `{username}`, `{email}`) stands for the login,
`{local}` for its local part and `{domain}` for its domain, as in the reference. Every value put
into a filter is escaped per RFC 4515, so a login can never add filter syntax.

Connections come from a pool of at most `poolMaxConnections`, shared by the worker's threads.
User binds happen on pooled connections too (the next borrower binds back as `bindDn`), so the
limit holds for everything this backend opens.
"""
from __future__ import annotations

import collections
import logging
import math
import select
import ssl
import threading
from contextlib import contextmanager

import ldap3
from ldap3.core import exceptions as lx

from .base import DirectoryError, DirectoryUnavailable, ExternalPrincipal, LdapConfig
from .filters import escape_filter_value, render_filter, validate_filter

log = logging.getLogger(__name__)

# Failures of the conversation itself: the connection is dropped, the directory is unavailable.
_TRANSPORT_ERRORS = (lx.LDAPCommunicationError, lx.LDAPStartTLSError, lx.LDAPSSLConfigurationError,
                     lx.LDAPCertificateError,
                     lx.LDAPSessionTerminatedByServerError, lx.LDAPResponseTimeoutError,
                     ssl.SSLError, OSError)

# RFC 4511 result codes that mean "not now" rather than "no": busy, unavailable, unwilling.
_TEMPORARY_RESULTS = {3, 51, 52, 80}
_INVALID_CREDENTIALS = 49
# memberOf DNs resolved per search: bounded so that one filter stays small whatever the number
# of groups an entry is in.
MEMBER_OF_BATCH = 50


# --- connections ----------------------------------------------------------------------------

class _Connection:
    """One pooled ldap3 connection and the identity it is bound as now."""

    __slots__ = ("conn", "bound_as")

    def __init__(self, conn: ldap3.Connection):
        self.conn = conn
        self.bound_as: object = None  # the bind DN (or "" anonymous) when bound as the service

    def alive(self) -> bool:
        """An idle connection that became readable was closed by the server (restart, idle
        timeout) or got a notice of disconnection: either way it cannot be used."""
        sock = getattr(self.conn, "socket", None)
        if self.conn.closed or sock is None:
            return False
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def close(self) -> None:
        try:
            self.conn.unbind()
        except Exception:  # noqa: BLE001  (a dead socket cannot be unbound politely)
            pass


class _Pool:
    """At most `size` connections in total, idle ones kept for reuse (most recent first)."""

    def __init__(self, size: int, wait: float):
        self._slots = threading.BoundedSemaphore(max(1, size))
        self._wait = wait
        self._idle: collections.deque[_Connection] = collections.deque()
        self._lock = threading.Lock()
        self.closed = False

    @contextmanager
    def slot(self):
        if not self._slots.acquire(timeout=self._wait):
            raise DirectoryUnavailable("LDAP connection pool exhausted")
        try:
            yield
        finally:
            self._slots.release()

    def take(self) -> _Connection | None:
        """A live idle connection, or None; dead ones found on the way are dropped."""
        while True:
            with self._lock:
                if not self._idle:
                    return None
                conn = self._idle.pop()
            if conn.alive():
                return conn
            conn.close()

    def give_back(self, conn: _Connection) -> None:
        if self.closed:
            conn.close()
            return
        with self._lock:
            self._idle.append(conn)

    def close(self) -> None:
        self.closed = True
        with self._lock:
            idle, self._idle = list(self._idle), collections.deque()
        for conn in idle:
            conn.close()


def _seconds(delta) -> float:
    return max(0.001, delta.total_seconds())


class LdapDirectory:
    def __init__(self, config: LdapConfig):
        self.config = config
        url = config.url.strip()
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        if scheme not in ("ldap", "ldaps"):
            raise DirectoryError("the LDAP URL must start with ldap:// or ldaps://")
        tls = ldap3.Tls(validate=ssl.CERT_NONE if config.allow_invalid_certs else ssl.CERT_REQUIRED,
                        version=ssl.PROTOCOL_TLS_CLIENT)
        self._server_args = dict(host=url, use_ssl=scheme == "ldaps", tls=tls, get_info=ldap3.NONE,
                                 connect_timeout=_seconds(min(config.timeout, config.pool_timeout_create)))
        try:
            self._new_server()
        except lx.LDAPException as exc:
            raise DirectoryError(f"bad LDAP URL: {exc}") from None
        self._pool = _Pool(config.pool_max_connections, _seconds(config.pool_timeout_wait))
        self._service_dn = config.bind_dn or ""
        attrs = []
        for group in (config.attr_class, config.attr_description, config.attr_email,
                      config.attr_email_alias, config.attr_member_of, config.attr_secret_changed,
                      () if config.bind_authentication else config.attr_secret):
            attrs.extend(a for a in group if a and a not in attrs)
        self._attributes = attrs or ["1.1"]  # "1.1": no attributes, only the DN

    # The Backend protocol.

    def authenticate(self, login: str, secret: str) -> ExternalPrincipal | None:
        if not secret:
            # An empty password is an unauthenticated bind (RFC 4513 §5.1.2), which a server
            # may answer with success: never a login.
            return None
        return self._run(lambda conn: self._login(conn, login, secret))

    def lookup(self, login: str) -> ExternalPrincipal | None:
        return self._run(lambda conn: self._login(conn, login, None))

    def lookup_mailbox(self, address: str) -> ExternalPrincipal | None:
        """The user or group that receives mail for `address` (primary or alias), by
        `filterMailbox`. Beyond the Backend protocol: only LDAP has such a filter."""
        return self._run(lambda conn: self._login(conn, address, None, self.config.filter_mailbox))

    def authenticate_bearer(self, token: str) -> ExternalPrincipal | None:
        return None

    def close(self) -> None:
        self._pool.close()

    # Connections.

    def _new_server(self) -> ldap3.Server:
        # One per connection: an ldap3 Server remembers a failed address as unavailable for a
        # while, which would keep the directory "down" for seconds after it came back.
        return ldap3.Server(**self._server_args)

    def _connect(self) -> _Connection:
        server = self._new_server()
        timeout = _seconds(self.config.timeout)
        # ldap3 packs its receive timeout into SO_RCVTIMEO as whole seconds; the exact value
        # is set on the socket right after.
        conn = ldap3.Connection(server, client_strategy=ldap3.SYNC, read_only=True,
                                receive_timeout=max(1, math.ceil(timeout)),
                                raise_exceptions=False, auto_bind=ldap3.AUTO_BIND_NONE,
                                # A referral would send the bind DN's secret to another server
                                # and open connections outside the pool.
                                auto_referrals=False)
        pooled = _Connection(conn)
        try:
            conn.open()
            conn.socket.settimeout(timeout)
            if self.config.use_tls and not server.ssl and not conn.start_tls():
                raise DirectoryUnavailable("StartTLS refused by the LDAP server")
        except BaseException:
            pooled.close()
            raise
        return pooled

    def _bind(self, pooled: _Connection, dn: str, password: str | None) -> bool:
        conn = pooled.conn
        if dn:
            conn.authentication, conn.user, conn.password = ldap3.SIMPLE, dn, password
        else:
            conn.authentication, conn.user, conn.password = ldap3.ANONYMOUS, None, None
        pooled.bound_as = None
        try:
            ok = conn.bind()
        except lx.LDAPPasswordIsMandatoryError:
            return False
        finally:
            conn.password = None  # not kept in memory longer than the bind
        if not ok:
            code = (conn.result or {}).get("result")
            if code in _TEMPORARY_RESULTS:
                raise DirectoryUnavailable(f"LDAP bind answered {conn.result.get('description')}")
            if code is None:
                raise lx.LDAPCommunicationError(conn.last_error or "bind failed")
        return ok

    def _as_service(self, pooled: _Connection) -> None:
        if pooled.bound_as == self._service_dn:
            return
        password = self.config.bind_secret.resolve() if self._service_dn else None
        if not self._bind(pooled, self._service_dn, password):
            raise DirectoryError("the LDAP server refused the bind DN and its secret")
        pooled.bound_as = self._service_dn

    def _run(self, work):
        """`work(connection)` on a pooled connection bound as the service. A connection that
        fails mid-conversation is dropped; when it was a reused one (the server may have
        restarted since), the work is tried once more on a new connection."""
        with self._pool.slot():
            pooled = self._pool.take()
            reused = pooled is not None
            while True:
                try:
                    if pooled is None:
                        pooled = self._connect()
                    self._as_service(pooled)
                    result = work(pooled)
                except _TRANSPORT_ERRORS as exc:
                    if pooled is not None:
                        pooled.close()
                    pooled = None
                    if reused:
                        log.info("a pooled LDAP connection was dropped (%s); reconnecting", exc)
                        reused = False
                        continue
                    raise DirectoryUnavailable(f"LDAP server unreachable: {exc}") from None
                except lx.LDAPException as exc:
                    # Anything else ldap3 raises (a filter it cannot encode, an answer it cannot
                    # decode) is the directory's or the configuration's fault, never a 5xx.
                    if pooled is not None:
                        pooled.close()
                    raise DirectoryError(f"LDAP error: {type(exc).__name__}: {exc}") from None
                except BaseException:
                    if pooled is not None:
                        self._pool.give_back(pooled)
                    raise
                self._pool.give_back(pooled)
                return result

    def _search(self, pooled: _Connection, base: str, search_filter: str, scope, attributes,
                size_limit: int = 0):
        conn = pooled.conn
        ok = conn.search(base, search_filter, search_scope=scope, attributes=attributes,
                         dereference_aliases=ldap3.DEREF_NEVER, size_limit=size_limit)
        code = (conn.result or {}).get("result")
        if code is None and not ok:
            raise lx.LDAPCommunicationError(conn.last_error or "search failed")
        if code in _TEMPORARY_RESULTS:
            raise DirectoryUnavailable(f"LDAP search answered {conn.result.get('description')}")
        if code == 32:  # noSuchObject: the base does not exist
            return []
        if code not in (0, 4):  # success, sizeLimitExceeded (partial results)
            raise DirectoryError(f"LDAP search failed: {conn.result.get('description')} "
                                 f"{conn.result.get('message') or ''}".strip())
        return [entry for entry in conn.response or () if entry.get("type") == "searchResEntry"]

    # The entry.

    def _login(self, pooled: _Connection, login: str, secret: str | None, template: str | None = None):
        config = self.config
        search_filter = render_filter(template or config.filter_login, login)
        try:
            # Two are enough to know the login is ambiguous.
            entries = self._search(pooled, config.base_dn, search_filter, ldap3.SUBTREE,
                                   self._attributes, size_limit=2)
        except lx.LDAPInvalidFilterError:
            raise DirectoryError("the filter is not a valid LDAP filter") from None
        if not entries:
            return None
        if len(entries) > 1:
            # Picking one would let whoever controls another matching entry log in as this one.
            raise DirectoryError("the filter matched more than one entry for one address")
        entry = entries[0]
        dn = entry["dn"]
        attributes = _values(entry)
        if secret is not None and config.bind_authentication:
            if not self._bind(pooled, dn, secret):
                return None
        groups = self._groups(pooled, dn, attributes)
        return self._principal(login, attributes, groups,
                               verified=secret is not None and config.bind_authentication,
                               with_hash=secret is not None)

    def _groups(self, pooled: _Connection, dn: str, attributes: dict) -> tuple[str, ...]:
        config = self.config
        names: list[str] = []
        member_of = [v for a in config.attr_member_of for v in attributes.get(a.lower(), ())]
        if member_of or config.filter_member_of:
            self._as_service(pooled)
        name_attrs = [a for a in config.attr_email if a] + ["cn"]
        resolved = self._names_of(pooled, [v for v in member_of if "=" in v], name_attrs)
        for value in member_of:
            name = resolved.get(value) if "=" in value else value
            if name:
                names.append(name)
        if config.filter_member_of:
            found = self._search(pooled, config.base_dn, render_filter(config.filter_member_of, dn),
                                 ldap3.SUBTREE, name_attrs)
            for group in found:
                name = _group_name(_values(group), config.attr_email)
                if name:
                    names.append(name)
        return tuple(dict.fromkeys(names))

    def _names_of(self, pooled: _Connection, dns: list[str], name_attrs: list[str]) -> dict[str, str]:
        """{group DN: its name} for the memberOf DNs. The DNs under the base DN are found with
        one subtree search per MEMBER_OF_BATCH of them, filtered on their first RDN's value, the
        answers kept only where the DN itself matches (another entry may share the RDN value);
        a DN outside the base DN, or one the server spells differently, costs a search of its
        own. Before, every group cost one search: a user in 200 groups, 201 searches a login."""
        out: dict[str, str] = {}
        base = _dn_key(self.config.base_dn) or ()
        batched: dict[tuple, str] = {}
        alone: list[str] = []
        for value in dict.fromkeys(dns):
            key = _dn_key(value)
            if key and len(key) > len(base) and key[len(key) - len(base):] == base:
                batched[key] = value
            else:
                alone.append(value)
        keys = list(batched)
        for start in range(0, len(keys), MEMBER_OF_BATCH):
            chunk = keys[start:start + MEMBER_OF_BATCH]
            terms = dict.fromkeys(f"({attr}={escape_filter_value(val)})" for attr, val in (k[0] for k in chunk))
            search_filter = next(iter(terms)) if len(terms) == 1 else f"(|{''.join(terms)})"
            for group in self._search(pooled, self.config.base_dn, search_filter, ldap3.SUBTREE, name_attrs):
                key = _dn_key(group.get("dn") or "")
                if key in batched:
                    name = _group_name(_values(group), self.config.attr_email)
                    out[batched.pop(key)] = name or ""
        alone.extend(batched.values())
        for value in alone:
            for group in self._search(pooled, value, "(objectClass=*)", ldap3.BASE, name_attrs):
                out[value] = _group_name(_values(group), self.config.attr_email) or ""
        return out

    def _principal(self, login, attributes, groups, verified, with_hash) -> ExternalPrincipal:
        config = self.config
        emails = tuple(dict.fromkeys(
            v.lower() for v in _each(attributes, (*config.attr_email, *config.attr_email_alias))))
        group_class = config.group_class.lower()
        classes = {v.lower() for v in _each(attributes, config.attr_class)}
        return ExternalPrincipal(
            name=emails[0] if emails else login.lower(),
            kind="group" if group_class and group_class in classes else "user",
            description=_first(attributes, config.attr_description) or "",
            emails=emails,
            groups=groups,
            secret_hash=(_first(attributes, config.attr_secret)
                         if with_hash and not config.bind_authentication else None),
            secret_marker=_first(attributes, config.attr_secret_changed),
            verified=verified,
        )


def _dn_key(dn: str) -> tuple[tuple[str, str], ...] | None:
    """A DN as comparable RDNs (RFC 4514: attribute names and values case-folded, escapes and
    spaces around separators undone), so that the server's spelling of a DN and a memberOf
    value's compare equal; None when it is not a DN. A multi-valued RDN keeps its first pair."""
    rdns: list[tuple[str, str]] = []
    for rdn in _split_unescaped(dn, ","):
        first = _split_unescaped(rdn, "+")[0]
        attr, sep, value = first.partition("=")
        if not sep or not attr.strip():
            return None
        rdns.append((attr.strip().lower(), _unescape_dn_value(value.strip()).lower()))
    return tuple(rdns) or None


def _split_unescaped(text: str, separator: str) -> list[str]:
    parts, current, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i:i + 2])
            i += 2
            continue
        if ch == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def _unescape_dn_value(value: str) -> str:
    raw, i = bytearray(), 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and _is_hex(value[i + 1:i + 3]):
            raw.append(int(value[i + 1:i + 3], 16))
            i += 3
        elif ch == "\\" and i + 1 < len(value):
            raw.extend(value[i + 1].encode())
            i += 2
        else:
            raw.extend(ch.encode())
            i += 1
    return raw.decode("utf-8", "replace")


def _is_hex(pair: str) -> bool:
    return len(pair) == 2 and all(c in "0123456789abcdefABCDEF" for c in pair)


def _values(entry) -> dict[str, list[str]]:
    """The entry's attributes, names lower-cased, values as text (a value that is not UTF-8,
    a binary attribute, is left out)."""
    out: dict[str, list[str]] = {}
    for name, values in (entry.get("raw_attributes") or {}).items():
        texts = []
        for value in values:
            try:
                texts.append(value.decode("utf-8") if isinstance(value, bytes) else str(value))
            except UnicodeDecodeError:
                continue
        out[name.split(";", 1)[0].lower()] = texts
    return out


def _each(attributes: dict, names) -> list[str]:
    """The non-empty values of the attributes `names`, in the order the settings list them."""
    return [v for name in names for v in attributes.get(name.lower(), ()) if v]


def _first(attributes: dict, names) -> str | None:
    return next(iter(_each(attributes, names)), None)


def _group_name(attributes: dict, attr_email) -> str | None:
    email = _first(attributes, attr_email)
    return email.lower() if email else _first(attributes, ("cn",))


__all__ = ["LdapDirectory", "validate_filter", "render_filter", "escape_filter_value"]
