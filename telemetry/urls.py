"""URLs of the telemetry app (included at the root)."""
from django.urls import path, re_path

from . import live_views, views

urlpatterns = [
    # Live telemetry (reference §8.8, §8.9); their tokens come from /api/token/{tracing,metrics}.
    path("api/live/tracing", live_views.tracing),
    path("api/live/metrics", live_views.metrics),
    path("metrics/prometheus", views.prometheus),
    # /metrics/otel is reserved by the reference, and nothing else lives under /metrics.
    re_path(r"^metrics(?:/.*)?$", views.unknown),
]
