"""Blob/upload, Blob/get, Blob/lookup (RFC 9404) and Blob/copy (RFC 8620 §6.3), and the
`urn:ietf:params:jmap:blob` capability. The bytes live in the blob store (blobs.services); this
module only translates arguments and refusals.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from datetime import timedelta
from typing import Callable

from django.conf import settings
from django.utils import timezone

from accounts.models import Account
from blobs import services as blobs
from registry import ids

from . import capabilities
from .engine import CORE, Context, MethodError, invalid_arguments, method

BLOB = "urn:ietf:params:jmap:blob"
DIGESTS = {"sha": hashlib.sha1, "sha-256": hashlib.sha256, "sha-512": hashlib.sha512}
# RFC 8620 §1.3: UnsignedInt is at most 2^53-1.
MAX_UNSIGNED_INT = 2**53 - 1
# RFC 9404 §4: a server MUST accept at least 64 data sources in one creation.
MAX_DATA_SOURCES = 64
GET_PROPERTIES = ("id", "data", "data:asText", "data:asBase64", "size") + tuple(f"digest:{d}" for d in DIGESTS)


def max_size_upload(limits) -> int:
    """maxSizeUpload as advertised and enforced: the Jmap setting, but never above what the
    event-loop worker lets an upload body be (HTTP_MAX_UPLOAD_BODY), so that nothing the session
    advertises is cut before it reaches the upload view."""
    return min(limits.max_upload_size, settings.HTTP_MAX_UPLOAD_BODY)


def max_size_blob_set(limits) -> int:
    # The reference's rule: what fits in a request once base64 has grown it by a third.
    return limits.max_request_size * 3 // 4 - 512


def _account_capability(principal, limits) -> dict:
    return {
        "maxSizeBlobSet": max_size_blob_set(limits),
        "maxDataSources": MAX_DATA_SOURCES,
        "supportedTypeNames": sorted(blobs.DATA_TYPES),
        "supportedDigestAlgorithms": list(DIGESTS),
    }


capabilities.register(BLOB, account=_account_capability, permission="jmapBlobGet")


# Blobs a data type derives from what it stores (an email's body parts, RFC 8621 §4.1.4 blobId):
# each resolver takes (account pk, blob id) and answers the octets, or None when the id is not
# one of its own. The mail store registers one; downloads and Blob/get fall back to them.
DERIVED_BLOBS: list[Callable[[int, str], bytes | None]] = []


def derived_blob(account_pk: int, blob_id: str) -> bytes | None:
    for resolver in DERIVED_BLOBS:
        data = resolver(account_pk, blob_id)
        if data is not None:
            return data
    return None


def upload_ttl(limits) -> timedelta:
    # At least a minute: a zero or negative lifetime would lose every upload before its use.
    return max(limits.upload_ttl or timedelta(hours=1), timedelta(minutes=1))


def upload_expiry(limits):
    return timezone.now() + upload_ttl(limits)


def upload_owner() -> str:
    return f"upload:{secrets.token_hex(8)}"


def upload_check(principal, pk: int, limits):
    """The upload quota (uploadQuota bytes, maxUploadCount blobs per uploadTtl), checked by the
    store under its lock of the account; none with `unlimitedUploads`."""
    if principal.has("unlimitedUploads"):
        return None

    def check(size: int) -> None:
        ttl = upload_ttl(limits)
        count, used = blobs.window_usage(pk, blobs.UPLOAD, timezone.now() - ttl)
        if count + 1 > limits.max_upload_count or used + size > limits.upload_quota:
            raise blobs.WindowExceeded(
                f"The upload quota ({limits.max_upload_count} blobs, {limits.upload_quota} bytes per "
                f"{int(ttl.total_seconds())} seconds) is exhausted.", retry_after=int(ttl.total_seconds()))

    return check


def account_pk(ctx: Context, args: dict, key: str = "accountId") -> int:
    """The account a call acts on; the engine has checked accountId already (the caller's own,
    or any with `impersonate`)."""
    value = args.get(key)
    if value is None:
        raise invalid_arguments(f'The "{key}" argument is required.')
    pk = ids.decode(value) if isinstance(value, str) else None
    if pk is None:
        raise MethodError("accountNotFound", "The account id is not valid.")
    return pk


def _set_error(type: str, description: str, **extra) -> dict:
    return {"type": type, "description": description, **extra}


def _id_list(args: dict, name: str, limit: int) -> list[str]:
    value = args.get(name)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid_arguments(f'"{name}" must be an array of ids.')
    if len(value) > limit:
        raise MethodError("requestTooLarge", f"At most {limit} ids may be given.")
    return value


def _range(spec: dict, where: str) -> tuple[int, int | None]:
    offset, length = spec.get("offset"), spec.get("length")
    for name, value in (("offset", offset), ("length", length)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or not 0 <= value <= MAX_UNSIGNED_INT):
            raise ValueError(f"{where}{name} must be an unsigned integer.")
    offset = offset or 0
    return offset, None if length is None else offset + length


# --- Blob/upload (RFC 9404 §4.1) -------------------------------------------------------------
@method("Blob/upload", BLOB, account_optional=False, transactional=False)
def blob_upload(ctx: Context, args: dict) -> dict:
    ctx.require("jmapBlobUpload")
    pk = account_pk(ctx, args)
    create = args.get("create")
    if not isinstance(create, dict):
        raise invalid_arguments('"create" must be an object.')
    if len(create) > ctx.limits.set_max_objects:
        raise MethodError("requestTooLarge", f"At most {ctx.limits.set_max_objects} blobs may be created at once.")
    limit = max_size_blob_set(ctx.limits)
    created, not_created = {}, {}
    for cid, obj in create.items():
        check = upload_check(ctx.principal, pk, ctx.limits)
        try:
            parts, total = _sources(ctx, pk, obj, created, limit)
            if check is not None:
                # Before spooling: past the quota, each creation costs one query, not a copy
                # of up to maxSizeBlobSet bytes written and thrown away (500 per call).
                check(total)
        except _Refused as exc:
            not_created[cid] = exc.error
            continue
        except blobs.WindowExceeded as exc:
            not_created[cid] = _set_error("overQuota", str(exc))
            continue
        try:
            view = blobs.ingest(pk, blobs.spool(parts, limit), blobs.UPLOAD, upload_owner(),
                                upload_expiry(ctx.limits), check=check)
        except blobs.TooLarge:
            not_created[cid] = _set_error("tooLarge", f"The blob would be larger than {limit} bytes.", maxSize=limit)
            continue
        except (blobs.OverQuota, blobs.WindowExceeded) as exc:
            not_created[cid] = _set_error("overQuota", str(exc))
            continue
        except blobs.NotFound as exc:
            not_created[cid] = _set_error("notFound", str(exc))
            continue
        type_ = obj.get("type")
        created[cid] = {"id": view.jmap_id, "type": type_ if isinstance(type_, str) else None, "size": view.blob.size}
        ctx.created_ids[cid] = view.jmap_id
    return {"accountId": args["accountId"], "created": created or None, "notCreated": not_created or None}


class _Refused(Exception):
    def __init__(self, error: dict):
        super().__init__(error.get("description", ""))
        self.error = error


def _sources(ctx: Context, pk: int, obj, created: dict, limit: int):
    """The creation's bytes (the data sources in order, streamed) and their total size;
    _Refused with its SetError."""
    if not isinstance(obj, dict) or not isinstance(obj.get("data"), list) or not obj["data"]:
        raise _Refused(_set_error("invalidProperties", '"data" must be a non-empty array of data sources.',
                                  properties=["data"]))
    if "type" in obj and obj["type"] is not None and not isinstance(obj["type"], str):
        raise _Refused(_set_error("invalidProperties", '"type" must be a string.', properties=["type"]))
    sources = obj["data"]
    if len(sources) > MAX_DATA_SOURCES:
        raise _Refused(_set_error("tooManyDataSources", f"At most {MAX_DATA_SOURCES} data sources are accepted.",
                                  maxDataSources=MAX_DATA_SOURCES))
    plan = []
    for i, source in enumerate(sources):
        where = f"data/{i}/"
        if not isinstance(source, dict):
            raise _Refused(_set_error("invalidProperties", f"{where} must be an object.", properties=[f"data/{i}"]))
        kinds = [k for k in ("data:asText", "data:asBase64", "blobId") if k in source]
        if len(kinds) != 1 or set(source) - {kinds[0], "offset", "length"} or (
                kinds[0] != "blobId" and ({"offset", "length"} & set(source))):
            raise _Refused(_set_error("invalidProperties",
                                      f"{where} must hold exactly one of data:asText, data:asBase64 or blobId "
                                      "(offset and length only with blobId).", properties=[f"data/{i}"]))
        kind = kinds[0]
        value = source[kind]
        if not isinstance(value, str):
            raise _Refused(_set_error("invalidProperties", f"{where}{kind} must be a string.",
                                      properties=[f"data/{i}"]))
        if kind == "data:asText":
            plan.append(value.encode("utf-8"))
        elif kind == "data:asBase64":
            try:
                plan.append(base64.b64decode(value, validate=True))
            except (binascii.Error, ValueError):
                raise _Refused(_set_error("invalidProperties", f"{where}data:asBase64 is not valid base64.",
                                          properties=[f"data/{i}"])) from None
        else:
            try:
                start, end = _range(source, where)
            except ValueError as exc:
                raise _Refused(_set_error("invalidProperties", str(exc), properties=[f"data/{i}"])) from None
            blob_id = value
            if blob_id.startswith("#"):
                ref = created.get(blob_id[1:])
                blob_id = ref["id"] if ref else ctx.created_ids.get(blob_id[1:], "")
            view = blobs.resolve(pk, [blob_id]).get(blob_id)
            derived = derived_blob(pk, blob_id) if view is None else None
            if view is None and derived is None:
                raise _Refused(_set_error("notFound", f"Blob {value} not found.", notFound=[value]))
            size = view.blob.size if view is not None else len(derived)
            if start > size or (end is not None and end > size):
                raise _Refused(_set_error("invalidProperties", f"{where} offset and length reach past the end of "
                                          f"blob {value} ({size} bytes).", properties=[f"data/{i}"]))
            plan.append((view.blob, start, end) if view is not None else derived[start:end])
    total = sum(len(p) if isinstance(p, bytes) else (p[2] if p[2] is not None else p[0].size) - p[1] for p in plan)
    if total > limit:
        raise _Refused(_set_error("tooLarge", f"The blob would be larger than {limit} bytes.", maxSize=limit))

    def stream():
        for part in plan:
            if isinstance(part, bytes):
                yield part
            else:
                yield from blobs.chunks(*part)

    return stream(), total


# --- Blob/get (RFC 9404 §4.2) ----------------------------------------------------------------
@method("Blob/get", BLOB, account_optional=False, transactional=False)
def blob_get(ctx: Context, args: dict) -> dict:
    ctx.require("jmapBlobGet")
    pk = account_pk(ctx, args)
    wanted = _id_list(args, "ids", ctx.limits.get_max_results)
    props = args.get("properties")
    if props is None:
        props = ["data", "size"]  # RFC 9404 §4.2
    if not isinstance(props, list) or not all(isinstance(p, str) for p in props):
        raise invalid_arguments('"properties" must be an array of property names.')
    unknown = [p for p in props if p not in GET_PROPERTIES]
    if unknown:
        raise invalid_arguments(f"Unknown property {unknown[0]}.")
    try:
        start, end = _range(args, "")
    except ValueError as exc:
        raise invalid_arguments(str(exc)) from None
    found = blobs.resolve(pk, [ctx.resolve_creation_id(b) or "" for b in wanted])
    listed, not_found = [], []
    for asked in wanted:
        blob_id = ctx.resolve_creation_id(asked) or ""
        view = found.get(blob_id)
        if view is not None:
            listed.append(_blob_object(view.jmap_id, view.blob.size, lambda a, b, blob=view.blob: blobs.read(blob, a, b),
                                       props, start, end))
            continue
        # A body part of an email (its derived blobId, RFC 8621 §4.1.4) reads like any blob.
        data = derived_blob(pk, blob_id)
        if data is None:
            not_found.append(asked)
            continue
        listed.append(_blob_object(blob_id, len(data), lambda a, b, data=data: data[a:b], props, start, end))
    return {"accountId": args["accountId"], "list": listed, "notFound": not_found}


def _blob_object(blob_id: str, size: int, read: Callable[[int, int], bytes], props: list[str], start: int,
                 end: int | None) -> dict:
    out = {"id": blob_id}
    if "size" in props:
        out["size"] = size
    stop = size if end is None else min(end, size)
    truncated = start > size or (end is not None and end > size)
    needs_bytes = any(p.startswith("data") or p.startswith("digest:") for p in props)
    data = read(start, stop) if needs_bytes and start < stop else b""
    text = None
    if {"data", "data:asText"} & set(props):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
    if "data:asText" in props:
        out["data:asText"] = text
    if "data:asBase64" in props or ("data" in props and text is None):
        out["data:asBase64"] = base64.b64encode(data).decode()
    if "data" in props and text is not None:
        out["data:asText"] = text
    if "data:asText" in props and text is None:
        out["isEncodingProblem"] = True
    if truncated:
        out["isTruncated"] = True
    for name, algorithm in DIGESTS.items():
        if f"digest:{name}" in props:
            out[f"digest:{name}"] = base64.b64encode(algorithm(data).digest()).decode()
    return out


# --- Blob/lookup (RFC 9404 §4.3) -------------------------------------------------------------
@method("Blob/lookup", BLOB, account_optional=False, transactional=False)
def blob_lookup(ctx: Context, args: dict) -> dict:
    ctx.require("jmapBlobLookup")
    pk = account_pk(ctx, args)
    type_names = args.get("typeNames")
    if not isinstance(type_names, list) or not all(isinstance(t, str) for t in type_names):
        raise invalid_arguments('"typeNames" must be an array of data type names.')
    unknown = [t for t in type_names if t not in blobs.DATA_TYPES]
    if unknown:
        raise MethodError("unknownDataType", f"Unknown data type {unknown[0]}.")
    wanted = _id_list(args, "ids", ctx.limits.get_max_results)
    types = [blobs.DATA_TYPES[t] for t in type_names]
    found = blobs.resolve(pk, [ctx.resolve_creation_id(b) or "" for b in wanted])
    owners = blobs.holders(pk, list(found), {t.owner_kind for t in types}) if types else {}
    listed, not_found = [], []
    for asked in wanted:
        blob_id = ctx.resolve_creation_id(asked) or ""
        if blob_id not in found:
            not_found.append(asked)
            continue
        held = owners.get(blob_id, {})
        listed.append({"id": blob_id, "matchedIds": {
            t.name: t.to_jmap_ids(held[t.owner_kind]) if held.get(t.owner_kind) else [] for t in types}})
    return {"accountId": args["accountId"], "list": listed, "notFound": not_found}


# --- Blob/copy (RFC 8620 §6.3) ---------------------------------------------------------------
# RFC 8620 §6.3 defines Blob/copy in the core capability, and clients that follow it (jmaplib)
# name only core; the reference files it under the blob capability. Either will do.
@method("Blob/copy", (CORE, BLOB), account_optional=False, transactional=False)
def blob_copy(ctx: Context, args: dict) -> dict:
    ctx.require("jmapBlobCopy")
    to_pk = account_pk(ctx, args)
    from_value = args.get("fromAccountId")
    from_pk = ids.decode(from_value) if isinstance(from_value, str) else None
    # The same rule as the engine's for accountId: the caller's own account, or any existing one
    # with `impersonate`. Another account's blobs are, to anyone else, simply not there.
    if from_pk is None or (from_pk != ctx.principal.account_id and not (
            ctx.principal.has("impersonate") and Account.objects.filter(pk=from_pk).exists())):
        raise MethodError("fromAccountNotFound", "The fromAccountId does not exist or is not yours.")
    wanted = _id_list(args, "blobIds", ctx.limits.set_max_objects)
    copied, not_copied = {}, {}
    for blob_id in wanted:
        try:
            derived = derived_blob(from_pk, blob_id) if blobs.resolve(from_pk, [blob_id]).get(blob_id) is None else None
            if derived is not None:
                # A body part becomes content of its own in the target account, under its quota.
                view = blobs.ingest(to_pk, blobs.spool_bytes(derived), blobs.UPLOAD, upload_owner(),
                                    upload_expiry(ctx.limits))
            else:
                view = blobs.copy(from_pk, to_pk, blob_id, blobs.UPLOAD, upload_owner(), upload_expiry(ctx.limits))
        except blobs.NotFound:
            not_copied[blob_id] = _set_error("notFound", f"Blob {blob_id} not found.")
        except blobs.OverQuota as exc:
            not_copied[blob_id] = _set_error("overQuota", str(exc))
        else:
            copied[blob_id] = view.jmap_id
    return {"fromAccountId": from_value, "accountId": args["accountId"], "copied": copied or None,
            "notCopied": not_copied or None}
