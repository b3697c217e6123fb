"""External directories at run time: which one is active, its backend, its outages, and the
local mirror of the accounts that log in through it.

The active directory is `Authentication.directoryId` (null: the internal directory). Its backend
(directories.base.build) is kept in the worker under the states of Authentication and Directory,
so that an edit of the directory or a switch to another one is seen by every worker on its next
login without a restart; the backend it replaces is closed (its pooled connections released).

A successful external login mirrors the entry into a local User account in one transaction
(spec auth §11): created with the default user roles and the tenant of its domain, then on
every login brought back in line with the directory (description, aliases, groups, the stored
hash). Nothing is written when nothing changed, so a login through a directory does not
invalidate the verdicts and permissions cached under the Account state.
"""
from __future__ import annotations

import hashlib
import logging
import threading

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from directories import base
from registry import context, ids, memo
from registry import services as registry

from . import hashing
from .credentials import _next_credential_id
from .directory_config import config_of
from .models import Account, Alias, Authentication, Credential, Directory, Domain, local_part_validator
from .signals import password_changed

log = logging.getLogger(__name__)

STATES = ("Authentication", "Directory")
# The edge reads these with its own states: every login asks which directory is active.
context.needs(*STATES)

ACTOR = "directory"


def active_directory() -> Directory | None:
    """The Directory row logins go to now, or None for the internal directory."""
    states = context.states(*STATES)
    auth = registry.current(Authentication, states)
    if auth.directory_id is None:
        return None
    return memo.get(("directory-row", auth.directory_id), states["Directory"],
                    lambda: Directory.objects.filter(pk=auth.directory_id).first())


# --- backends, one per worker per directory state -------------------------------------------
_backends: dict[int, tuple[int, object, object]] = {}
_lock = threading.Lock()


def backend_for(directory: Directory):
    """The backend of `directory` as it is configured now (built on first use, rebuilt and the
    old one closed when the Directory state moves)."""
    state = context.states("Directory")["Directory"]
    with _lock:
        entry = _backends.get(directory.pk)
        if entry is not None and entry[0] == state:
            return entry[2]
        config = config_of(directory)
        if entry is not None and entry[1] == config:
            # Another directory changed, not this one: keep its pool.
            _backends[directory.pk] = (state, config, entry[2])
            return entry[2]
        backend = base.build(config)
        _backends[directory.pk] = (state, config, backend)
    if entry is not None:
        _close(entry[2])
    return backend


def forget_backends() -> None:
    """Close every backend (the tests' set-up, a worker that stops)."""
    with _lock:
        entries = list(_backends.values())
        _backends.clear()
    for _, _, backend in entries:
        _close(backend)


def _close(backend) -> None:
    try:
        backend.close()
    except Exception:  # noqa: BLE001 - a backend failing to close must not fail a login
        log.exception("closing a directory backend failed")


# --- outages: logged once each, in every worker together --------------------------------------
def _outage_key(directory: Directory) -> str:
    return f"directory-outage:{directory.pk}"


def unavailable(directory: Directory, exc: Exception) -> None:
    """Note that `directory` could not be reached; the first report of an outage is logged."""
    if cache.add(_outage_key(directory), timezone.now().isoformat(), None):
        log.warning("directory %s (%s) is unavailable: %s", directory.pk, directory.description, exc)


def available(directory: Directory) -> None:
    """Note that `directory` answered; the end of an outage is logged once."""
    if cache.get(_outage_key(directory)) is not None and cache.delete(_outage_key(directory)):
        log.info("directory %s (%s) is available again", directory.pk, directory.description)


def call(directory: Directory, method: str, *args):
    """`backend.method(*args)` with the outage bookkeeping; raises DirectoryUnavailable and
    DirectoryError as the backend does."""
    backend = backend_for(directory)
    try:
        result = getattr(backend, method)(*args)
    except base.DirectoryUnavailable as exc:
        unavailable(directory, exc)
        raise
    available(directory)
    return result


# --- mirroring ------------------------------------------------------------------------------
class NotServed(Exception):
    """The entry's address is in no domain of this server."""


def marker(value: str | None) -> str:
    """The password credential of an entry the directory verified itself (LDAP bind, OIDC): not
    a hash anything verifies against, but a value that changes when the directory's password
    does, so that OAuth tokens granted before the change end (as for a new internal password)."""
    digest = hashlib.sha256((value or "").encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"$app${digest}$"


def split_address(address: str, default_domain: str) -> tuple[str, str]:
    address = address.strip().lower()
    if "@" not in address:
        address = f"{address}@{default_domain}"
    local, domain = address.rsplit("@", 1)
    return local, domain


def _valid_local(local: str) -> bool:
    try:
        local_part_validator(local)
    except Exception:  # noqa: BLE001 - ValidationError: the name cannot be an account here
        return False
    return 0 < len(local) <= 64


def mirror(directory: Directory, principal: base.ExternalPrincipal, default_domain: str) -> Account:
    """The local User account of `principal`, created or brought in line with it."""
    local, domain_name = split_address(principal.name, default_domain)
    domain = Domain.objects.filter(name=domain_name).first()
    if domain is None or not _valid_local(local):
        raise NotServed(principal.name)
    stored = marker(principal.secret_marker) if principal.verified else (principal.secret_hash or "")
    for attempt in range(3):
        try:
            with transaction.atomic():
                return _mirror(directory, principal, domain, local, stored)
        except IntegrityError:
            # Two first logins of one entry at once: the other created it; sync with its row.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _mirror(directory, principal, domain, local, stored) -> Account:
    account = (Account.objects.select_for_update().select_related("domain")
               .filter(name=local, domain=domain).first())
    changed: list[str] = []
    created = account is None
    if created:
        account = Account(name=local, domain=domain, kind=Account.Kind.USER, roles_mode=Account.RolesMode.USER,
                          description=principal.description[:255], tenant=domain.tenant, directory=directory)
        account.save()
        registry.audit_event(ACTOR, "Account", ids.encode(account.pk), "create", "name", None,
                             account.email_address)
    else:
        if account.kind != Account.Kind.USER:
            raise NotServed(principal.name)
        updates = {"directory_id": directory.pk, "description": principal.description[:255],
                   "tenant_id": domain.tenant_id}
        for field, value in updates.items():
            if getattr(account, field) != value:
                setattr(account, field, value)
                changed.append(field.removesuffix("_id"))
        if changed:
            account.save(update_fields=[*changed])
            registry.audit_event(ACTOR, "Account", ids.encode(account.pk), "update", ",".join(changed), None, None)
    changed += _sync_aliases(account, principal, domain)
    changed += _sync_groups(directory, account, principal, domain)
    password = _sync_password(account, stored)
    if created or changed or password:
        registry.touch("Account", ids.encode(account.pk), "created" if created else "updated",
                       tenant_id=account.tenant_id)
    if password:
        registry.bump_state("Credential")
        if not created:
            # Whatever was granted on the strength of the old directory password ends.
            password_changed.send(sender=Account, account=account)
    return account


def alias_plan(principal, local: str, domain_name: str) -> tuple[dict[tuple[str, str], Domain], list[str]]:
    """Which of the entry's further addresses become aliases of the account local@domain_name:
    those in a domain this server serves and not held by another account (as its address or an
    alias); the directory never takes an address over. Returns {(name, domain): Domain} and the
    addresses left out. One query per kind, whatever the number of addresses."""
    wanted: set[tuple[str, str]] = set()
    for email in principal.emails:
        if "@" not in email:
            continue
        name, alias_domain = email.strip().lower().rsplit("@", 1)
        if (name, alias_domain) != (local, domain_name) and _valid_local(name):
            wanted.add((name, alias_domain))
    domains = {d.name: d for d in Domain.objects.filter(name__in={d for _, d in wanted})}
    held = Q(pk__in=[])
    for name, alias_domain in wanted:
        held |= Q(name=name, domain__name=alias_domain)
    own = Q(name=local, domain__name=domain_name)
    taken = set(Account.objects.filter(held).exclude(own).values_list("name", "domain__name"))
    taken |= set(Alias.objects.filter(held).exclude(Q(account__name=local, account__domain__name=domain_name))
                 .values_list("name", "domain__name"))
    plan = {key: domains[key[1]] for key in wanted if key[1] in domains and key not in taken}
    skipped = sorted(f"{n}@{d}" for n, d in wanted if (n, d) not in plan)
    return plan, skipped


def _sync_aliases(account: Account, principal, domain) -> list[str]:
    plan, _ = alias_plan(principal, account.name, domain.name)
    current = {(a.name, a.domain.name): a for a in account.aliases.select_related("domain")}
    changed = False
    for key, alias in current.items():
        if key not in plan:
            alias.delete()
            changed = True
    for (name, _), target in sorted(plan.items()):
        if (name, target.name) not in current:
            Alias.objects.create(account=account, name=name, domain=target)
            changed = True
    return ["aliases"] if changed else []


def _sync_groups(directory, account: Account, principal, domain) -> list[str]:
    """Bring the account's memberships of mirrored groups in line with the entry's groups, in a
    constant number of queries whatever their number.

    Which groups a directory may put its people in: the entry's group names are whatever the
    directory says (an LDAP memberOf someone may edit, a provider's groups claim), so they only
    reach groups that an external directory mirrored itself (Account.directory set), in a
    domain of the account's own tenant. An internal group of the same name, made here by an
    administrator and perhaps holding roles or shared mail, is never joined that way, and a
    group is never created in another tenant's domain. Memberships of internal groups that an
    administrator gave the mirrored account are left as they are."""
    wanted: dict[tuple[str, str], None] = {}
    for name in principal.groups:
        # A bare group name is in the member's own domain.
        local, domain_name = split_address(name, domain.name)
        if _valid_local(local):
            wanted[(local, domain_name)] = None
    mirrored = account.member_groups.filter(directory__isnull=False)
    current = set(mirrored.values_list("pk", flat=True))
    groups: set[int] = set()
    if wanted:
        domains = {d.name: d for d in Domain.objects.filter(name__in={d for _, d in wanted})
                   if d.tenant_id == domain.tenant_id}
        wanted = {key: None for key in wanted if key[1] in domains}
        held = Q(pk__in=[])
        for local, domain_name in wanted:
            held |= Q(name=local, domain__name=domain_name)
        existing = {(a.name, a.domain.name): a for a in
                    Account.objects.filter(held).select_related("domain").only(
                        "pk", "name", "kind", "directory_id", "domain__name")}
        # An address that is some account's alias is that account's, never a new group's.
        aliased = set(Alias.objects.filter(held).values_list("name", "domain__name"))
        missing = [key for key in wanted if key not in existing and key not in aliased]
        if missing:
            created = _create_groups(directory, missing, domains)
            existing.update(created)
        for key in wanted:
            group = existing.get(key)
            if group is not None and group.kind == Account.Kind.GROUP and group.directory_id is not None:
                groups.add(group.pk)
            elif group is not None:
                log.info("directory %s names %s@%s as a group of %s: not a group an external directory "
                         "mirrored, left alone", directory.pk, key[0], key[1], account.email_address)
    if current == groups:
        return []
    through = Account.member_groups.through
    if current - groups:
        through.objects.filter(from_account=account, to_account__in=current - groups).delete()
    if groups - current:
        through.objects.bulk_create([through(from_account=account, to_account_id=pk) for pk in groups - current],
                                    ignore_conflicts=True)
    return ["memberGroups"]


def _create_groups(directory, keys, domains) -> dict[tuple[str, str], Account]:
    """The groups `keys` created as mirrors of `directory` (those another login created at the
    same moment are read back, not created twice): one insert, one read."""
    Account.objects.bulk_create(
        # bulk_create skips Account.save(), which would have set the address.
        [Account(name=local, domain=domains[domain_name], email_address=f"{local}@{domain_name}",
                 kind=Account.Kind.GROUP,
                 roles_mode=Account.RolesMode.DEFAULT, tenant=domains[domain_name].tenant, directory=directory)
         for local, domain_name in keys],
        ignore_conflicts=True)
    held = Q(pk__in=[])
    for local, domain_name in keys:
        held |= Q(name=local, domain__name=domain_name)
    made = {(a.name, a.domain.name): a for a in Account.objects.filter(held).select_related("domain")}
    fresh = [a for a in made.values() if a.directory_id == directory.pk and a.kind == Account.Kind.GROUP]
    if fresh:
        registry.audit_events(ACTOR, "Account", [(ids.encode(a.pk), "create", "name", None, a.email_address)
                                                 for a in fresh])
        registry.touch_many("Account", [(ids.encode(a.pk), a.tenant_id) for a in fresh], "created")
    return made


def _sync_password(account: Account, stored: str) -> bool:
    cred = account.credentials.filter(kind=Credential.Kind.PASSWORD).first()
    if cred is not None and cred.secret_hash == stored and not cred.otp_url:
        return False
    if cred is None:
        cred = Credential(account=account, kind=Credential.Kind.PASSWORD,
                          credential_id=_next_credential_id(account))
    cred.secret_hash = stored
    # The directory owns the password: no local expiry, no local second factor.
    cred.otp_url = ""
    cred.expires_at = None
    cred.secret_changed_at = timezone.now()
    cred.save()
    registry.audit_event(ACTOR, "Account", ids.encode(account.pk), "update", "password", "****", "****")
    return True


def preview(directory: Directory, principal: base.ExternalPrincipal, default_domain: str) -> dict:
    """What mirroring `principal` would make of it, without writing anything (directory test)."""
    local, domain_name = split_address(principal.name, default_domain)
    domain = Domain.objects.select_related("tenant").filter(name=domain_name).first()
    auth = Authentication.load()
    plan, skipped = alias_plan(principal, local, domain_name)
    aliases = sorted(f"{name}@{alias_domain}" for name, alias_domain in plan)
    existing = Account.objects.filter(name=local, domain__name=domain_name).first()
    return {
        "name": f"{local}@{domain_name}",
        "type": "Group" if principal.kind == "group" else "User",
        "description": principal.description,
        "aliases": aliases,
        "aliasesSkipped": skipped,
        "groups": list(principal.groups),
        "roles": [r.description for r in auth.default_user_roles.all()] if existing is None
        else ["(kept: the account exists)"],
        "tenant": domain.tenant.name if domain is not None and domain.tenant_id else None,
        "domainServed": domain is not None,
        "accountExists": existing is not None,
        "secret": "hash" if principal.secret_hash and not principal.verified else
        ("verified by the directory" if principal.verified else "none"),
    }


# --- operations: "directory test" ------------------------------------------------------------
class TestFailed(Exception):
    """The directory test did not reach a mapped account; the message says why."""


def test_login(directory: Directory, login: str, secret: str | None, default_domain: str) -> dict:
    """Ask `directory` (active or not) about `login`, check `secret` when given, and show the
    account a login would mirror, without creating or changing anything. A backend of its own,
    closed after: the test neither waits behind nor disturbs the logins' pool."""
    if directory.kind == Directory.Kind.OIDC:
        # The provider's tokens name people; there is no query to ask it about a login.
        raise TestFailed("An OpenID Connect directory cannot look people up or check passwords: it only "
                         "validates the bearer tokens its provider issues. Sign in with such a token to "
                         "create the account.")
    login = (login or "").strip().lower()
    if not login:
        raise TestFailed("A login name is required.")
    if "@" not in login:
        login = f"{login}@{default_domain}"
    backend = base.build(config_of(directory))
    try:
        if secret is None:
            principal = backend.lookup(login)
        else:
            principal = backend.authenticate(login, secret)
    except base.DirectoryUnavailable as exc:
        raise TestFailed(f"The directory is unavailable: {exc}") from None
    except base.DirectoryError as exc:
        raise TestFailed(f"The directory's answer cannot be used: {exc}") from None
    finally:
        _close(backend)
    if principal is None:
        raise TestFailed(f"No entry for {login}." if secret is None
                         else f"No entry for {login}, or the password is wrong.")
    out = preview(directory, principal, default_domain)
    if secret is not None:
        if principal.verified:
            out["authenticated"] = True
        else:
            try:
                out["authenticated"] = hashing.verify_secret(secret, principal.secret_hash or "")
            except hashing.UnknownHashFormat:
                raise TestFailed("The directory holds a password hash of an unknown format.") from None
        if not out["authenticated"]:
            raise TestFailed(f"The password of {login} is wrong.")
    return out


def describe(mapped: dict) -> list[tuple[str, str]]:
    """The mapped account as labelled lines (the command and the admin page show the same)."""
    def listed(items):
        return ", ".join(items) if items else "-"

    rows = [
        ("Name", mapped["name"]),
        ("Type", mapped["type"]),
        ("Description", mapped["description"] or "-"),
        ("Aliases", listed(mapped["aliases"])),
        ("Not aliased", listed(mapped["aliasesSkipped"])),
        ("Groups", listed(mapped["groups"])),
        ("Roles", listed(mapped["roles"])),
        ("Tenant", mapped["tenant"] or "-"),
        ("Domain", "served here" if mapped["domainServed"] else "NOT served here: the login would fail"),
        ("Account", "exists (it would be brought in line)" if mapped["accountExists"] else "would be created"),
        ("Password", mapped["secret"]),
    ]
    if "authenticated" in mapped:
        rows.append(("Login", "the password is right"))
    return rows
