"""The URL table, in the order of the reference's endpoint list as slices arrive."""
from django.contrib import admin
from django.urls import include, path

from accounts import views as account_views
from jmapapi import views as jmap

urlpatterns = [
    # JMAP
    path(".well-known/jmap", jmap.well_known),
    path("jmap", jmap.api),
    path("jmap/", jmap.api),
    path("jmap/session", jmap.session),
    # The reference's documentation posts JMAP to /api: accept it too.
    path("api", jmap.api),
    path("api/schema", jmap.schema),
    path("api/schema/<str:digest>", jmap.schema),
    # Web UI
    path("", account_views.home, name="home"),
    path("account/", include("accounts.urls")),
    path("admin/", admin.site.urls),
]
