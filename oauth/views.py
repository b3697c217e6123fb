"""The OAuth 2.0 / OpenID Connect endpoints: thin views over oauth.services."""
from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import unquote

from django.core.exceptions import BadRequest, SuspiciousOperation
from django.http import JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt

from accounts import login as account_login
from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from network.drf import PROBLEM, ApiView
from network.endpoint import auth_problem, client_ip, endpoint, public_base
from stalwart_site.csp import strict_csp
from stalwart_site.http import CORS
from stalwart_site import untrusted
from stalwart_site.problem import problem

from . import services
from .services import SCOPES, OAuthError



def _json(data, status=200, *, no_store=False, cors=False) -> JsonResponse:
    response = JsonResponse(data, status=status, json_dumps_params={"separators": (",", ":")})
    if no_store:
        # RFC 6749 §5.1: responses carrying tokens or codes are not cached.
        response["Cache-Control"] = "no-store"
        response["Pragma"] = "no-cache"
    if cors:
        for name, value in CORS.items():
            response[name] = value
    return response


def oauth_error(exc: OAuthError) -> JsonResponse:
    body = {"error": exc.error}
    if exc.description:
        body["error_description"] = exc.description
    response = _json(body, exc.status, no_store=True)
    if exc.status == 401:
        response["WWW-Authenticate"] = 'Basic realm="Stalwart Server"'
    return response


def _form(request, limit: int = 4096) -> dict:
    """The form parameters of an OAuth request (RFC 6749 §3.2, §4.1.3): urlencoded (or
    multipart), each at most once, within `limit` bytes; anything else is invalid_request."""
    ctype = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if ctype not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise OAuthError("invalid_request", "The body must be application/x-www-form-urlencoded.")
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise OAuthError("invalid_request", "The Content-Length header is malformed.") from None
    try:
        # A chunked body has no Content-Length: its size is known only once read.
        too_large = length > limit or len(request.body) > limit
    except SuspiciousOperation:
        too_large = True
    if too_large:
        raise OAuthError("invalid_request", "The request body is too large.")
    try:
        # Django refuses a charset other than UTF-8 (BadRequest), a multipart body without or
        # with a broken boundary, and too many fields (SuspiciousOperation).
        items = list(request.POST.lists())
    except (BadRequest, SuspiciousOperation, MultiPartParserError, UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_request", "The request body is not a valid form.") from None
    form = {}
    for key, values in items:
        if len(values) > 1:
            raise OAuthError("invalid_request", f"The parameter {key[:100]} is repeated.")
        if "\x00" in key or "\x00" in values[0]:
            raise OAuthError("invalid_request", "Parameters may not contain NUL characters.")
        form[key] = values[0]
    return form


def _client_credentials(request, form) -> tuple[str | None, str | None]:
    client_id, secret = form.get("client_id"), form.get("client_secret")
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header[:6].lower() == "basic ":
        try:
            user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise OAuthError("invalid_client", "Malformed Basic credentials.", 401) from None
        user, password = unquote(user), unquote(password)
        if "\x00" in user or "\x00" in password:
            raise OAuthError("invalid_client", "Malformed Basic credentials.", 401)
        client_id, secret = client_id or user, secret or password
    return client_id, secret


def _failed(request, exc: OAuthError, client_id: str | None):
    """The answer to a failed token or device request; a failed authentication (a wrong client
    secret, a guessed code) counts toward authBanRate, and the one that bans answers 429."""
    if exc.counts_towards_ban and not isinstance(
            account_login.count_failure(account_login.AuthFailed(), client_ip(request), client_id),
            account_login.AuthFailed):
        return auth_problem(account_login.Banned())
    return oauth_error(exc)


# --- token endpoint -------------------------------------------------------------------------
GRANT_DEVICE = "urn:ietf:params:oauth:grant-type:device_code"


@endpoint("POST", options="cors")
def token(request):
    client_id = None
    try:
        form = _form(request)
        grant = (form.get("grant_type") or "").strip()
        client_id, secret = _client_credentials(request, form)
        if grant == "authorization_code":
            body = services.exchange_code(form.get("code"), client_id, form.get("redirect_uri"),
                                          form.get("code_verifier"), secret, issuer=public_base(request))
        elif grant == "refresh_token":
            body = services.refresh_tokens(form.get("refresh_token"), client_id, secret)
        elif grant == GRANT_DEVICE:
            # RFC 8628 §3.4: a confidential client authenticates as at any token request.
            services.authenticate_client(client_id, secret)
            body = services.poll_device(form.get("device_code"), client_id, issuer=public_base(request))
        elif not grant:
            raise OAuthError("invalid_request", "grant_type is required.")
        else:
            raise OAuthError("unsupported_grant_type", f"The grant type {grant[:100]} is not supported.")
    except OAuthError as exc:
        return _failed(request, exc, client_id)
    return _json(body, no_store=True)


@endpoint("POST", options="cors")
def device(request):
    client_id = None
    try:
        form = _form(request)
        client_id, secret = _client_credentials(request, form)
        # RFC 8628 §3.1: a confidential client authenticates (public and unknown ones pass).
        services.authenticate_client(client_id, secret)
        start = services.start_device_flow(client_id or "", form.get("scope", ""), form.get("nonce", ""))
    except OAuthError as exc:
        return _failed(request, exc, client_id)
    base = public_base(request)
    return _json({
        "device_code": start.device_code, "user_code": start.user_code,
        "verification_uri": f"{base}/device",
        "verification_uri_complete": f"{base}/device/?code={start.user_code}",
        "expires_in": start.expires_in, "interval": services.DEVICE_INTERVAL,
    }, no_store=True)


# --- /api/auth: the login and device pages post here ----------------------------------------
API_AUTH_MAX_BODY = 1024 * 1024  # the reference's limit


# The longest value any field of /api/auth may carry; the body as a whole has the limit above.
API_AUTH_MAX_FIELD = 4096


class JsonString(serializers.CharField):
    """A JSON string exactly as sent: DRF's CharField would take 1 for "1" and trim a password's
    spaces. NUL and lone surrogates are refused by CharField's own validators (they cannot be
    stored nor hashed); null is as good as absent."""

    def __init__(self, **kwargs):
        kwargs = {"required": False, "allow_blank": True, "allow_null": True, "trim_whitespace": False,
                  "max_length": API_AUTH_MAX_FIELD, **kwargs}
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class AuthRequestSerializer(serializers.Serializer):
    """The body the login and device pages post. It checks the shape (the type, every value a
    string of bounded length); what the values mean is checked in the view, in the reference's
    order (a code request's client and redirect URI before the password)."""

    type = serializers.ChoiceField(["authCode", "authDevice", "denyDevice"])
    accountName = JsonString()
    accountSecret = JsonString()
    mfaToken = JsonString()
    clientId = JsonString()
    redirectUri = JsonString()
    code = JsonString(help_text="The device flow's user code.")
    scope = JsonString()
    nonce = JsonString()
    codeChallenge = JsonString()
    codeChallengeMethod = JsonString()
    state = JsonString()


def first_error(errors) -> str:
    """The first of a serializer's errors as one line: "accountName: Not a valid string."."""
    field, messages = next(iter(errors.items()))
    message = messages[0] if isinstance(messages, list) and messages else messages
    return str(message) if field == "non_field_errors" else f"{field}: {message}"


class AuthResponseSerializer(serializers.Serializer):
    type = serializers.ChoiceField(["authenticated", "verified", "denied", "mfaRequired", "failure"])
    client_code = serializers.CharField(required=False)
    iss = serializers.CharField(required=False)


class ApiAuthView(ApiView):
    """POST /api/auth. DRF's parsers are not used: the body is read as untrusted JSON below, with
    the reference's limit and errors (depth, duplicate keys, size), then AuthRequestSerializer
    validates it; a refusal of either is a 400 problem+json naming the field."""

    authentication_classes: list = []

    @extend_schema(summary="Sign in from the login or device page",
                   description="Checks the account's credentials and returns an authorization code (authCode), or "
                               "approves or denies a device (authDevice, denyDevice).",
                   request=AuthRequestSerializer,
                   responses={200: AuthResponseSerializer, 400: PROBLEM}, auth=[])
    def post(self, request):
        return api_auth_answer(request._request)


api_auth = ApiAuthView.as_view()


def api_auth_answer(request):
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return problem(400, "The Content-Length header is malformed.", title="Invalid parameters")
    if length > API_AUTH_MAX_BODY:
        return problem(400, "The request body is too large.", title="Invalid parameters")
    try:
        if len(request.body) > API_AUTH_MAX_BODY:  # a chunked body, sent without its length
            return problem(400, "The request body is too large.", title="Invalid parameters")
        body = untrusted.loads(request.body or b"{}")
    except SuspiciousOperation:  # a body larger than Django accepts, sent without its length
        return problem(400, "The request body is too large.", title="Invalid parameters")
    except (ValueError, UnicodeError) as exc:  # UntrustedJSONError is a ValueError
        detail = str(exc)[:200]
        return problem(400, detail, title="Invalid parameters")
    request_body = AuthRequestSerializer(data=body)
    if not request_body.is_valid():
        return problem(400, first_error(request_body.errors), title="Invalid parameters", errors=request_body.errors)
    body = dict(request_body.validated_data)
    kind = body["type"]
    if kind == "authCode":
        try:
            _check_code_request(body)
        except OAuthError as exc:
            return problem(400, exc.description or exc.error, title="Invalid parameters")
    try:
        result = account_login.authenticate(body.get("accountName") or "", body.get("accountSecret") or "",
                                               client_ip(request), otp=body.get("mfaToken"))
    except account_login.MfaRequired:
        return _json({"type": "mfaRequired"}, no_store=True)
    except account_login.DirectoryDown as exc:
        # Not a wrong password: the sign-in may succeed in a moment (RFC 6749 §4.1.2.1).
        response = oauth_error(OAuthError("temporarily_unavailable", str(exc), 503))
        response["Retry-After"] = str(exc.retry_after)
        response._has_been_logged = True  # the outage is logged once, where it starts
        return response
    except account_login.AuthError:
        return _json({"type": "failure"}, no_store=True)
    account = result.account
    account._permission_set = result.permissions
    if kind in ("authDevice", "denyDevice"):
        ok = services.decide_device(body.get("code") or "", account, approve=kind == "authDevice",
                                    credential=result.credential)
        if not ok:
            # A user code is short (RFC 8628 §5.1 asks to limit guesses): an unknown one is a failure.
            account_login.count_failure(account_login.AuthFailed(), client_ip(request), account.email_address)
        return _json({"type": ("verified" if kind == "authDevice" else "denied") if ok else "failure"}, no_store=True)
    try:
        client = services.client_for_flow(body["clientId"], body["redirectUri"], account)
        if client.client_type == client.CLIENT_PUBLIC and not body.get("codeChallenge"):
            raise OAuthError("invalid_request", "Public clients must use PKCE (S256).")
        code = services.create_code(account, client, body["redirectUri"], services.valid_scope(body.get("scope")),
                                    body.get("nonce") or "", body.get("codeChallenge") or "",
                                    body.get("codeChallengeMethod") or "", credential=result.credential)
    except OAuthError as exc:
        return problem(400, exc.description or exc.error, title="Invalid parameters")
    return _json({"type": "authenticated", "client_code": code, "iss": public_base(request)}, no_store=True)


def _check_code_request(body: dict) -> None:
    redirect = body.get("redirectUri") or ""
    if not body.get("clientId") or len(body["clientId"]) > services.MAX_CLIENT_ID:
        raise OAuthError("invalid_request", "clientId is missing or too long.")
    if len(body.get("nonce") or "") > services.MAX_NONCE:
        raise OAuthError("invalid_request", f"nonce may have at most {services.MAX_NONCE} characters.")
    if not redirect:
        raise OAuthError("invalid_request", "redirectUri is required.")
    # Before the password, so that a refused destination costs no login; client_for_flow checks
    # it again with the rest of the client rules.
    services.check_redirect(services.find_client(body["clientId"]), redirect)
    method = body.get("codeChallengeMethod") or ("plain" if body.get("codeChallenge") else "")
    if body.get("codeChallenge"):
        if method != "S256":
            raise OAuthError("invalid_request", "Only the S256 code challenge method is accepted.")
        # RFC 7636 §4.2: BASE64URL(SHA256(verifier)) is 43 characters of the unreserved set.
        if not re.fullmatch(r"[A-Za-z0-9_-]{43}", body["codeChallenge"]):
            raise OAuthError("invalid_request", "The code challenge is not an S256 challenge.")
        body["codeChallengeMethod"] = "S256"


# --- introspection and userinfo -------------------------------------------------------------
def directory_down():
    """The bearer's identity provider (the OIDC directory) could not be asked: a temporary
    failure, as on the sign-in endpoints, in OAuth's words."""
    response = oauth_error(OAuthError("temporarily_unavailable",
                                      "The directory service is temporarily unavailable; try again later.", 503))
    response["Retry-After"] = "30"
    response._has_been_logged = True  # the outage is logged once, where it starts
    return response


@endpoint("POST", options="cors", auth=True, outage=directory_down)
def introspect(request):
    principal = request.principal
    if not principal.has("sysOAuthClientGet"):
        # RFC 7662 §4: only authorised callers may learn about tokens.
        return problem(403, "Introspection needs the sysOAuthClientGet permission.")
    try:
        form = _form(request)
    except OAuthError as exc:
        return oauth_error(exc)
    owner = services.token_owner(form.get("token", ""))
    if owner is None:
        return _json({"active": False}, no_store=True)
    kind, account, expires, issued, client, scope = owner
    # The expiry is counted from the issue time (two clock readings apart): whole seconds of
    # the lifetime, so that exp - iat is the configured lifetime exactly.
    iat = int(issued.timestamp())
    body = {"active": True, "token_type": "bearer" if kind == "access_token" else "refresh_token",
            "username": account.email_address, "sub": str(account.pk), "client_id": client.client_id,
            "exp": iat + round((expires - issued).total_seconds()), "iat": iat, "iss": public_base(request)}
    if scope:
        body["scope"] = scope
    return _json(body, no_store=True)


@endpoint("GET", "HEAD", "POST", options="cors", auth=True, outage=directory_down)  # OIDC Core §5.3.1: GET, POST
def userinfo(request):
    account = request.principal.account
    body = {"sub": str(account.pk), "preferred_username": account.email_address, "email": account.email_address,
            "email_verified": True}
    if account.description:
        body["name"] = account.description
    response = _json(body)
    response["Cache-Control"] = "no-cache"
    return response


@endpoint("GET", "HEAD", options="cors")
def jwks(request):
    return _json(services.jwks(), cors=True)


# --- discovery ------------------------------------------------------------------------------
def _metadata(request) -> dict:
    base = public_base(request)
    return {
        "issuer": base,
        "authorization_endpoint": f"{base}/login",
        "token_endpoint": f"{base}/auth/token",
        "device_authorization_endpoint": f"{base}/auth/device",
        "registration_endpoint": f"{base}/auth/register",
        "introspection_endpoint": f"{base}/auth/introspect",
        "userinfo_endpoint": f"{base}/auth/userinfo",
        "jwks_uri": f"{base}/auth/jwks.json",
        "grant_types_supported": ["authorization_code", "refresh_token", GRANT_DEVICE],
        "response_types_supported": ["code"],
        "scopes_supported": SCOPES,
        "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
        # Introspection takes the caller's own credentials (an access token, or an account's
        # Basic login or API key), never a client secret: RFC 8414 lists access token types here.
        "introspection_endpoint_auth_methods_supported": ["Bearer"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
    }


@endpoint("GET", "HEAD", options="cors")
def oauth_metadata(request):
    return _json(_metadata(request), cors=True)


@endpoint("GET", "HEAD", options="cors")
def openid_configuration(request):
    doc = _metadata(request)
    doc.update({
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [services.provider().signature_algorithm.upper()],
        "claims_supported": ["sub", "name", "preferred_username", "email", "email_verified"],
    })
    return _json(doc, cors=True)


@endpoint("GET", "HEAD", options="cors")
def protected_resource(request):
    base = public_base(request)
    return _json({"resource": base, "authorization_servers": [base], "scopes_supported": SCOPES,
                  "bearer_methods_supported": ["header"]}, cors=True)


# --- browser pages --------------------------------------------------------------------------
# Without JavaScript the form posts here (never a GET that would put the password in the URL and
# the access log): the page answers that it needs JavaScript and reads nothing of the body.
NEEDS_SCRIPT = "This page needs JavaScript to sign you in: enable it and try again."


def _code_page_context(request) -> tuple[dict, int]:
    """What the code page shows before sign-in: where the code will go, or why it will not."""
    client_id, redirect = request.GET.get("client_id", ""), request.GET.get("redirect_uri", "")
    if not client_id or not redirect:
        return {"refusal": "Start signing in from your application: this page needs a client_id and a redirect_uri."}, 400
    if len(client_id) > services.MAX_CLIENT_ID:
        return {"refusal": "The client id is too long."}, 400
    client = services.find_client(client_id)
    try:
        services.check_redirect(client, redirect)
    except OAuthError as exc:
        return {"refusal": exc.description}, 400
    registered = client is not None and not client.ephemeral
    return {"destination": services.redirect_destination(redirect),
            "client_name": (client.description or client.client_id) if registered else "",
            "registered": registered}, 200


@strict_csp
@csrf_exempt
def login_page(request, rest=""):
    context, status = _code_page_context(request)
    if request.method == "POST" and status == 200:
        context, status = {**context, "refusal": NEEDS_SCRIPT}, 400
    return render(request, "oauth/login.html", {"mode": "code", **context}, status=status)


@strict_csp
@csrf_exempt
def device_page(request, rest=""):
    if request.method == "POST":
        return render(request, "oauth/login.html", {"mode": "device", "refusal": NEEDS_SCRIPT}, status=400)
    return render(request, "oauth/login.html", {"mode": "device", "code": request.GET.get("code", "")})
