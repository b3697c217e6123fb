"""Client discovery (autoconfig, autodiscover, PACC), MTA-STS, the CalDAV/CardDAV redirects,
health and robots. Thin: parse the request, ask wellknown.services, wrap the answer."""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import defusedxml
import defusedxml.ElementTree as SafeET
from django.http import HttpResponse

from network.endpoint import ANY, endpoint, not_found, public_base
from stalwart_site.http import BodyError, read_body, with_cors
from stalwart_site.problem import problem

from . import services

XML = "application/xml; charset=utf-8"


# --- Thunderbird autoconfig -----------------------------------------------------------------
def _autoconfig(request, cors: bool) -> HttpResponse:
    system = services.system_settings()
    raw = request.GET.get("emailaddress")
    if raw is None:
        body = services.client_config(system)
    else:
        try:
            email, domain = services.parse_address(raw)
        except services.BadAddress as exc:
            response = problem(400, str(exc))
            return with_cors(response) if cors else response
        body = services.client_config(system, email, domain)
    response = HttpResponse(body, content_type=XML)
    return with_cors(response) if cors else response


@endpoint("GET", "HEAD")
def autoconfig(request):
    """/mail/config-v1.1.xml: no CORS headers (as the reference)."""
    return _autoconfig(request, cors=False)


@endpoint("GET", "HEAD", options="cors")
def autoconfig_well_known(request):
    """/.well-known/autoconfig/mail/config-v1.1.xml: with the permissive CORS headers."""
    return _autoconfig(request, cors=True)


@endpoint("GET", "HEAD", options="cors")
def mail_v1(request):
    """/.well-known/mail-v1.xml: the same document; CORS only on the preflight."""
    return _autoconfig(request, cors=False)


# --- Microsoft autodiscover -----------------------------------------------------------------
def _local(tag) -> str:
    return tag.rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""


def _namespace(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


class _BadRequest(Exception):
    pass


def _parse_autodiscover(body: bytes) -> tuple[str, bool]:
    """(address, is ActiveSync) of an autodiscover request; elements matched by local name."""
    if not body.strip():
        raise _BadRequest("The request body is empty.")
    try:
        # No DTD at all: no entity can be declared, so none is ever expanded or fetched.
        root = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException:
        raise _BadRequest("Document type declarations and entities are not accepted.") from None
    # LookupError: an XML declaration naming an encoding Python does not know.
    except (ET.ParseError, ValueError, UnicodeError, LookupError):
        raise _BadRequest("The request body is not well-formed XML.") from None
    if _local(root.tag) != "autodiscover":
        raise _BadRequest("The root element is not Autodiscover.")
    request_el = next((c for c in root if _local(c.tag) == "request"), None)
    if request_el is None:
        raise _BadRequest("The Request element is missing.")
    address = next((c for c in request_el if _local(c.tag) == "emailaddress"), None)
    if address is None or not (address.text or "").strip():
        raise _BadRequest("The EMailAddress element is missing or empty.")
    schema = next(((c.text or "").strip() for c in request_el if _local(c.tag) == "acceptableresponseschema"), "")
    active_sync = _namespace(root.tag) == services.MOBILESYNC_REQUEST or schema == services.MOBILESYNC_RESPONSE
    return address.text, active_sync


@endpoint("POST")
def autodiscover_xml(request):
    try:
        raw, active_sync = _parse_autodiscover(read_body(request, services.MAX_AUTODISCOVER_BODY))
        email, _domain = services.parse_address(raw)
    except (_BadRequest, BodyError, services.BadAddress) as exc:
        return problem(400, f"Failed to parse autodiscover request: {exc}")
    if active_sync:
        return HttpResponse(services.mobilesync_error(), content_type=XML)
    return HttpResponse(services.outlook_autodiscover(services.system_settings(), email), content_type=XML)


@endpoint(ANY)
def autodiscover_json(request, rest: str | None = None):
    """Autodiscover v2: a JSON pointer to the v1 (POX) endpoint, any method (spec §5); OPTIONS
    too is answered like GET (no preflight: the reference has none under /autodiscover/)."""
    raw = next((seg for seg in (rest or "").split("/") if "@" in seg), None)
    if raw is None:
        raw = request.GET.get("Email")
    if raw is None or "@" not in raw:
        return problem(400, "Missing domain in email address")
    try:
        services.parse_address(raw)
    except services.BadAddress as exc:
        return problem(400, str(exc))
    protocol = request.GET.get("Protocol", "")
    if protocol.lower() == "autodiscoverv1":
        # Like every advertised URL (the reference writes https://{hostname}, which a client cannot
        # reach when this server listens elsewhere): publicUrl when set, else where it was asked.
        body = {"Protocol": "AutodiscoverV1", "Url": f"{public_base(request)}/autodiscover/autodiscover.xml"}
        return HttpResponse(json.dumps(body), content_type="application/json; charset=utf-8")
    shown = re.sub(r"[^A-Za-z0-9]", "", protocol)[:64]
    body = {"ErrorCode": "InvalidProtocol",
            "ErrorMessage": f"The given protocol value '{shown}' is invalid. Supported values are 'AutodiscoverV1'"}
    return HttpResponse(json.dumps(body), status=400, content_type="application/json; charset=utf-8")


# --- PACC -----------------------------------------------------------------------------------
@endpoint("GET", "HEAD", options="cors")
def user_agent_configuration(request):
    body = services.pacc_document(services.system_settings(), public_base(request))
    return with_cors(HttpResponse(json.dumps(body), content_type="application/json"))


# --- MTA-STS --------------------------------------------------------------------------------
@endpoint("GET", "HEAD", options="cors")
def mta_sts(request):
    policy = services.current_policy()
    if policy is None:
        return problem(404, "No MTA-STS policy is published.")
    return HttpResponse(policy.text, content_type="text/plain")


# --- redirects and the rest of /.well-known/ ------------------------------------------------
def _dav_redirect(target: str):
    # Any method, OPTIONS and PROPFIND included, is redirected (RFC 6764 §5): a client probes
    # the well-known URI with whatever it is about to send.
    @endpoint(ANY)
    def view(request, rest: str | None = None):
        response = HttpResponse(status=307)
        response["Location"] = target
        response["Cache-Control"] = "no-cache"
        return response

    return view


caldav = _dav_redirect("/dav/cal")
carddav = _dav_redirect("/dav/card")


# Any other /.well-known/ path: OPTIONS is the CORS preflight, the rest is not found.
well_known_other = not_found(options="cors")


# --- health and robots ----------------------------------------------------------------------
@endpoint("GET", "HEAD")
def robots(request):
    return HttpResponse("User-agent: *\nDisallow: /\n", content_type="text/plain")


@endpoint("GET", "HEAD")
def live(request):
    return problem(200, "OK", title="OK")


@endpoint("GET", "HEAD")
def ready(request):
    down = services.readiness()
    if down:
        return problem(503, "; ".join(down))
    return problem(200, "OK", title="OK")
