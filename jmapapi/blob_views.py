"""The upload and download endpoints of RFC 8620 §6.1 and §6.2.

Both go through the endpoint decorator (method rules, CORS, authentication, problem+json). The
upload body is streamed: read in chunks into the blob store's spool, hashed as it is written,
and refused as soon as it passes maxSizeUpload, whatever its Content-Length said.
"""
from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

from django.http import HttpResponse, JsonResponse, StreamingHttpResponse

from accounts.models import Account
from blobs import services as blobs
from network import endpoint
from registry import ids
from registry import services as registry_services
from stalwart_site.problem import problem

from . import inflight
from .blob_methods import derived_blob, max_size_upload, upload_check, upload_expiry, upload_owner
from .models import Jmap

SETTINGS_TYPES = ("Jmap", "SystemSettings")
LIMIT = "urn:ietf:params:jmap:error:limit"
CHUNK = 64 * 1024
# RFC 6838 §4.2 names, with optional parameters; anything else is served as octets.
# Around ";" only RFC 9110 OWS (space, tab): `\s` would let CR LF through into the header.
_MEDIA_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
                         r"([ \t]*;[ \t]*[A-Za-z0-9!#$&^_.+-]+=(\"[^\"\\\x00-\x1f\x7f]*\"|[A-Za-z0-9!#$&^_.+-]+))*\Z")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _account(request, account_id: str) -> int | None:
    """The account a blob URL names, if the caller may act on it (its own, or any existing one
    with `impersonate`, as in the JMAP engine); None answers 404 (no account is confirmed)."""
    pk = ids.decode(account_id)
    if pk is None:
        return None
    principal = request.principal
    if pk == principal.account_id:
        return pk
    if principal.has("impersonate") and Account.objects.filter(pk=pk).exists():
        return pk
    return None


def _limits() -> Jmap:
    return registry_services.current(Jmap)


def _media_type(value: str | None, default: str) -> str:
    if value and _MEDIA_TYPE.match(value.strip()):
        return value.strip()
    return default


# --- upload -------------------------------------------------------------------------------
@endpoint.endpoint("POST", options="cors", cors=True, auth=True, states=SETTINGS_TYPES,
                   refusal="The upload endpoint takes POST requests.")
def upload(request, account_id: str):
    principal = request.principal
    pk = _account(request, account_id)
    if pk is None:
        return problem(404, endpoint.NOT_FOUND)
    if not principal.has("jmapBlobUpload"):
        return problem(403, "You are not allowed to upload blobs.")
    limits = _limits()
    unlimited = principal.has("unlimitedUploads")
    max_size = None if unlimited else max_size_upload(limits)
    declared = request.META.get("CONTENT_LENGTH") or ""
    if not declared and request.META.get("HTTP_TRANSFER_ENCODING"):
        # Django reads a body without Content-Length as empty: a chunked upload would silently
        # become an empty blob.
        return problem(411, "An upload needs a Content-Length header.", title="Length Required")
    # isdigit() alone takes "²" (int() then fails) and other scripts' digits.
    if declared and not (declared.isascii() and declared.isdigit()):
        return problem(400, "Invalid Content-Length.", title="Invalid parameters")
    too_large = problem(400, f"The upload is larger than {max_size} bytes.", type=LIMIT, limit="maxSizeUpload")
    if max_size is not None and declared and int(declared) > max_size:
        return too_large
    check = upload_check(principal, pk, limits)
    if check is not None and declared and int(declared) > CHUNK:
        # Refused before the body is read: a client past its quota cannot make us spool and
        # store what is then thrown away. The store checks again under its lock; a small body
        # costs less to read than this query does on every upload.
        try:
            check(int(declared))
        except blobs.WindowExceeded as exc:
            return _window_exceeded(exc, limits)
    slot = None if unlimited else inflight.acquire("uploads", principal.account_id, limits.max_concurrent_uploads)
    if slot is False:
        return problem(400, "Too many concurrent uploads.", type=LIMIT, limit="maxConcurrentUpload")
    try:
        try:
            sp = blobs.spool(_body(request), max_size)
        except blobs.TooLarge:
            return too_large
        try:
            view = blobs.ingest(pk, sp, blobs.UPLOAD, upload_owner(), upload_expiry(limits), check=check)
        except blobs.OverQuota:
            return problem(403, "The account's storage quota would be exceeded.", title="Quota exceeded")
        except blobs.WindowExceeded as exc:
            return _window_exceeded(exc, limits)
        except blobs.NotFound:
            return problem(404, endpoint.NOT_FOUND)
    finally:
        if slot:
            inflight.release("uploads", principal.account_id)
    content_type = _media_type(request.META.get("CONTENT_TYPE"), "application/octet-stream")
    return JsonResponse({"accountId": ids.encode(pk), "blobId": view.jmap_id, "type": content_type,
                         "size": view.blob.size}, status=201)


def _window_exceeded(exc, limits):
    return problem(429, str(exc), title="Quota exceeded", headers={
        "Retry-After": str(exc.retry_after),
        "RateLimit-Policy": f'"blob-upload-files";q={limits.max_upload_count}, '
                            f'"blob-upload-bytes";q={limits.upload_quota};qu="content-bytes"'})


def _body(request):
    while True:
        chunk = request.read(CHUNK)
        if not chunk:
            return
        yield chunk


# --- download -----------------------------------------------------------------------------
@endpoint.endpoint("GET", "HEAD", options="cors", cors=True, auth=True, states=SETTINGS_TYPES,
                   refusal="The download endpoint takes GET requests.")
def download(request, account_id: str, blob_id: str, name: str):
    principal = request.principal
    pk = _account(request, account_id)
    view = blobs.resolve(pk, [blob_id]).get(blob_id) if pk is not None else None
    if not (principal.has("jmapBlobGet") or principal.has("fetchAnyBlob")):
        return problem(404, endpoint.NOT_FOUND)
    if view is None:
        data = derived_blob(pk, blob_id) if pk is not None else None
        if data is None:
            return problem(404, endpoint.NOT_FOUND)
        # A body part (its derived blobId), decoded on request, served as any blob.
        return _serve(request, len(data), blob_id, name, lambda a, b: iter((data[a:b],)))
    blob = view.blob
    return _serve(request, blob.size, view.jmap_id, name, lambda a, b: blobs.chunks(blob, a, b))


def _serve(request, size: int, blob_id: str, name: str, chunks):
    """The download response: whole, 304 on a matching ETag, or one byte range (206/416)."""
    etag = f'"{blob_id}"'
    headers = {
        "Content-Disposition": content_disposition(name),
        "Cache-Control": "private, immutable, max-age=31536000",
        "ETag": etag,
        "Accept-Ranges": "bytes",
        # The type is the client's (`accept`): never sniffed, never run as a page of ours.
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'",
    }
    if etag in [t.strip() for t in request.META.get("HTTP_IF_NONE_MATCH", "").split(",")]:
        response = HttpResponse(status=304)
        for key in ("Cache-Control", "ETag"):
            response[key] = headers[key]
        return response
    content_type = _media_type(request.GET.get("accept"), "application/octet-stream")
    start, end, status = 0, size, 200
    wanted = request.META.get("HTTP_RANGE")
    if wanted and (not request.META.get("HTTP_IF_RANGE") or request.META["HTTP_IF_RANGE"].strip() == etag):
        parsed = parse_range(wanted, size)
        if parsed == "unsatisfiable":
            return problem(416, "The requested range is not satisfiable.", title="Range Not Satisfiable",
                           headers={"Content-Range": f"bytes */{size}"})
        if parsed is not None:
            start, end = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    body = chunks(start, end) if request.method == "GET" else iter(())
    response = StreamingHttpResponse(body, status=status, content_type=content_type)
    response["Content-Length"] = str(end - start)
    for key, value in headers.items():
        response[key] = value
    return response


def parse_range(header: str, size: int):
    """(start, end) for one satisfiable byte range; None to ignore the header (several ranges or
    a malformed one: RFC 9110 §14.2 lets a server send the whole representation);
    "unsatisfiable" for a 416."""
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if len(first) > 20 or len(last) > 20:
        return "unsatisfiable"
    if not first:  # the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - n), size
    start = int(first)
    end = size if not last else int(last) + 1
    if last and int(last) < start:
        return None  # invalid: ignored (RFC 9110 §14.1.1)
    if start >= size:
        return "unsatisfiable"
    return start, min(end, size)


def content_disposition(name: str) -> str:
    """attachment with the name as a quoted ASCII fallback and RFC 8187 `filename*` (RFC 6266
    §4.3): control characters, quotes, backslashes and path separators never reach the header."""
    cleaned = "".join(" " if unicodedata.category(c)[0] == "C" else c for c in name)
    cleaned = cleaned.replace("/", "_").replace("\\", "_").strip().strip(".") or "download"
    cleaned = cleaned[:255]
    fallback = "".join(c if 0x20 <= ord(c) < 0x7f and c not in '"%' else "_" for c in cleaned)
    header = f'attachment; filename="{fallback}"'
    if fallback != cleaned:
        header += f"; filename*=UTF-8''{quote(cleaned, safe='')}"
    return header
