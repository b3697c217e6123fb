"""The script store of RFC 9661: every write to SieveScript rows, journaled in its transaction.

It knows no protocol (delivery.jmap is its JMAP face). A script's text is a blob the account
holds: creating a script adds a Hold of kind `OWNER` on the blob the client uploaded, so the
upload's expiry no longer matters; replacing or destroying the script releases it.
"""
from __future__ import annotations

import secrets
from collections import OrderedDict
from threading import Lock

from django.conf import settings
from django.db import IntegrityError, transaction

import sieve
from blobs import services as blobs
from journal import services as journal
from registry import ids

from .models import SieveScript

TYPE = "SieveScript"
OWNER = "sievescript"  # the blob store's owner kind of a script's text
MAX_NAME = 512
DEFAULT_MAX_SCRIPTS = 100


def max_scripts() -> int:
    return int(getattr(settings, "SIEVE_MAX_SCRIPTS", DEFAULT_MAX_SCRIPTS))


class ScriptError(Exception):
    """A refusal, shaped as the JMAP SetError it is answered with (RFC 9661 §2.2)."""

    def __init__(self, type: str, description: str, properties: list[str] | None = None, **extra):
        super().__init__(description)
        self.type, self.description, self.properties, self.extra = type, description, properties, extra

    def to_json(self) -> dict:
        out = {"type": self.type, "description": self.description, **self.extra}
        if self.properties:
            out["properties"] = self.properties
        return out


def read_text(account_id: int, blob_id) -> str:
    """The text of a blob the account holds, checked as a script: blobNotFound, tooLarge,
    invalidSieve (with the line and column) or the text."""
    if not isinstance(blob_id, str):
        raise ScriptError("invalidProperties", "blobId must be a blob id.", ["blobId"])
    view = blobs.resolve(account_id, [blob_id]).get(blob_id)
    if view is None:
        raise ScriptError("blobNotFound", f"Blob {blob_id[:64]} not found.", notFound=[blob_id[:64]])
    limits = sieve.Limits.from_settings()
    if view.blob.size > limits.max_script_size:
        raise ScriptError("tooLarge", f"A script is at most {limits.max_script_size} bytes.", ["blobId"])
    raw = blobs.read(view.blob)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ScriptError("invalidSieve", "The script is not UTF-8 text.", ["blobId"]) from None
    error = sieve.validate(text, limits)
    if error is not None:
        raise ScriptError("invalidSieve", str(error), ["blobId"])
    return text


def _check_name(account_id: int, name, exclude_pk: int | None = None) -> str:
    if not isinstance(name, str) or not name or len(name) > MAX_NAME or any(
            ord(ch) < 0x20 or ord(ch) == 0x7f for ch in name):
        raise ScriptError("invalidProperties", f"The name must be 1 to {MAX_NAME} printable characters.", ["name"])
    taken = SieveScript.objects.filter(account_id=account_id, name=name).exclude(pk=exclude_pk)
    existing = taken.values_list("pk", flat=True).first()
    if existing is not None:
        raise ScriptError("alreadyExists", f"A script named {name[:64]!r} exists.", ["name"],
                          existingId=ids.encode(existing))
    return name


def _check_keys(values, allowed: tuple[str, ...]) -> None:
    if not isinstance(values, dict):
        raise ScriptError("invalidArguments", "A SieveScript must be an object.")
    for key in values:
        if key not in allowed:
            server = key in ("id", "isActive")
            raise ScriptError("invalidProperties", f"{key[:64]} is set by the server." if server
                              else f"Unknown property {key[:64]}.", [key[:64]])


def create(account_id: int, values) -> SieveScript:
    """A new, inactive script from `{"name"?, "blobId"}`; the caller journals it."""
    _check_keys(values, ("name", "blobId"))
    if "blobId" not in values:
        raise ScriptError("invalidProperties", "A script needs a blobId.", ["blobId"])
    read_text(account_id, values["blobId"])
    with transaction.atomic():
        if SieveScript.objects.filter(account_id=account_id).count() >= max_scripts():
            raise ScriptError("overQuota", f"You have exceeded your quota of {max_scripts()} scripts.")
        name = values.get("name")
        if name is None:
            name = f"script-{secrets.token_hex(4)}"  # RFC 9661 §2.2: the server names an unnamed one
        _check_name(account_id, name)
        try:
            with transaction.atomic():
                script = SieveScript.objects.create(account_id=account_id, name=name, blob_id=values["blobId"])
        except IntegrityError:  # a concurrent create took the name
            raise ScriptError("alreadyExists", f"A script named {name[:64]!r} exists.", ["name"]) from None
        try:
            blobs.hold(account_id, script.blob_id, OWNER, str(script.pk))
        except blobs.NotFound:
            raise ScriptError("blobNotFound", f"Blob {script.blob_id} not found.") from None
    return script


def load(account_id: int, object_id) -> SieveScript:
    pk = ids.decode(object_id) if isinstance(object_id, str) else None
    script = SieveScript.objects.filter(account_id=account_id, pk=pk).first() if pk is not None else None
    if script is None:
        raise ScriptError("notFound", "No such script.")
    return script


def update(account_id: int, script: SieveScript, values) -> None:
    _check_keys(values, ("name", "blobId"))
    if "name" in values:
        script.name = _check_name(account_id, values["name"], exclude_pk=script.pk)
    old_blob = script.blob_id
    if "blobId" in values and values["blobId"] != old_blob:
        read_text(account_id, values["blobId"])
        try:
            blobs.hold(account_id, values["blobId"], OWNER, str(script.pk))
        except blobs.NotFound:
            raise ScriptError("blobNotFound", f"Blob {values['blobId'][:64]} not found.") from None
        script.blob_id = values["blobId"]
    try:
        with transaction.atomic():
            script.save(update_fields=["name", "blob_id"])
    except IntegrityError:
        raise ScriptError("alreadyExists", "A script with this name exists.", ["name"]) from None
    if script.blob_id != old_blob:
        blobs.release(account_id, old_blob, OWNER, str(script.pk))


def destroy(account_id: int, script: SieveScript) -> None:
    if script.is_active:
        raise ScriptError("scriptIsActive", "The active script cannot be destroyed; deactivate it first.")
    blobs.release(account_id, script.blob_id, OWNER, str(script.pk))
    script.delete()


def set_active(account_id: int, pk: int | None) -> list[tuple[int, bool]]:
    """Make script `pk` the active one (None: none is); returns the (pk, isActive) that changed."""
    changed = []
    for old in SieveScript.objects.select_for_update().filter(account_id=account_id, is_active=True):
        if old.pk != pk:
            SieveScript.objects.filter(pk=old.pk).update(is_active=False)
            changed.append((old.pk, False))
    if pk is not None and SieveScript.objects.filter(account_id=account_id, pk=pk, is_active=False).update(
            is_active=True):
        changed.append((pk, True))
    return changed


def record(account_id: int, created=(), updated=(), destroyed=()) -> str:
    created, destroyed = list(dict.fromkeys(created)), list(dict.fromkeys(destroyed))
    updated = [i for i in dict.fromkeys(updated) if i not in created and i not in destroyed]
    if created or updated or destroyed:
        return journal.record(account_id, TYPE, created=created, updated=updated, destroyed=destroyed)
    return journal.state(account_id, TYPE)


def to_json(script: SieveScript, props=None) -> dict:
    out = {"id": ids.encode(script.pk), "name": script.name, "blobId": script.blob_id, "isActive": script.is_active}
    return out if props is None else {k: v for k, v in out.items() if k == "id" or k in props}


# --- what delivery runs ------------------------------------------------------------------------
_CACHE_SIZE = 256
_parsed: OrderedDict = OrderedDict()
_parsed_lock = Lock()


def active_script(account_id: int):
    """The parsed active script of the account, or None. A script is parsed once per process
    and blob (the blob id names the content, so an edited script is a new entry)."""
    row = (SieveScript.objects.filter(account_id=account_id, is_active=True)
           .values_list("pk", "blob_id").first())
    if row is None:
        return None
    key = (account_id, row[1])
    with _parsed_lock:
        if key in _parsed:
            _parsed.move_to_end(key)
            return _parsed[key]
    view = blobs.resolve(account_id, [row[1]]).get(row[1])
    if view is None:
        return None
    # A stored script passed validation; limits lowered since then may refuse it now (SieveError).
    script = sieve.parse(blobs.read(view.blob).decode("utf-8"), sieve.Limits.from_settings())
    with _parsed_lock:
        _parsed[key] = script
        while len(_parsed) > _CACHE_SIZE:
            _parsed.popitem(last=False)
    return script
