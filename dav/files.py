"""The file store of /dav/file: folders and files of an account, every write journaled.

Every function here is one change, in one transaction, with its journal entries (type
`FileNode`, the object id the node's primary key, the href of what went away) written last in
that transaction. Files' bytes go to the blob store under the owner account's disk quota
(`blobs.services.ingest`), held by the node (`owner_kind="davfile"`, the node's id); a deleted
or overwritten file releases its hold, and the blob collector removes what nothing holds.

It knows no HTTP: the DAV views translate requests into these calls and the exceptions back
into statuses. Who may call it is decided before, in `dav.access`.
"""
from __future__ import annotations

import functools
import hashlib
import re
import secrets
from typing import Iterable
from urllib.parse import quote

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Account
from blobs import services as blobs
from journal import services as journal

from .models import MAX_NAME, MAX_PATH, FileNode

TYPE = "FileNode"
OWNER_KIND = "davfile"


class StoreError(Exception):
    status = 409


class Conflict(StoreError):
    """The parent is missing or is not a folder (409)."""


class Exists(StoreError):
    status = 405


class NotAllowed(StoreError):
    status = 405


class QuotaExceeded(StoreError):
    status = 507


class TooLarge(StoreError):
    status = 413


class TooMany(StoreError):
    status = 507


# --- paths and hrefs ----------------------------------------------------------------------------
@functools.lru_cache(maxsize=1024)  # a listing names one owner once per entry
def segment(email: str) -> str:
    return quote(email, safe="")


PATH_SAFE = "/-._~!$&'()*+,;=:@"
_ALREADY_SAFE = re.compile(r"[A-Za-z0-9/\-._~!$&'()*+,;=:@]*\Z")


def plain_path(path: str) -> bool:
    """Whether `path` goes into an href as it is."""
    return _ALREADY_SAFE.match(path) is not None


def quote_path(path: str) -> str:
    """`path` percent-encoded for an href; most names need nothing, and a match is cheaper
    than quote() once per entry of a listing of thousands."""
    return path if _ALREADY_SAFE.match(path) else quote(path, safe=PATH_SAFE)


def href(account: Account, path: str, collection: bool) -> str:
    base = f"/dav/file/{segment(account.email_address)}/"
    if not path:
        return base
    return base + quote_path(path) + ("/" if collection else "")


def valid_name(name: str) -> bool:
    return (0 < len(name) <= MAX_NAME and name not in (".", "..") and "/" not in name
            and not any(ord(ch) < 32 or ord(ch) == 127 for ch in name))


def join(parent_path: str, name: str) -> str:
    return f"{parent_path}/{name}" if parent_path else name


def _tombstone(href_: str) -> str:
    return "h:" + hashlib.sha256(href_.encode()).hexdigest()[:40]


def _new_etag() -> str:
    return f'"{secrets.token_hex(8)}"'


# --- reading ------------------------------------------------------------------------------------
def get(account_id: int, path: str) -> FileNode | None:
    if not path or len(path) > MAX_PATH:
        return None
    return FileNode.objects.filter(account_id=account_id, path=path).first()


def ancestors(account_id: int, path: str) -> list[FileNode]:
    """The folders above `path`, outermost first (one query)."""
    parts = path.split("/")
    paths = ["/".join(parts[:i]) for i in range(1, len(parts))]
    if not paths:
        return []
    rows = {n.path: n for n in FileNode.objects.filter(account_id=account_id, path__in=paths)}
    return [rows[p] for p in paths if p in rows]


def listing(account_id: int, path: str, depth: int | None, limit: int) -> list[FileNode]:
    """The nodes below `path` ("" the home) to `depth` (None: all), in path order, at most
    `limit` (the caller asks for one more than it shows, to know when to say 507)."""
    qs = FileNode.objects.filter(account_id=account_id)
    if path:
        qs = qs.filter(path__startswith=f"{path}/")
    if depth == 1:
        qs = qs.filter(parent__path=path) if path else qs.filter(parent__isnull=True)
    return list(qs.order_by("path")[:limit])


def count(account_id: int) -> int:
    return FileNode.objects.filter(account_id=account_id).count()


def state(account_id: int) -> str:
    return journal.state(account_id, TYPE)


# --- writing ------------------------------------------------------------------------------------
def _lock_tree(account_id: int) -> None:
    """Every write of one tree is serialised on the owner's row, taken first (the blob store's
    quota check locks it too): two PUTs or MKCOLs of one new path cannot both create it, and a
    MOVE never interleaves with a write below it."""
    list(Account.objects.select_for_update().filter(pk=account_id).values_list("pk", flat=True))


def _parent(account_id: int, path: str) -> FileNode | None:
    """The folder that would hold `path` (None for the home); Conflict when there is none."""
    parent_path = path.rpartition("/")[0]
    if not parent_path:
        return None
    parent = FileNode.objects.select_for_update().filter(account_id=account_id, path=parent_path).first()
    if parent is None or not parent.is_collection:
        raise Conflict("The parent folder does not exist.")
    return parent


def _check_room(account_id: int, adding: int) -> None:
    if settings.DAV_MAX_NODES and count(account_id) + adding > settings.DAV_MAX_NODES:
        raise TooMany("The file store holds as many files and folders as it may.")


def _touch(parent: FileNode | None) -> None:
    if parent is not None:
        FileNode.objects.filter(pk=parent.pk).update(etag=_new_etag(), modified_at=timezone.now())


def mkcol(account: Account, path: str, dead_props: dict | None = None, display: dict | None = None) -> FileNode:
    if len(path) > MAX_PATH:
        raise TooLarge("The path is too long.")
    now = timezone.now()
    with transaction.atomic():
        _lock_tree(account.pk)
        parent = _parent(account.pk, path)
        if FileNode.objects.filter(account_id=account.pk, path=path).exists():
            raise Exists("A resource exists at that address.")
        _check_room(account.pk, 1)
        try:
            with transaction.atomic():
                node = FileNode.objects.create(account=account, parent=parent, path=path, name=path.rpartition("/")[2],
                                               is_collection=True, etag=_new_etag(), dead_props=dead_props or {},
                                               created_at=now, modified_at=now)
        except IntegrityError:
            raise Exists("A resource exists at that address.") from None
        _touch(parent)
        journal.record(account.pk, TYPE, created=[str(node.pk)])
    return node


def put(account: Account, path: str, chunks: Iterable[bytes], content_type: str, *,
        precondition=None) -> tuple[FileNode, bool]:
    """Store a file's new content; (node, created). `precondition(node or None)` runs under the
    lock of the parent folder, before anything is written (If-Match and the like)."""
    if len(path) > MAX_PATH:
        raise TooLarge("The path is too long.")
    try:
        spooled = blobs.spool(chunks, settings.DAV_MAX_FILE_SIZE)
    except blobs.TooLarge:
        raise TooLarge(f"A file is at most {settings.DAV_MAX_FILE_SIZE} bytes.") from None
    now = timezone.now()
    try:
        with transaction.atomic():
            _lock_tree(account.pk)
            parent = _parent(account.pk, path)
            node = FileNode.objects.select_for_update().filter(account_id=account.pk, path=path).first()
            if precondition is not None:
                precondition(node)
            if node is not None and node.is_collection:
                raise NotAllowed("A folder cannot be overwritten with a file.")
            created = node is None
            old_blob = None
            if created:
                _check_room(account.pk, 1)
                node = FileNode.objects.create(account=account, parent=parent, path=path, name=path.rpartition("/")[2],
                                               etag=_new_etag(), created_at=now, modified_at=now)
            else:
                old_blob = node.blob_id
            sp, spooled = spooled, None
            try:
                view = blobs.ingest(account.pk, sp, OWNER_KIND, str(node.pk))
            except blobs.OverQuota:
                raise QuotaExceeded("The account's storage quota would be exceeded.") from None
            if old_blob and old_blob != view.jmap_id:
                blobs.release(account.pk, old_blob, OWNER_KIND, str(node.pk))
            node.blob_id = view.jmap_id
            node.size = sp.size
            node.content_type = (content_type or "")[:255]
            node.etag = f'"{sp.digest[:32]}"'
            node.modified_at = now
            node.save(update_fields=["blob_id", "size", "content_type", "etag", "modified_at"])
            if created:
                _touch(parent)
            journal.record(account.pk, TYPE, **({"created": [str(node.pk)]} if created else {"updated": [str(node.pk)]}))
    finally:
        if spooled is not None:
            spooled.discard()
    return node, created


def _subtree(node: FileNode) -> list[FileNode]:
    if not node.is_collection:
        return [node]
    return [node, *FileNode.objects.filter(account_id=node.account_id, path__startswith=f"{node.path}/")]


def _release(account_id: int, nodes: Iterable[FileNode]) -> None:
    files = [n for n in nodes if n.blob_id]
    if files:
        blobs.release_owners(account_id, OWNER_KIND, [str(n.pk) for n in files])


def delete(account: Account, node: FileNode) -> None:
    with transaction.atomic():
        _lock_tree(account.pk)
        gone = _subtree(node)
        _release(account.pk, gone)
        parent_id = node.parent_id
        FileNode.objects.filter(pk__in=[n.pk for n in gone]).delete()
        if parent_id:
            FileNode.objects.filter(pk=parent_id).update(etag=_new_etag(), modified_at=timezone.now())
        journal.record(account.pk, TYPE, destroyed={str(n.pk): href(account, n.path, n.is_collection) for n in gone})


def copy(account: Account, node: FileNode, dest_path: str, *, infinite: bool, replace: FileNode | None) -> FileNode:
    """Copy `node` (a folder with its contents when `infinite`) to `dest_path`, replacing the
    node there when given (it was checked by the caller: Overwrite, locks)."""
    now = timezone.now()
    with transaction.atomic():
        _lock_tree(account.pk)
        destroyed = {}
        if replace is not None:
            gone = _subtree(replace)
            _release(account.pk, gone)
            FileNode.objects.filter(pk__in=[n.pk for n in gone]).delete()
            destroyed = {str(n.pk): href(account, n.path, n.is_collection) for n in gone}
        parent = _parent(account.pk, dest_path)
        sources = _subtree(node) if infinite else [node]
        _check_room(account.pk, len(sources))
        if any(len(dest_path + s.path[len(node.path):]) > MAX_PATH for s in sources):
            raise TooLarge("The path is too long.")
        made: dict[str, FileNode] = {}
        for src in sorted(sources, key=lambda n: n.path.count("/")):
            rel = src.path[len(node.path):]
            new_path = dest_path + rel
            new_parent = parent if not rel else made[new_path.rpartition("/")[0]]
            copy_ = FileNode.objects.create(
                account=account, parent=new_parent, path=new_path, name=new_path.rpartition("/")[2],
                is_collection=src.is_collection, blob_id=src.blob_id, size=src.size, content_type=src.content_type,
                etag=src.etag if not src.is_collection else _new_etag(), dead_props=dict(src.dead_props),
                created_at=now, modified_at=now)
            if src.blob_id:
                try:
                    blobs.hold(account.pk, src.blob_id, OWNER_KIND, str(copy_.pk))
                except blobs.NotFound:
                    raise StoreError("The file's content is gone.") from None
            made[new_path] = copy_
        _touch(parent)
        journal.record(account.pk, TYPE, created=[str(n.pk) for n in made.values()], destroyed=destroyed)
    return made[dest_path]


def move(account: Account, node: FileNode, dest_path: str, *, replace: FileNode | None) -> FileNode:
    now = timezone.now()
    with transaction.atomic():
        _lock_tree(account.pk)
        destroyed = {}
        if replace is not None:
            gone = _subtree(replace)
            _release(account.pk, gone)
            FileNode.objects.filter(pk__in=[n.pk for n in gone]).delete()
            destroyed = {str(n.pk): href(account, n.path, n.is_collection) for n in gone}
        parent = _parent(account.pk, dest_path)
        moved = _subtree(node)
        old_root = node.path
        if any(len(dest_path + m.path[len(old_root):]) > MAX_PATH for m in moved):
            raise TooLarge("The path is too long.")
        old_parent = node.parent_id
        for m in moved:
            old_href = href(account, m.path, m.is_collection)
            destroyed[_tombstone(old_href)] = old_href
            m.path = dest_path + m.path[len(old_root):]
        node.parent = parent
        node.name = dest_path.rpartition("/")[2]
        node.modified_at = now
        for m in sorted(moved, key=lambda n: n.path):
            m.save(update_fields=["path", "parent", "name", "modified_at"] if m is node else ["path"])
        if old_parent:
            FileNode.objects.filter(pk=old_parent).update(etag=_new_etag(), modified_at=now)
        _touch(parent)
        journal.record(account.pk, TYPE, updated=[str(m.pk) for m in moved], destroyed=destroyed)
    return node


def save_props(account: Account, node: FileNode, dead_props: dict, content_type: str | None = None,
               created_at=None) -> None:
    fields = ["dead_props", "modified_at"]
    node.dead_props = dead_props
    if content_type is not None:
        node.content_type = content_type[:255]
        fields.append("content_type")
    if created_at is not None:
        node.created_at = created_at
        fields.append("created_at")
    node.modified_at = timezone.now()
    with transaction.atomic():
        node.save(update_fields=fields)
        journal.record(account.pk, TYPE, updated=[str(node.pk)])


def set_acl(account: Account, node: FileNode, acl: list[dict]) -> None:
    node.acl = acl
    node.shared = bool(acl)
    with transaction.atomic():
        node.save(update_fields=["acl", "shared"])
        journal.record(account.pk, TYPE, updated=[str(node.pk)])


def lock_null(account: Account, path: str) -> FileNode:
    """LOCK on an unmapped URL makes an empty file (RFC 4918 §7.3)."""
    node, _ = put(account, path, [b""], "application/octet-stream")
    return node


def in_subtree(path: str, root: str) -> bool:
    return path == root or path.startswith(f"{root}/") or root == ""

