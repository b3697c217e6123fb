"""URLs of the certificates app (included at the root)."""
urlpatterns = []
