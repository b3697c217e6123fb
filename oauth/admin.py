"""Admin pages of the OAuth app, built from the declarations (registry.admin).

The OAuth client page differs from the generic one in its list, and in its secret: the stored
hash is never shown. The field reads "****" while a secret is set; leaving it so keeps the
secret, typing a new value replaces it (stored hashed), emptying it removes it (the client
becomes public).
"""
from django import forms
from django.contrib import admin

from registry.admin import DeclaredAdmin, register_declared

from . import objects  # noqa: F401  (declarations)
from .clients import MASK
from .models import OAuthClient


# django-oauth-toolkit registers its own page for the application model (ours, swapped in).
if admin.site.is_registered(OAuthClient):
    admin.site.unregister(OAuthClient)


class OAuthClientForm(forms.ModelForm):
    class Meta:
        model = OAuthClient
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields.get("client_secret")
        if field is not None:
            field.widget = forms.PasswordInput(render_value=True, attrs={"autocomplete": "new-password"})
            field.help_text = ("Leave **** to keep the stored secret, type a new one to replace it (it is stored "
                               "hashed), or empty the field to remove it: a client without a secret is public.")
            if self.instance.client_secret:
                self.initial["client_secret"] = MASK

    def clean_client_secret(self):
        value = self.cleaned_data.get("client_secret") or ""
        if value == MASK and self.instance.client_secret:
            return self.instance.client_secret
        return value


@admin.register(OAuthClient)
class OAuthClientAdmin(DeclaredAdmin):
    form = OAuthClientForm
    list_display = ("client_id", "description", "client_type", "ephemeral", "registration_source", "created")
    list_filter = ("ephemeral", "client_type", "registration_source")
    search_fields = ("client_id", "description", "name")


register_declared("oauth")
