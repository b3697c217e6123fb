"""Admin pages of the certificates app, built from the declarations (registry.admin).

The EAB HMAC key, a declared secret, is never shown (registry.admin.DeclaredModelForm).
Certificates are read-only: they are issued by the ACME client, and can only be looked at or
deleted; their private keys are not public fields and appear on no page.
"""
from django.contrib import admin

from registry.admin import DeclaredAdmin

from .models import AcmeProvider, Certificate


@admin.register(AcmeProvider)
class AcmeProviderAdmin(DeclaredAdmin):
    list_display = ("__str__", "challenge_type", "renew_before", "account_uri")


@admin.register(Certificate)
class CertificateAdmin(DeclaredAdmin):
    list_display = ("__str__", "provider", "not_before", "not_after")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
