"""URLs of the telemetry app (included at the root)."""
from django.urls import path, re_path

from . import views

urlpatterns = [
    path("metrics/prometheus", views.prometheus),
    # /metrics/otel is reserved by the reference, and nothing else lives under /metrics.
    re_path(r"^metrics(?:/.*)?$", views.unknown),
]
