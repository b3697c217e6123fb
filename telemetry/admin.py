"""The Settings › Telemetry › Metrics page, built from the declaration (registry.admin).

The stored hash of the scraper's secret, a declared secret, is never shown
(registry.admin.DeclaredModelForm): left empty it keeps the stored secret, a typed value
replaces it (stored hashed).
"""
from registry.admin import register_declared

from . import objects  # noqa: F401  (declarations)

register_declared("telemetry")
