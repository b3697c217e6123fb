"""URLs of the contactform app (included at the root)."""
urlpatterns = []
