"""URLs of the telemetry app (included at the root)."""
urlpatterns = []
