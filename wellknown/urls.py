"""URLs of the wellknown app (included at the root)."""
urlpatterns = []
