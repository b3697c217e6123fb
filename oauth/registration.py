"""POST /auth/register: dynamic client registration (RFC 7591), with the reference's rules.

- The body is a JSON object (whatever the Content-Type), at most 20 KiB. A body that is not a
  JSON object is a 400 problem+json; metadata that breaks a rule is a 400
  {"error", "error_description"} with invalid_redirect_uri or invalid_client_metadata, checked in
  the reference's order (oauth.clients.parse_registration).
- Public clients (token_endpoint_auth_method "none" or absent) may register anonymously while
  OidcProvider.anonymousClientRegistration is on (the default); otherwise, and always for
  confidential clients, the caller must authenticate (Basic, Bearer, API key: 401 if not) and
  hold oAuthClientRegistration (403 if not).
- Every accepted client is stored (oauth.clients explains why, where the reference gives public
  clients a stateless `swc1.` id), and a confidential client's secret is returned once, here.
- Anonymous registrations are capped per client address, because each one writes a row.
"""
from __future__ import annotations

import time

from django.core.cache import cache
from django.http import JsonResponse

from network.endpoint import authenticate, client_ip, endpoint
from registry.errors import SetError
from security import services as security
from stalwart_site import untrusted
from stalwart_site.problem import problem

from . import clients, services
from .views import directory_down

MAX_BODY = 20 * 1024
# Anonymous registrations per client address and window (oauth.clients stores every client).
ANONYMOUS_LIMIT = 20
ANONYMOUS_WINDOW = 3600


def _json(body: dict, status: int) -> JsonResponse:
    response = JsonResponse(body, status=status, json_dumps_params={"separators": (",", ":")})
    # RFC 7591 §3.2: the response may carry a secret.
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    return response


def _error(exc: clients.RegistrationError) -> JsonResponse:
    return _json({"error": exc.error, "error_description": exc.description}, 400)


def _anonymous_allowed(address: str | None) -> bool:
    """Count one anonymous registration from `address`; False once over the limit."""
    window = int(time.time() // ANONYMOUS_WINDOW)
    key = f"dcr-anonymous:{address or '-'}:{window}"
    if cache.add(key, 1, ANONYMOUS_WINDOW):
        return ANONYMOUS_LIMIT >= 1
    try:
        count = cache.incr(key)
    except ValueError:
        cache.add(key, 1, ANONYMOUS_WINDOW)
        count = 1
    return count <= ANONYMOUS_LIMIT


@endpoint("POST", options="bare", allow="POST", refusal="Client registration takes POST requests.",
          max_body=MAX_BODY, body_name="registration request")
def register(request):
    try:
        body = untrusted.loads(request.payload or b"")
    except untrusted.UntrustedJSONError as exc:
        if exc.reason in ("surrogate", "nul"):
            # Valid JSON whose metadata cannot be stored: a metadata error (RFC 7591 §3.2.2).
            return _error(clients.RegistrationError("invalid_client_metadata", str(exc)))
        detail = str(exc) if exc.reason == "depth" else "The body is not JSON."
        return problem(400, detail, title="Invalid parameters")
    if not isinstance(body, dict):
        return problem(400, "The body must be a JSON object of client metadata.", title="Invalid parameters")
    try:
        reg = clients.parse_registration(body)
    except clients.RegistrationError as exc:
        return _error(exc)

    address = client_ip(request)
    principal = None
    if reg.confidential or not services.provider().anonymous_client_registration:
        principal, error = authenticate(request)
        if error is not None and error.status_code == 503:
            return directory_down()
        if error is not None:
            return error
        if not principal.has("oAuthClientRegistration"):
            return problem(403, "Registering OAuth clients needs the oAuthClientRegistration permission.")
    else:
        if security.blocked_after_the_edge(address):
            return problem(429, "Too many requests from this address.", headers={"Retry-After": "60"})
        if not _anonymous_allowed(address):
            return problem(429, "Too many client registrations from this address; try again later.",
                           headers={"Retry-After": str(ANONYMOUS_WINDOW)})
    try:
        client, secret = clients.register_client(reg, principal, actor=f"anonymous registration from {address}")
    except SetError as exc:
        # Checked above already; a refusal here is a rule of the model the parser does not know.
        props = exc.messages_by_property()
        error = "invalid_redirect_uri" if "redirectUris" in props else "invalid_client_metadata"
        return _error(clients.RegistrationError(error, exc.description or exc.type))
    return _json(clients.registration_response(reg, client, secret), 201)
