"""The /api endpoints on Django REST framework, answering exactly as the plain endpoints do.

`ApiView` is an APIView whose every rule is network.endpoint's: the caller is authenticated
by `PrincipalAuthentication` (Basic, Bearer, API key, through the same verdict cache, rate-limit
charge and error responses), OPTIONS is the CORS preflight or an empty 204 (never DRF's
metadata document), a method the view does not take is a 405 problem+json, and every error,
DRF's own included, is problem+json. DRF adds no header a client did not get before (no Allow
on a 200, no Vary), and picks its one renderer whatever the Accept header says (never a 406).

What DRF brings: one class per endpoint whose methods, authentication and request and
response shapes drf-spectacular reads into /api/openapi.json, and serializers that describe
(and where a view uses them, validate) the bodies.
"""
from __future__ import annotations

from django.http import Http404, HttpResponse
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema
from drf_spectacular.views import SpectacularJSONAPIView
from rest_framework import exceptions, serializers
from rest_framework.authentication import BaseAuthentication
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.views import APIView

from stalwart_site.http import preflight
from stalwart_site.problem import problem

from . import endpoint


class ProblemSerializer(serializers.Serializer):
    """RFC 7807 problem details, the body of every error (application/problem+json)."""

    type = serializers.CharField()
    status = serializers.IntegerField()
    title = serializers.CharField(required=False)
    detail = serializers.CharField()


PROBLEM = OpenApiResponse(ProblemSerializer, description="RFC 7807 problem details (application/problem+json).")


class Refused(exceptions.APIException):
    """An answer already made (a problem+json response) that ends the request."""

    def __init__(self, response: HttpResponse):
        super().__init__(detail="refused")
        self.response = response


class PrincipalAuthentication(BaseAuthentication):
    """The caller's Principal (request.user) or the 401/403/429 problem of network.endpoint."""

    def authenticate(self, request):
        django_request = request._request
        principal, error = endpoint.authenticate(django_request)
        if error is not None:
            raise Refused(error)
        django_request.principal = principal
        return principal, None

    def authenticate_header(self, request):
        return endpoint.CHALLENGES


class PrincipalAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = PrincipalAuthentication
    name = ["basicAuth", "bearerAuth"]

    def get_security_requirement(self, auto_schema):
        # Either scheme, not both at once (one dict naming both would mean "and").
        return [{name: []} for name in self.name]

    def get_security_definition(self, auto_schema):
        return [{"type": "http", "scheme": "basic"},
                {"type": "http", "scheme": "bearer", "description": "An OAuth access token or an API key (API_…)."}]


class FirstRenderer(BaseContentNegotiation):
    """The one JSON renderer, whatever Accept says: the plain endpoints never answered 406."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def exception_handler(exc, context):
    """Every error as problem+json (DRF's own would be {"detail": …})."""
    if isinstance(exc, Refused):
        return exc.response
    if isinstance(exc, exceptions.MethodNotAllowed):
        view = context["view"]
        allowed = view.allow_header()
        return problem(405, f"This endpoint takes {allowed} requests.", headers={"Allow": allowed})
    if isinstance(exc, Http404):
        return problem(404, "The requested resource does not exist on this server.")
    if isinstance(exc, exceptions.APIException):
        detail = exc.detail if isinstance(exc.detail, str) else "The request is not valid."
        errors = {} if isinstance(exc.detail, str) else {"errors": exc.get_full_details()}
        return problem(exc.status_code, str(detail), **errors)
    return None


def same_as_get():
    """A handler answering like GET, for endpoints that take any method (as the reference's do);
    left out of the OpenAPI document, which describes the GET."""
    @extend_schema(exclude=True)
    def handler(self, request, *args, **kwargs):
        return self.get(request, *args, **kwargs)
    return handler


# The same view under paths that only answer 404 (no address): not worth an operation each.
UNDOCUMENTED = {"/api/discover", "/api/discover/"}


def documented_endpoints(endpoints, **kwargs):
    """drf-spectacular's preprocessing hook: the endpoints the OpenAPI document describes."""
    return [e for e in endpoints if e[0] not in UNDOCUMENTED]


class ApiView(APIView):
    """A machine endpoint on DRF. `preflight` is "cors" (the CORS preflight), "bare" (empty 204)
    or None (OPTIONS is refused like any method the view lacks). The states the view's settings
    are keyed on come from the request context, read once at the edge."""

    authentication_classes = [PrincipalAuthentication]
    permission_classes: list = []
    content_negotiation_class = FirstRenderer
    preflight: str | None = None
    # The Allow header of a 405, when it says more (or less) than the view's methods.
    allow: str | None = None

    def get_exception_handler(self):
        return exception_handler

    @property
    def default_response_headers(self):
        return {}

    def allow_header(self) -> str:
        return self.allow or ", ".join(m for m in self.allowed_methods if m != "OPTIONS" or self.preflight)

    def perform_authentication(self, request):
        # A preflight carries no credentials (browsers never send them on one).
        if request.method == "OPTIONS" and self.preflight:
            return
        # A method the view does not take is refused before anyone is asked to authenticate.
        if not hasattr(self, request.method.lower()):
            raise exceptions.MethodNotAllowed(request.method)
        super().perform_authentication(request)

    def options(self, request, *args, **kwargs):
        if self.preflight == "cors":
            return preflight(request)
        if self.preflight == "bare":
            return HttpResponse(status=204)
        raise exceptions.MethodNotAllowed(request.method)


class OpenApiView(ApiView, SpectacularJSONAPIView):
    """/api/openapi.json: drf-spectacular's document under the rules of every /api endpoint (OPTIONS
    an empty 204, another method a 405 problem+json). Public, like the schema it describes."""

    authentication_classes: list = []
    preflight = "bare"
