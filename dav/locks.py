"""WebDAV write locks (RFC 4918 §6-7) and the `If` header (§10.4).

A lock covers its resource and, with Depth infinity, every resource below it. Locks live in
the database (`Lock`), keyed by the tree (service, account) and the resource path, so every
worker sees them; expired locks are ignored and deleted when the tree is next locked.

`If` is parsed into lists of conditions (state tokens, entity tags, each possibly negated),
tagged with a resource or not; the header holds when any list for a resource holds. Besides
the conditions, a write to a locked resource needs the lock's token among the header's
tokens, submitted by the lock's holder: `check_write()` answers 423 otherwise.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Account

from .models import Lock

TOKEN_PREFIX = "urn:stalwart:davlock:"
SYNC_PREFIX = "urn:stalwart:davsync:"


class IfHeaderError(Exception):
    """The If header does not follow the grammar: 400."""


@dataclass
class Condition:
    negated: bool
    token: str | None = None
    etag: str | None = None


@dataclass
class IfList:
    resource: str | None  # the tagged resource's path (decoded), or None for the request URI
    conditions: list[Condition]


_TOKEN = re.compile(r"""\s*(?:(<[^>]*>)|(\()|(\))|(\[[^\]]*\])|(Not)\b)""", re.I)


def parse_if(header: str | None) -> list[IfList]:
    if not header:
        return []
    if len(header) > 8192:
        raise IfHeaderError("The If header is too long.")
    out: list[IfList] = []
    resource: str | None = None
    pos = 0
    text = header.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            if text[pos:].strip() == "":
                break
            raise IfHeaderError("The If header is malformed.")
        pos = m.end()
        if m.group(1):  # a resource tag
            resource = _tag_path(m.group(1)[1:-1])
            continue
        if m.group(2):
            conditions: list[Condition] = []
            negated = False
            while True:
                m = _TOKEN.match(text, pos)
                if not m:
                    raise IfHeaderError("The If header is malformed.")
                pos = m.end()
                if m.group(5):
                    if negated:
                        raise IfHeaderError("The If header is malformed.")
                    negated = True
                elif m.group(1):
                    conditions.append(Condition(negated, token=m.group(1)[1:-1].strip()))
                    negated = False
                elif m.group(4):
                    conditions.append(Condition(negated, etag=m.group(4)[1:-1].strip()))
                    negated = False
                elif m.group(3):
                    if not conditions or negated:
                        raise IfHeaderError("The If header has an empty list.")
                    break
                else:
                    raise IfHeaderError("The If header is malformed.")
            out.append(IfList(resource, conditions))
            continue
        raise IfHeaderError("The If header is malformed.")
    return out


def _tag_path(url: str) -> str:
    try:
        return urlsplit(url).path
    except ValueError:
        raise IfHeaderError("The If header names a malformed resource.") from None


def submitted_tokens(lists: list[IfList]) -> set[str]:
    return {c.token for lst in lists for c in lst.conditions if c.token and not c.negated}


# --- the locks ----------------------------------------------------------------------------------
def _live():
    return Q(expires_at__gt=timezone.now())


def _ancestors(path: str) -> list[str]:
    """"a/b/c" -> ["", "a", "a/b"]."""
    parts = path.split("/") if path else []
    return ["/".join(parts[:i]) for i in range(len(parts))]


def live(service: str, account_id: int) -> list[Lock]:
    return list(Lock.objects.filter(_live(), service=service, account_id=account_id))


def covering(service: str, account_id: int, path: str, *, descendants: bool = False,
             parent: bool = False) -> list[Lock]:
    """Live locks on `path`, on an ancestor with Depth infinity and, with `descendants`, on
    anything below it (a DELETE or MOVE of a folder disturbs them all); with `parent`, also a
    Depth 0 lock on the parent collection (it locks the parent's membership, RFC 4918 §7.5),
    listed after the others."""
    q = Q(path=path) | Q(path__in=_ancestors(path), infinite=True)
    if descendants:
        q |= Q(path__startswith=f"{path}/") if path else ~Q(path="")
    parent_path = path.rpartition("/")[0] if parent and path else None
    if parent_path is not None:
        q |= Q(path=parent_path)
    found = list(Lock.objects.filter(_live(), q, service=service, account_id=account_id))
    if parent_path is None:
        return found
    # Stable: the locks of `path` itself keep their order, the parent's Depth 0 ones come last.
    return sorted(found, key=lambda lock: lock.path == parent_path and not lock.infinite)


def check_write(service: str, account_id: int, path: str, holder_id: int, tokens: set[str], *,
                descendants: bool = False, parent: bool = False) -> Lock | None:
    """The first lock that forbids this write (its token not submitted by its holder), or None;
    with `parent`, a write that adds or removes a member of the parent collection (one query)."""
    for lock in covering(service, account_id, path, descendants=descendants, parent=parent):
        if lock.token not in tokens or lock.holder_id != holder_id:
            return lock
    return None


class LockConflict(Exception):
    def __init__(self, lock: Lock):
        self.lock = lock


class TooManyLocks(Exception):
    pass


def timeout_of(header: str | None) -> int:
    """The Timeout header's first acceptable value, capped at DAV_MAX_LOCK_TIMEOUT."""
    cap = settings.DAV_MAX_LOCK_TIMEOUT
    for part in (header or "").split(","):
        part = part.strip()
        if part.lower() == "infinite":
            return cap
        if part.lower().startswith("second-") and part[7:].isdigit() and len(part) < 20:
            return max(1, min(int(part[7:]), cap))
    return cap


def create(service: str, account_id: int, path: str, *, infinite: bool, exclusive: bool, owner_xml: str,
           holder_id: int, timeout: int) -> Lock:
    with transaction.atomic():
        # Two LOCKs on one tree are serialised on the owner's row: there is no lock row yet to
        # hold, and both would otherwise see no conflict.
        list(Account.objects.select_for_update().filter(pk=account_id).values_list("pk", flat=True))
        Lock.objects.filter(expires_at__lte=timezone.now(), service=service, account_id=account_id).delete()
        # Whatever the new lock covers must not hold a lock it conflicts with: an exclusive lock
        # conflicts with any, a shared one with an exclusive one.
        for other in covering(service, account_id, path, descendants=infinite):
            if exclusive or other.scope == Lock.Scope.EXCLUSIVE:
                raise LockConflict(other)
        if Lock.objects.filter(_live(), holder_id=holder_id).count() >= settings.DAV_MAX_LOCKS:
            raise TooManyLocks()
        return Lock.objects.create(
            token=f"{TOKEN_PREFIX}{secrets.token_hex(16)}", service=service, account_id=account_id, path=path,
            infinite=infinite, scope=Lock.Scope.EXCLUSIVE if exclusive else Lock.Scope.SHARED, owner_xml=owner_xml,
            holder_id=holder_id, timeout=timeout, expires_at=timezone.now() + timedelta(seconds=timeout))


def refresh(lock: Lock, timeout: int) -> Lock:
    lock.timeout = timeout
    lock.expires_at = timezone.now() + timedelta(seconds=timeout)
    lock.save(update_fields=["timeout", "expires_at"])
    return lock


def find(token: str) -> Lock | None:
    return Lock.objects.filter(_live(), token=token).first()


def move_tree(service: str, account_id: int, old: str, new: str) -> None:
    """A MOVE takes no lock with it (RFC 4918 §9.9.4): locks on the moved tree are removed."""
    Lock.objects.filter(Q(path=old) | Q(path__startswith=f"{old}/"), service=service, account_id=account_id).delete()


def drop_tree(service: str, account_id: int, path: str) -> None:
    q = Q(path=path) | Q(path__startswith=f"{path}/") if path else Q()
    Lock.objects.filter(q, service=service, account_id=account_id).delete()
