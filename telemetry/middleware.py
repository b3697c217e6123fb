"""Counts every answered request in stalwart_http_requests_total{endpoint, status}."""
from django.conf import settings
from django_prometheus.middleware import PrometheusAfterMiddleware
from django_prometheus.utils import Time

from .metrics import count_request


class RequestMetricsMiddleware:
    """The endpoint label is the URL route that matched ("/jmap/", "/api/schema/<str:digest>"),
    "static" for files WhiteNoise serves, "unmatched" otherwise: never the raw path, which any
    client could make unique. It sits near the top of MIDDLEWARE, so it sees what answers early
    (static files, CSRF refusals) as well as the views."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.static_prefix = settings.STATIC_URL if settings.STATIC_URL.startswith("/") else "/" + settings.STATIC_URL

    def __call__(self, request):
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        if match is not None:
            endpoint = "/" + match.route
        elif request.path_info.startswith(self.static_prefix):
            endpoint = "static"
        else:
            endpoint = "unmatched"
        count_request(endpoint, response.status_code)
        return response


class PrometheusAfter(PrometheusAfterMiddleware):
    """django-prometheus' "after" middleware, which now sees every request, machine endpoints
    included. It reads Content-Length with int(), so a client's malformed value ("x") would be a
    500 before the endpoint could answer it with its 400; such a request's body size goes
    unobserved instead, and everything else is counted as usual.

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
        try:
            super().process_request(request)
        except ValueError:
            # Raised after the method and transport counters, before the latency timer starts.
            request.prometheus_after_middleware_event = Time()
