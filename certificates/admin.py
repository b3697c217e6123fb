"""Admin pages of the certificates app, built from the declarations (registry.admin).

The provider page differs from the generic one in its EAB HMAC key: the stored key is never
shown. The field reads "****" while a key is stored; leaving it so keeps the key, typing a new
value replaces it, emptying it removes it. Certificates are read-only: they are issued by the
ACME client, and can only be looked at or deleted.
"""
from django import forms
from django.contrib import admin

from registry.admin import DeclaredAdmin, register_declared

from . import objects  # noqa: F401  (declarations)
from .models import AcmeProvider, Certificate

MASK = "****"


class AcmeProviderForm(forms.ModelForm):
    class Meta:
        model = AcmeProvider
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields.get("eab_hmac_key")
        if field is not None:
            field.widget = forms.PasswordInput(render_value=True, attrs={"autocomplete": "new-password"})
            field.help_text = ("Leave **** to keep the stored key, type a new one to replace it, or empty the field "
                               "to remove it.")
            if self.instance.eab_hmac_key:
                self.initial["eab_hmac_key"] = MASK

    def clean_eab_hmac_key(self):
        value = self.cleaned_data.get("eab_hmac_key") or ""
        if value == MASK and self.instance.eab_hmac_key:
            return self.instance.eab_hmac_key
        return value


@admin.register(AcmeProvider)
class AcmeProviderAdmin(DeclaredAdmin):
    form = AcmeProviderForm
    list_display = ("__str__", "challenge_type", "renew_before", "account_uri")


@admin.register(Certificate)
class CertificateAdmin(DeclaredAdmin):
    list_display = ("__str__", "provider", "not_before", "not_after")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


register_declared("certificates")
