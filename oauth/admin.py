"""Admin pages of the OAuth app, built from the declarations (registry.admin).

The OAuth client page differs from the generic one in its list only. Its secret, like every
declared secret, is never shown (registry.admin.DeclaredModelForm): left empty it keeps the
stored hash, a typed value replaces it (stored hashed), and "remove" empties it, which makes
the client public.
"""
from django.contrib import admin

from registry.admin import DeclaredAdmin

from .models import OAuthClient


# django-oauth-toolkit registers its own page for the application model (ours, swapped in).
if admin.site.is_registered(OAuthClient):
    admin.site.unregister(OAuthClient)


@admin.register(OAuthClient)
class OAuthClientAdmin(DeclaredAdmin):
    list_display = ("client_id", "description", "client_type", "ephemeral", "registration_source", "created")
    list_filter = ("ephemeral", "client_type", "registration_source")
    search_fields = ("client_id", "description", "name")
