"""Counts every answered request in stalwart_http_requests_total{endpoint, status}, and traces it
for the live tracing streams when anyone watches (telemetry.trace)."""
import time

from django.conf import settings
from django_prometheus.middleware import PrometheusAfterMiddleware
from django_prometheus.utils import Time

from . import trace
from .metrics import count_request

# WebDAV methods, each its own trace event type (webdav.propfind, …): a fixed set, never what a
# client sends.
DAV_METHODS = frozenset({"PROPFIND", "PROPPATCH", "GET", "HEAD", "REPORT", "MKCOL", "MKCALENDAR", "DELETE",
                         "PUT", "POST", "PATCH", "COPY", "MOVE", "LOCK", "UNLOCK", "ACL", "OPTIONS"})


class RequestMetricsMiddleware:
    """The endpoint label is the URL route that matched ("/jmap/", "/api/schema/<str:digest>"),
    "static" for files WhiteNoise serves, "unmatched" otherwise: never the raw path, which any
    client could make unique. It sits near the top of MIDDLEWARE, so it sees what answers early
    (static files, CSRF refusals) as well as the views."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.static_prefix = settings.STATIC_URL if settings.STATIC_URL.startswith("/") else "/" + settings.STATIC_URL

    def __call__(self, request):
        span = trace.start_span()
        started = time.monotonic() if span is not None else 0.0
        try:
            response = self.get_response(request)
            match = getattr(request, "resolver_match", None)
            if match is not None:
                endpoint = "/" + match.route
            elif request.path_info.startswith(self.static_prefix):
                endpoint = "static"
            else:
                endpoint = "unmatched"
            count_request(endpoint, response.status_code)
            if span is not None:
                self.trace(request, response, endpoint, started)
        finally:
            trace.end_span(span)
        return response

    @staticmethod
    def trace(request, response, endpoint: str, started: float) -> None:
        """The request's event: its path without the query string (which may hold a live stream's
        token or an RSVP link's), never a header."""
        elapsed = round((time.monotonic() - started) * 1000)
        address = request.META.get("REMOTE_ADDR")
        method = request.method if request.method in DAV_METHODS else "other"
        if request.path_info.startswith("/dav/"):
            trace.emit(f"webdav.{method.lower()}", url=request.path, code=response.status_code,
                       remoteIp=address, elapsed=elapsed)
        trace.emit("http.request-url", method=request.method[:16], url=request.path, endpoint=endpoint,
                   code=response.status_code, remoteIp=address, elapsed=elapsed)


class PrometheusAfter(PrometheusAfterMiddleware):
    """django-prometheus' "after" middleware, which now sees every request, machine endpoints
    included. It reads Content-Length with int(), so a client's malformed value ("x") would be a
    500 before the endpoint could answer it with its 400; such a request's body size goes
    unobserved instead, and everything else is counted as usual (process_request below is the
    library's, with that change and without request.headers).

    The labelled series a request counts into are kept once found: prometheus_client's
    labels() checks and looks up its arguments under a lock, nine times per request, which
    cost more than the counting itself. Every label takes its values from a small fixed set (a
    valid method or "<invalid method>", view names, status codes, charsets), so the dict stays
    as small as the series themselves."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._children = {}

    def label_metric(self, metric, request, response=None, **labels):
        if not labels:
            return metric
        key = (id(metric), *labels.items())
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(**labels)
        return child

    def process_request(self, request):
        """django-prometheus' process_request, reading the two headers it needs from META:
        request.headers builds a dict of every header on first use, which only this needed
        on the machine endpoints (a twentieth of a Core/echo's function calls)."""
        meta = request.META
        metrics = self.metrics
        method = self._method(request)
        self.label_metric(metrics.requests_by_method, request, method=method).inc()
        self.label_metric(metrics.requests_by_transport, request, transport=self._transport(request)).inc()
        # Mimic the behaviour of the deprecated "Request.is_ajax()" method, as the library does.
        if meta.get("HTTP_X_REQUESTED_WITH") == "XMLHttpRequest":
            self.label_metric(metrics.requests_ajax, request).inc()
        try:
            content_length = int(meta.get("CONTENT_LENGTH") or 0)
        except ValueError:
            pass  # unobserved; the endpoint answers the malformed value with its 400
        else:
            self.label_metric(metrics.requests_body_bytes, request).observe(content_length)
        request.prometheus_after_middleware_event = Time()
