"""POST /form: the contact form endpoint. Thin: routing rules and body parsing here, the checks
and the mail in contactform.services.submit()."""
from __future__ import annotations

import io
import json
from urllib.parse import parse_qsl

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpResponse
from django.http.multipartparser import MultiPartParser, MultiPartParserError
from django.utils.http import parse_header_parameters

from network.endpoint import ANY, client_ip, endpoint
from stalwart_site.http import BodyError, read_body
from stalwart_site.problem import problem

from . import services

MULTIPART = "multipart/form-data"
URLENCODED = "application/x-www-form-urlencoded"


class BadForm(Exception):
    """A body that is not a form we can read (400 "Invalid parameters")."""


def read_fields(request, limit: int) -> list[tuple[str, str]]:
    """The submitted fields as (name, value) pairs in submission order, duplicates kept
    (multipart duplicates are grouped under the first occurrence, as Django's parser gives them).
    Uploaded files are ignored."""
    content_type = request.META.get("CONTENT_TYPE", "").strip()
    if not content_type:
        raise BadForm("A Content-Type header is required.")
    media, params = parse_header_parameters(content_type)
    media = media.lower()
    kind, _, subtype = media.partition("/")
    if not kind or not subtype or " " in media:
        raise BadForm(f"Content-Type {content_type!r} is not a media type.")
    if media not in (MULTIPART, URLENCODED):
        raise BadForm(f"The form must be sent as {URLENCODED} or {MULTIPART}, not {media}.")
    try:
        body = read_body(request, limit, "form")
    except BodyError as exc:
        raise BadForm(str(exc)) from None
    if media == URLENCODED:
        try:
            text = body.decode(params.get("charset") or "utf-8")
            return parse_qsl(text, keep_blank_values=True, errors="strict",
                             max_num_fields=settings.DATA_UPLOAD_MAX_NUMBER_FIELDS)
        except (UnicodeError, LookupError):
            raise BadForm("The form is not valid UTF-8 text.") from None
        except ValueError:
            raise BadForm("The form has too many fields.") from None
    boundary = params.get("boundary", "").encode("ascii", "replace")
    if not boundary:
        raise BadForm("The multipart Content-Type has no boundary.")
    # Django's parser takes a truncated or boundary-less body for an empty form: require the
    # closing delimiter, as every browser sends it.
    if not (body.startswith(b"--" + boundary) and b"--" + boundary + b"--" in body):
        raise BadForm("The multipart body is malformed (no opening or closing boundary).")
    meta = {**request.META, "CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body))}
    try:
        post, _files = MultiPartParser(meta, io.BytesIO(body), [_DiscardFiles()], "utf-8").parse()
    except (MultiPartParserError, RequestDataTooBig, TooManyFieldsSent, SuspiciousOperation, ValueError) as exc:
        raise BadForm(f"The multipart body is malformed: {exc}") from None
    return [(key, value) for key, values in post.lists() for value in values]


class _DiscardFiles(FileUploadHandler):
    """Uploaded files are not part of the mail: their bytes are dropped as they are parsed."""

    def receive_data_chunk(self, raw_data, start):
        return None

    def file_complete(self, file_size):
        return None


def _json(status: int, success: bool, details: str | None) -> HttpResponse:
    body = json.dumps({"data": {"success": success, "details": details}})
    return HttpResponse(body, status=status, content_type="application/json; charset=utf-8")


# Every method reaches the view (a disabled form is a 404 whatever the method); the endpoint's
# rules for an enabled form are _submit's. CSRF-exempt, as every endpoint: the form is posted
# cross-site from static websites, which can hold no CSRF token; nothing here uses cookies or a
# session, so there is nothing for a forged request to ride on.
@endpoint(ANY)
def form(request):
    settings_now = services.current()
    # A disabled form does not exist, whatever the method: checked before the endpoint's rules.
    if not settings_now.enable or not settings_now.deliver_to:
        return problem(404, "The requested resource does not exist on this server.")
    return _submit(request, settings_now)


# The answers carry the permissive CORS headers, so that a page on another origin can post with
# fetch() and read the outcome (no credentials are involved).
@endpoint("POST", options="cors", cors=True)
def _submit(request, settings_now):
    try:
        fields = read_fields(request, settings_now.max_size)
    except BadForm as exc:
        return problem(400, str(exc), title="Invalid parameters")
    result = services.submit(settings_now, fields, client_ip(request), request.META.get("REMOTE_PORT"))
    if result.kind == "limited":
        return problem(429, "Too many submissions from your address; try again in a few seconds.",
                       headers={"Retry-After": str(result.retry_after)})
    if result.kind == "honeypot":
        return problem(400, result.details, title="Invalid parameters")
    return _json(200 if result.success else 400, result.success, result.details)
