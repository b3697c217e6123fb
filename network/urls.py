"""URLs of the network app (included at the root)."""
urlpatterns = []
