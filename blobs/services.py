"""The blob store: content-addressed, deduplicated bytes, referenced per account. It knows no
protocol: the JMAP face (jmapapi) and, later, the mail store and Sieve call these functions.

- `spool()` streams bytes to a temporary file, hashing and counting while it writes.
- `ingest()` files a spooled blob under an account, with a first reference (who holds it).
- `staging()` and `attach()` do the same in two steps for a caller that holds a write lock
  (delivery): the file before its transaction, the rows in it (four statements, no savepoint).
- `hold()` / `release()` add and remove references; `resolve()` answers which of an account's
  blob ids it may read; `chunks()` streams the content (or a range of it).
- `collect()` deletes what nothing references any more (expired uploads, released blobs,
  content no account holds, files no row names).
- `usage()` is the account's disk usage: its content held by lasting references read from one
  counted row (`BLOB_USAGE`), moved by the writes above under the lock of the account's view
  (`AccountBlob`) of the content; plus its live uploads; plus the stores above.

Concurrency: a reference is added under a row lock of the content (`Blob`) and of the
account's view (`AccountBlob`); collection deletes a row only under the same lock, after checking
again that nothing references it. A reference being added and a collection of the same
content are therefore serialised, whichever comes first (PostgreSQL: row locks; SQLite: the
write lock every transaction takes at BEGIN). Files are named uniquely per row, so a collection
that deletes an old row's file never touches the file of a new row for the same content.
"""
from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Iterable, Iterator

from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import IntegrityError, transaction
from django.db.models import BigIntegerField, Count, Exists, ExpressionWrapper, F, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.crypto import salted_hmac

from accounts.models import Account
from journal import services as journal
from registry import ids
from stalwart_site.inserts import Insert
from stalwart_site.sqlparams import in_slices

from .models import AccountBlob, Blob, Hold, StoreUsage

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
UPLOAD = "upload"
# A file no row names is left alone this long: it may belong to an upload still in flight.
ORPHAN_GRACE = timedelta(hours=1)
# The account's disk quota as a JMAP Quota (RFC 9425): the journal's data type and the quota's
# id (the reference's: document 0). A change of the usage journals it as updated, so that
# Quota/changes tells a client to read `used` again.
QUOTA_TYPE = "Quota"
DISK_QUOTA_ID = ids.encode(0)


class BlobError(Exception):
    pass


class TooLarge(BlobError):
    def __init__(self, limit: int):
        super().__init__(f"The blob is larger than {limit} bytes.")
        self.limit = limit


class OverQuota(BlobError):
    pass


class WindowExceeded(BlobError):
    """More references of one kind within a time window than allowed (the upload quota)."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class NotFound(BlobError):
    pass


def storage():
    return storages["blobs"]


# --- writing ---------------------------------------------------------------------------------
class _Spooled(File):
    """A temporary file Django's FileSystemStorage can move into place instead of copying."""

    def temporary_file_path(self) -> str:
        return self.file.name


@dataclass
class Spool:
    """Bytes written to a temporary file, with their digest and size."""

    path: str
    digest: str
    size: int
    sha1: str = ""
    sha512: str = ""

    def discard(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass  # moved into the storage


def spool(chunks: Iterable[bytes], max_size: int | None = None) -> Spool:
    """Write `chunks` to a temporary file, hashing as it writes; TooLarge beyond `max_size`
    (the rest is not read)."""
    sha256 = hashlib.sha256()
    size = 0
    fd, path = tempfile.mkstemp(prefix="blob-", dir=settings.FILE_UPLOAD_TEMP_DIR)
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                if not chunk:
                    continue
                size += len(chunk)
                if max_size is not None and size > max_size:
                    raise TooLarge(max_size)
                sha256.update(chunk)
                out.write(chunk)
    except BaseException:
        os.unlink(path)
        raise
    return Spool(path, sha256.hexdigest(), size)


def spool_bytes(data: bytes, max_size: int | None = None) -> Spool:
    return spool([data], max_size)


def jmap_id(account_id: int, digest: str) -> str:
    """The id an account knows a content by: keyed on the server's secret and the account, so
    that the same bytes have unrelated ids in two accounts."""
    mac = salted_hmac("blobs.jmap_id", f"{account_id}:{digest}", algorithm="sha256").digest()
    return base64.b32encode(mac[:20]).decode().lower()


def _name(digest: str) -> str:
    return f"{digest[:2]}/{digest[2:4]}/{digest}.{secrets.token_hex(8)}"


def _store(sp: Spool) -> str:
    name = _name(sp.digest)
    with open(sp.path, "rb") as fh:
        return storage().save(name, _Spooled(fh, name=name))


def ingest(account_id: int, sp: Spool, owner_kind: str, owner_id: str, expires_at: datetime | None = None,
           check: Callable[[int], None] | None = None) -> AccountBlob:
    """File spooled bytes under an account, held by (owner_kind, owner_id).

    The account's disk quota is checked under a lock of its row (concurrent ingests of one
    account queue there); `check()`, if given, runs under the same lock (the upload quota).
    The spool is consumed whatever happens.
    """
    try:
        name = _store(sp)
    finally:
        sp.discard()
    keep = False
    try:
        with transaction.atomic():
            quota = _lock_account(account_id)
            if check is not None:
                check(sp.size)
            blob = _lock_or_create_blob(sp, name)
            view = _attach(account_id, blob, owner_kind, owner_id, expires_at, quota)
            keep = blob.name == name
    finally:
        if not keep:
            # The content was stored already (or nothing was filed): no row names our copy.
            _delete_file(name)
    return view


def put(account_id: int, data: bytes, owner_kind: str, owner_id: str, expires_at: datetime | None = None) -> AccountBlob:
    return ingest(account_id, spool_bytes(data), owner_kind, owner_id, expires_at)


# --- staged: the file before the transaction (delivery) ---------------------------------------
@dataclass
class Staged:
    """Bytes written to the storage under a name of their own before the transaction that files
    them (`attach()`): the write lock of that transaction is not held for the file's write.
    `kept`: a row of this transaction names this file (else the content was stored already)."""

    digest: str
    size: int
    name: str
    kept: bool = False


_BLOB_ROW = Insert(Blob, ["digest", "size", "name", "created_at"], conflict=["digest"], update=["size"],
                   returning=["id", "name"])
_VIEW_ROW = Insert(AccountBlob, ["account", "blob", "jmap_id", "created_at"], conflict=["account", "blob"],
                   update=["jmap_id"], returning=["id"])
_HOLD_ROW = Insert(Hold, ["account_blob", "owner_kind", "owner_id", "expires_at", "created_at"],
                   conflict=["account_blob", "owner_kind", "owner_id"], update=["expires_at"])


@contextmanager
def staging(data: bytes) -> Iterator[Staged]:
    """Write `data` to the storage now, outside any transaction, for `attach()` in the one the
    block then runs:

        with blobs.staging(raw) as staged:
            with transaction.atomic():
                ...
                blobs.attach(account_id, staged, "email", str(pk))

    When the block ends, the file goes unless a row names it (the content was stored already,
    or the transaction failed). A crash in between leaves a file no row names, which
    `collect()` deletes after ORPHAN_GRACE."""
    digest = hashlib.sha256(data).hexdigest()
    name = storage().save(_name(digest), ContentFile(data))
    staged = Staged(digest, len(data), name)
    try:
        yield staged
    except BaseException:
        # Checked rather than assumed: the transaction may have committed before the failure.
        try:
            named = Blob.objects.filter(name=name).exists()
        except Exception:  # noqa: BLE001 - a broken connection: leave the file to collect()
            named = True
        if not named:
            _delete_file(name)
        raise
    if not staged.kept:
        _delete_file(name)


def attach(account_id: int, staged: Staged, owner_kind: str, owner_id: str, expires_at: datetime | None = None,
           *, unlimited: bool = False) -> str:
    """File staged bytes under an account, held by (owner_kind, owner_id), in the caller's
    transaction, without a savepoint (a failure fails the caller's transaction); their blob id.

    The content, the account's view and the hold are each an INSERT … ON CONFLICT that also
    locks an existing row (what `collect()` locks before deleting); the account's counted usage
    moves by one UPDATE (unless the content counted already). The account's disk quota is
    checked as `ingest()` does, under a lock of its row, unless the caller read just before its
    transaction that the account has no limit (`unlimited`): a limit set in between applies
    from the next write, as if this one had come first."""
    quota = None if unlimited else _lock_account(account_id)
    now = timezone.now()
    ((blob_pk, name),) = _BLOB_ROW.run([(staged.digest, staged.size, staged.name, now)])
    staged.kept = staged.kept or name == staged.name
    blob_id = jmap_id(account_id, staged.digest)
    ((view_pk,),) = _VIEW_ROW.run([(account_id, blob_pk, blob_id, now)])
    hold_row = [(view_pk, owner_kind, str(owner_id), expires_at, now)]
    if quota is None and expires_at is None:
        # A delivery to an account without a limit: one statement moves the row, unless the
        # content counts already (or the account has no row yet: then the longer way).
        moved = (StoreUsage.objects.filter(account_id=account_id, data_type=BLOB_USAGE)
                 .filter(~Exists(Hold.objects.filter(account_blob_id=view_pk, expires_at__isnull=True)))
                 .update(octets=F("octets") + staged.size, items=F("items") + 1))
        lasting = True if moved else _flags(view_pk)[1]
        _HOLD_ROW.run(hold_row)
        if not lasting:
            count_blobs(account_id, staged.size, 1)
        return blob_id
    held, lasting = _flags(view_pk)
    if quota is not None and not held and usage(account_id) + staged.size > quota:
        raise OverQuota("The account's storage quota would be exceeded.")
    _HOLD_ROW.run(hold_row)
    _held(account_id, view_pk, staged.size, lasting, expires_at)
    if quota is not None and not held:
        usage_moved([account_id], limited=True)
    return blob_id


def _flags(view_pk: int) -> tuple[bool, bool]:
    """(live, lasting): whether the view has a live reference, and one without expiry. A
    statement of its own after the view's lock, so that it reads what a writer that held the
    lock before committed (a locking SELECT's own subqueries read its older snapshot)."""
    holds = Hold.objects.filter(account_blob_id=view_pk)
    return (AccountBlob.objects.filter(pk=view_pk)
            .annotate(live=Exists(holds.filter(_live())), lasting=Exists(holds.filter(expires_at__isnull=True)))
            .values_list("live", "lasting").get())


def _held(account_id: int, view_pk: int, size: int, lasting: bool, expires_at: datetime | None) -> None:
    """One hold of the view was written (under the view's lock), `lasting`: whether the view had
    a reference without expiry before. Moves the counted row when the view gained its first
    one, or lost its last (a hold given an expiry); keeps `held_until` ahead of an expiry."""
    if expires_at is None:
        if not lasting:
            count_blobs(account_id, size, 1)
        return
    (AccountBlob.objects.filter(Q(held_until__isnull=True) | Q(held_until__lt=expires_at), pk=view_pk)
     .update(held_until=expires_at))
    if lasting and not Hold.objects.filter(account_blob_id=view_pk, expires_at__isnull=True).exists():
        count_blobs(account_id, -size, -1)


def _lock_account(account_id: int) -> int | None:
    row = Account.objects.select_for_update().filter(pk=account_id).values_list("max_disk_quota", flat=True)
    quota = list(row)
    if not quota:
        raise NotFound("No such account.")
    return quota[0]


def _lock_or_create_blob(sp: Spool, name: str) -> Blob:
    for _ in range(3):
        blob = Blob.objects.select_for_update().filter(digest=sp.digest).first()
        if blob is not None:
            return blob
        try:
            with transaction.atomic():
                return Blob.objects.create(digest=sp.digest, size=sp.size, name=name)
        except IntegrityError:
            continue  # created meanwhile by a concurrent ingest of the same bytes: lock that one
    raise BlobError("The blob could not be stored; try again.")


def _live() -> Q:
    return Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())


def _live_holds():
    return Hold.objects.filter(_live(), account_blob=OuterRef("pk"))


def _lasting_holds():
    return Hold.objects.filter(account_blob=OuterRef("pk"), expires_at__isnull=True)


# The blobs' part of the usage. The content an account holds by a lasting reference (one
# without expiry: an email, a file, a script) is counted in its StoreUsage row of this name
# (not a JMAP type), moved by the write that gives a view its first lasting reference or takes
# its last, under the view's row lock, so a quota check reads one row at any size of the
# account. Content held by uploads alone is not in the row: an upload stops counting when it
# expires, with no write to move a row, so it is measured live (`_upload_octets`).
BLOB_USAGE = "blobs"


# Stores above this one that keep an account's data outside blobs (calendar objects, vCards)
# add their octets to the one disk usage: name -> a subquery of the octets of the account of the
# outer query's row (`OuterRef("pk")`). They register in their AppConfig.ready(), since this
# app may not import them.
# `name` is the JMAP data type the Quota object lists in its `types` (RFC 9425 §4.1).
USAGE_SOURCES: dict[str, Callable[[], Subquery]] = {}
# The sources whose store keeps their StoreUsage row up to date (count_usage).
COUNTED: set[str] = set()


def register_usage(name: str, octets: Callable[[], Subquery], counted: bool = False) -> None:
    """`counted`: the store calls count_usage() at each write, so the usage reads its one
    StoreUsage row; `octets` then only measures an account that has none yet."""
    USAGE_SOURCES[name] = octets
    (COUNTED.add if counted else COUNTED.discard)(name)


def _counted_octets(name: str) -> Subquery:
    return Subquery(StoreUsage.objects.filter(account_id=OuterRef("pk"), data_type=name).values("octets")[:1])


def counted_items(account_id: int, name: str) -> int | None:
    """The items of a counted source the account holds; None before its first counted write."""
    return (StoreUsage.objects.filter(account_id=account_id, data_type=name).values_list("items", flat=True)
            .first())


def count_usage(account_id: int, name: str, octets: int, items: int, measure: Callable[[], tuple[int, int]]) -> None:
    """A counted store wrote, in the caller's transaction: its usage moves by `octets` and
    `items`. `measure()` is the (octets, items) the store holds now, this write included: it
    is asked once, for an account without a row yet (then, of two first writers, the one that
    loses the insert adds its own change to the winner's measure)."""
    rows = StoreUsage.objects.filter(account_id=account_id, data_type=name)
    if not octets and not items:
        if rows.exists():
            return
    elif rows.update(octets=F("octets") + octets, items=F("items") + items):
        return
    total, count = measure()
    try:
        with transaction.atomic():
            StoreUsage.objects.create(account_id=account_id, data_type=name, octets=total, items=count)
    except IntegrityError:
        rows.update(octets=F("octets") + octets, items=F("items") + items)


def usage_types() -> list[str]:
    """The data types of the registered stores, by name (whatever the order apps start in)."""
    return sorted(USAGE_SOURCES)


def _lasting_octets() -> Subquery:
    return Subquery(AccountBlob.objects.filter(account_id=OuterRef("pk")).filter(Exists(_lasting_holds()))
                    .values("account_id").annotate(total=Sum("blob__size")).values("total")[:1])


def _upload_octets() -> Subquery:
    # Content held by uploads alone, not expired: the account's views with `held_until` ahead
    # (an index range: the uploads of the last upload lifetime, not every view it holds).
    now = timezone.now()
    return Subquery(AccountBlob.objects.filter(account_id=OuterRef("pk"), held_until__gt=now)
                    .filter(Exists(Hold.objects.filter(account_blob=OuterRef("pk"), expires_at__gt=now)),
                            ~Exists(_lasting_holds()))
                    .values("account_id").annotate(total=Sum("blob__size")).values("total")[:1])


def _blob_octets():
    """Each distinct content the account references live, once: its counted row (measured while
    it has none), plus what uploads alone hold."""
    return (Coalesce(_counted_octets(BLOB_USAGE), _lasting_octets(), Value(0), output_field=BigIntegerField())
            + Coalesce(_upload_octets(), Value(0), output_field=BigIntegerField()))


def _measure_blobs(account_id: int) -> tuple[int, int]:
    row = (AccountBlob.objects.filter(account_id=account_id).filter(Exists(_lasting_holds()))
           .aggregate(n=Count("pk"), total=Sum("blob__size")))
    return row["total"] or 0, row["n"]


def count_blobs(account_id: int, octets: int, items: int) -> None:
    """Content the account holds by a lasting reference grew (or shrank) by `items` contents of
    `octets` in all, in the caller's transaction, under the locks of their views (or, for a
    bulk loader, of rows no one else sees yet)."""
    if octets or items:
        count_usage(account_id, BLOB_USAGE, octets, items, lambda: _measure_blobs(account_id))


def usage(account_id: int) -> int:
    """Octets the account uses: each distinct content it references once, plus what the
    registered stores keep (one query, whatever their number)."""
    total = Account.objects.filter(pk=account_id).annotate(used=usage_expression()).values_list("used", flat=True)
    return next(iter(total), 0) or 0


def window_usage(account_id: int, owner_kind: str, since: datetime) -> tuple[int, int]:
    """(count, bytes) of the account's references of one kind made since `since`."""
    row = (Hold.objects.filter(account_blob__account_id=account_id, owner_kind=owner_kind, created_at__gt=since)
           .aggregate(n=Count("pk"), total=Sum("account_blob__blob__size")))
    return row["n"], row["total"] or 0


def _attach(account_id: int, blob: Blob, owner_kind: str, owner_id: str, expires_at, quota: int | None) -> AccountBlob:
    """Give the account a (new) reference to `blob`; the caller holds the account's and the
    blob's row locks."""
    view = AccountBlob.objects.select_for_update().filter(account_id=account_id, blob=blob).first()
    held, lasting = _flags(view.pk) if view is not None else (False, False)
    if not held and quota is not None and usage(account_id) + blob.size > quota:
        raise OverQuota("The account's storage quota would be exceeded.")
    if view is None:
        view = AccountBlob.objects.create(account_id=account_id, blob=blob, jmap_id=jmap_id(account_id, blob.digest),
                                          held_until=expires_at)
        # A new view has no holds yet: no need to look for one to update.
        Hold.objects.create(account_blob=view, owner_kind=owner_kind, owner_id=str(owner_id), expires_at=expires_at)
        if expires_at is None:
            count_blobs(account_id, blob.size, 1)
    else:
        _HOLD_ROW.run([(view.pk, owner_kind, str(owner_id), expires_at, timezone.now())])
        _held(account_id, view.pk, blob.size, lasting, expires_at)
    if not held and quota is not None:
        usage_moved([account_id], limited=True)
    view.blob = blob
    return view


def usage_moved(account_ids: Iterable[int], limited: bool = False) -> None:
    """Journal the disk quota of these accounts as updated (their usage changed), in the
    caller's transaction. An account without a limit has no Quota object: nothing to journal
    (setting a limit journals it as created). `limited`: the caller knows they have one."""
    wanted = set(account_ids)
    if wanted and not limited:
        wanted = set(Account.objects.filter(pk__in=wanted, max_disk_quota__isnull=False).values_list("pk", flat=True))
    for account_id in sorted(wanted):
        journal.record(account_id, QUOTA_TYPE, updated=[DISK_QUOTA_ID])


def check_quota(account_id: int, extra: int = 0) -> None:
    """OverQuota when the account, with `extra` more octets, would be past its disk quota
    (DAV and other faces that store outside ingest()). Takes the account's row lock: call it
    inside the transaction that then stores."""
    quota = _lock_account(account_id)
    if quota is not None and usage(account_id) + extra > quota:
        raise OverQuota("The account's storage quota would be exceeded.")


def usage_expression():
    """The usage of the account of the outer query's row (`OuterRef("pk")`), as an
    expression: a list of accounts with their usage in one query."""
    total = _blob_octets()
    for name, octets in USAGE_SOURCES.items():
        total = total + (Coalesce(_counted_octets(name), octets(), Value(0), output_field=BigIntegerField())
                         if name in COUNTED else Coalesce(octets(), Value(0), output_field=BigIntegerField()))
    return ExpressionWrapper(total, output_field=BigIntegerField())


def charge(account_id: int, delta: int) -> None:
    """A store outside blobs is about to grow (or shrink) the account's usage by `delta`
    octets, in the caller's transaction: OverQuota when growing would pass the limit (checked
    under the account's row lock, so two writers cannot both take the last free octets); the
    Quota is journaled as updated when the usage moves."""
    if delta > 0:
        quota = _lock_account(account_id)
        if quota is None:
            return  # no limit, no Quota object to journal: one query
        if usage(account_id) + delta > quota:
            raise OverQuota("The account's storage quota would be exceeded.")
        usage_moved([account_id], limited=True)
    elif delta < 0:
        usage_moved([account_id])


# --- references ------------------------------------------------------------------------------
def well_formed(blob_id) -> bool:
    """Whether a client's blob id could be one of ours (jmap_id's alphabet): anything else is
    absent without a query, so a NUL (PostgreSQL refuses it in text) never reaches the database."""
    return isinstance(blob_id, str) and 0 < len(blob_id) <= 64 and blob_id.isascii() and blob_id.isalnum()


def resolve(account_id: int, blob_ids: Iterable[str]) -> dict[str, AccountBlob]:
    """Which of these ids name a blob the account holds (one query). Another account's id, an
    expired upload or garbage are simply absent."""
    wanted = {b for b in blob_ids if well_formed(b)}
    if not wanted:
        return {}
    rows = (AccountBlob.objects.select_related("blob").filter(account_id=account_id, jmap_id__in=wanted)
            .filter(Exists(_live_holds())))
    return {row.jmap_id: row for row in rows}


def hold(account_id: int, blob_id: str, owner_kind: str, owner_id: str, expires_at: datetime | None = None) -> AccountBlob:
    """Add a reference to a blob the account already holds (an email made of an upload). NotFound
    when the account does not hold it (or its upload expired)."""
    with transaction.atomic():
        # The account first, as ingest() locks it: one lock order for every writer.
        quota = _lock_account(account_id) if expires_at is None else None
        view = (AccountBlob.objects.select_for_update().select_related("blob")
                .filter(account_id=account_id, jmap_id=blob_id).first()) if well_formed(blob_id) else None
        held, lasting = _flags(view.pk) if view is not None else (False, False)
        if not held:
            raise NotFound(f"Blob {blob_id} not found.")
        # The content is counted already (an upload holds it); a lasting reference is still
        # refused while the account is past its quota (lowered since the upload), so that an
        # import never leaves the account over it.
        if quota is not None and usage(account_id) > quota:
            raise OverQuota("The account is over its storage quota.")
        _HOLD_ROW.run([(view.pk, owner_kind, str(owner_id), expires_at, timezone.now())])
        _held(account_id, view.pk, view.blob.size, lasting, expires_at)
        return view


def copy(from_account_id: int, to_account_id: int, blob_id: str, owner_kind: str, owner_id: str,
         expires_at: datetime | None = None) -> AccountBlob:
    """The content of one account's blob, held by another account (its quota applies)."""
    source = resolve(from_account_id, [blob_id]).get(blob_id)
    if source is None:
        raise NotFound(f"Blob {blob_id} not found.")
    with transaction.atomic():
        quota = _lock_account(to_account_id)
        blob = Blob.objects.select_for_update().filter(pk=source.blob.pk).first()
        if blob is None:
            raise NotFound(f"Blob {blob_id} not found.")
        return _attach(to_account_id, blob, owner_kind, owner_id, expires_at, quota)


def release(account_id: int, blob_id: str, owner_kind: str, owner_id: str) -> bool:
    """Remove one reference; the content goes at the next collection if nothing else holds it."""
    if not well_formed(blob_id):
        return False
    return bool(_release(AccountBlob.objects.filter(account_id=account_id, jmap_id=blob_id),
                         Q(owner_kind=owner_kind, owner_id=str(owner_id))))


def release_owners(account_id: int, owner_kind: str, owner_ids: Iterable[str]) -> int:
    """Remove the references of many owners of one kind at once (a folder of files deleted)."""
    owners = [str(o) for o in owner_ids]
    deleted = 0
    for some in in_slices(owners):
        deleted += _release(AccountBlob.objects.filter(account_id=account_id),
                            Q(owner_kind=owner_kind, owner_id__in=some))
    return deleted


def release_owner(owner_kind: str, owner_id: str) -> int:
    """Remove every reference an owner holds (an email destroyed)."""
    return _release(AccountBlob.objects.all(), Q(owner_kind=owner_kind, owner_id=str(owner_id)))


def _states(pks: list[int]) -> dict[int, tuple[int, int, bool, bool]]:
    """view -> (account, size, live, lasting), read after the views' locks (see _flags)."""
    out = {}
    for some in in_slices(pks):
        rows = (AccountBlob.objects.filter(pk__in=some)
                .annotate(live=Exists(_live_holds()), lasting=Exists(_lasting_holds()))
                .values_list("pk", "account_id", "blob__size", "live", "lasting"))
        out.update((pk, rest) for pk, *rest in rows)
    return out


def _release(views, holds: Q) -> int:
    """Delete the holds (`holds`) of these views, under the views' locks (taken in one order,
    by id); the counted rows of their accounts move by the content that lost its last lasting
    reference, and the accounts whose usage fell have their Quota journaled."""
    # No savepoint: inside a caller's transaction (an Email/destroy), a failure fails it whole.
    with transaction.atomic(savepoint=False):
        pks = list(views.filter(pk__in=Hold.objects.filter(holds).values("account_blob_id"))
                   .select_for_update().order_by("pk").values_list("pk", flat=True))
        if not pks:
            return 0
        before = _states(pks)
        deleted = 0
        for some in in_slices(pks):
            deleted += Hold.objects.filter(holds, account_blob_id__in=some).delete()[0]
        after = _states(pks)
        lost: dict[int, list[int]] = {}
        fell = set()
        for pk, (account_id, size, live, lasting) in before.items():
            _, _, live_now, lasting_now = after[pk]
            if lasting and not lasting_now:
                moved = lost.setdefault(account_id, [0, 0])
                moved[0] -= size
                moved[1] -= 1
            if live and not live_now:
                fell.add(account_id)
        for account_id in sorted(lost):
            count_blobs(account_id, *lost[account_id])
        usage_moved(fell)
    return deleted


def holders(account_id: int, blob_ids: Iterable[str], owner_kinds: Iterable[str]) -> dict[str, dict[str, list[str]]]:
    """blob id -> owner kind -> owner ids, for the account's live references of these kinds."""
    out: dict[str, dict[str, list[str]]] = {}
    rows = (Hold.objects.filter(_live(), account_blob__account_id=account_id, account_blob__jmap_id__in=list(blob_ids),
                                owner_kind__in=list(owner_kinds))
            .order_by("pk").values_list("account_blob__jmap_id", "owner_kind", "owner_id"))
    for blob_id, kind, owner in rows:
        out.setdefault(blob_id, {}).setdefault(kind, []).append(owner)
    return out


# --- data types that reference blobs (RFC 9404 §4.3 Blob/lookup) ---------------------------
@dataclass
class DataType:
    """A JMAP data type whose objects hold blobs, under `owner_kind`: `to_jmap_ids(owner ids)`
    answers the ids of the type's objects that hold them (several owners may map to one object,
    one owner to several: an email in two mailboxes), in one query or none."""

    name: str
    owner_kind: str
    to_jmap_ids: Callable[[list[str]], list[str]] = field(default=list)


DATA_TYPES: dict[str, DataType] = {}


def register_data_type(name: str, owner_kind: str, to_jmap_id: Callable[[str], str] | None = None,
                       to_jmap_ids: Callable[[list[str]], list[str]] | None = None) -> DataType:
    """Register a type; give `to_jmap_id` (one owner, one object) or `to_jmap_ids` (batched)."""
    if to_jmap_ids is None:
        one = to_jmap_id or str
        to_jmap_ids = lambda owners: list(dict.fromkeys(one(o) for o in owners))  # noqa: E731
    DATA_TYPES[name] = DataType(name, owner_kind, to_jmap_ids)
    return DATA_TYPES[name]


# --- reading ---------------------------------------------------------------------------------
def chunks(blob: Blob, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """The bytes [start, end) of a blob, streamed."""
    end = blob.size if end is None else min(end, blob.size)
    if start >= end:
        return
    st = storage()
    bucket = getattr(st, "bucket", None)
    if bucket is not None:
        # S3: a ranged GET streams just those bytes; S3File would download the whole object first.
        # _normalize_name is django-storages' own mapping of a name to the key (prefix applied).
        key = st._normalize_name(blob.name)
        body = bucket.Object(key).get(Range=f"bytes={start}-{end - 1}")["Body"]
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()
        return
    with st.open(blob.name, "rb") as fh:
        fh.seek(start)
        remaining = end - start
        while remaining > 0:
            data = fh.read(min(CHUNK, remaining))
            if not data:
                raise BlobError(f"The stored content of blob {blob.digest} is shorter than recorded.")
            remaining -= len(data)
            yield data


def read(blob: Blob, start: int = 0, end: int | None = None) -> bytes:
    return b"".join(chunks(blob, start, end))


# --- collection ------------------------------------------------------------------------------
@dataclass
class Collected:
    holds: int = 0
    views: int = 0
    blobs: int = 0
    files: int = 0


def collect(now: datetime | None = None, orphans: bool = True) -> Collected:
    """Delete expired references, then what nothing references: account views, content rows and
    their files, and (with `orphans`) files no row names that are older than ORPHAN_GRACE."""
    now = now or timezone.now()
    done = Collected()
    expired = Hold.objects.filter(expires_at__lte=now)
    with transaction.atomic():
        accounts = set(expired.values_list("account_blob__account_id", flat=True).distinct())
        done.holds, _ = expired.delete()
        # Their usage fell when the holds expired; the journal learns it now. (An expiring
        # hold is never a lasting one: the counted rows do not move.)
        usage_moved(accounts)
    for pk in list(AccountBlob.objects.filter(~Exists(Hold.objects.filter(account_blob=OuterRef("pk"))))
                   .values_list("pk", flat=True)):
        with transaction.atomic():
            view = AccountBlob.objects.select_for_update().filter(pk=pk).first()
            if view is not None and not view.holds.exists():
                view.delete()
                done.views += 1
    for pk in list(Blob.objects.filter(~Exists(AccountBlob.objects.filter(blob=OuterRef("pk"))))
                   .values_list("pk", flat=True)):
        with transaction.atomic():
            blob = Blob.objects.select_for_update().filter(pk=pk).first()
            if blob is not None and not AccountBlob.objects.filter(blob=blob).exists():
                blob.delete()
                name = blob.name
                transaction.on_commit(lambda name=name: _delete_file(name))
                done.blobs += 1
    if orphans:
        done.files = _collect_orphans(now)
    return done


def _walk(st, path: str = "") -> Iterator[str]:
    dirs, files = st.listdir(path)
    for name in files:
        yield f"{path}/{name}" if path else name
    for name in dirs:
        yield from _walk(st, f"{path}/{name}" if path else name)


def _collect_orphans(now: datetime) -> int:
    st = storage()
    try:
        names = list(_walk(st))
    except FileNotFoundError:
        return 0  # nothing stored yet
    known = set(Blob.objects.filter(name__in=names).values_list("name", flat=True))
    removed = 0
    for name in names:
        if name in known:
            continue
        try:
            if st.get_modified_time(name) > now - ORPHAN_GRACE:
                continue
        except (FileNotFoundError, OSError):
            continue
        # Checked again by name: a row may have been filed since the listing.
        if not Blob.objects.filter(name=name).exists():
            _delete_file(name)
            removed += 1
    return removed


def _delete_file(name: str) -> None:
    try:
        storage().delete(name)
    except Exception:  # noqa: BLE001 - a file left behind is an orphan the next collection removes
        log.warning("Could not delete blob file %s", name, exc_info=True)
