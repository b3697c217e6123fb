"""The URL table, in the order of the reference's endpoint list as slices arrive."""
from django.contrib import admin
from django.urls import include, path

from accounts import views as account_views

urlpatterns = [
    path("", account_views.home, name="home"),
    path("account/", include("accounts.urls")),
    path("admin/", admin.site.urls),
]
