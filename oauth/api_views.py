"""The /api helpers of the OAuth slice: /api/discover/{email} and /api/account.

/api/discover/{email} (oauth.md §6.12, http.md §8.2): the OpenID Connect discovery document of
the identity provider of the address's domain. While the active directory is an OpenID Connect
one, an address with a domain part gets that provider's discovery document as the directory
fetched and checked it (no-cache; 503 problem while the provider cannot be reached). Otherwise it
is this server's own document, the one /.well-known/openid-configuration serves, with absolute
URLs: the reference makes them relative (and the issuer "") when the
request did not come over TLS, which breaks issuer validation in clients; our issuer is the
configured public URL whatever the transport. Any method; no email → 404.

/api/account (auth.md §8.7, http.md §8.3): what the web UI may show the caller: the permissions
of the current credential, minus those the reference hides from the UI, the edition and the
account's locale. Any method; authenticated like the JMAP API.
"""
from __future__ import annotations

import inspect
import logging

from django.http import JsonResponse

from accounts import external, permissions as catalogue
from directories.base import DirectoryError, DirectoryUnavailable
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from network.drf import PROBLEM, ApiView, same_as_get
from stalwart_site.problem import problem

from . import views as oauth_views

EDITION = "oss"
log = logging.getLogger(__name__)


def _provider_document(address: str):
    """The active OIDC directory's discovery document as a response, or None when logins do not
    go to an OpenID Connect provider (or the address names no domain)."""
    if "@" not in address or not address.rsplit("@", 1)[1]:
        return None
    directory = external.active_directory()
    if directory is None or directory.kind != directory.Kind.OIDC:
        return None
    try:
        doc = external.call(directory, "metadata")
    except DirectoryUnavailable:
        return problem(503, "The identity provider is temporarily unavailable; try again later.")
    except DirectoryError as exc:
        log.error("directory %s: unusable discovery document: %s", directory.pk, exc)
        return problem(503, "The identity provider's discovery document is unusable.")
    return JsonResponse(doc)


class DiscoverView(ApiView):
    authentication_classes: list = []
    preflight = "cors"

    @extend_schema(summary="OpenID Connect discovery for an address",
                   description="The discovery document of the identity provider of the address's domain: "
                               "the active OpenID Connect directory's provider, else this server's own "
                               "(/.well-known/openid-configuration). Any method.",
                   responses={200: OpenApiTypes.OBJECT, 404: PROBLEM, 503: PROBLEM}, auth=[])
    def get(self, request, email: str = ""):
        address = (email or "").strip().lower()
        if not address:
            return problem(404, "The address is missing: /api/discover/{email}.")
        response = _provider_document(address)
        if response is None:
            # The document of /.well-known/openid-configuration, whatever the method: the view
            # itself is called without its decorators, which only answer GET and HEAD.
            response = inspect.unwrap(oauth_views.openid_configuration)(request._request)
        response["Cache-Control"] = "no-cache"
        return response

    post = put = patch = delete = same_as_get()


discover = DiscoverView.as_view()


# What the reference's /api/account leaves out: permissions the web UI has no use for.
_HIDDEN_OPS = {
    "Create": ("sysDmarcInternalReport", "sysDmarcExternalReport", "sysTlsInternalReport", "sysTlsExternalReport",
               "sysArfExternalReport", "sysQueuedMessage", "sysLog", "sysClusterNode"),
    "Update": ("sysDmarcInternalReport", "sysDmarcExternalReport", "sysTlsInternalReport", "sysTlsExternalReport",
               "sysArfExternalReport", "sysLog", "sysClusterNode", "sysBootstrap"),
    "Destroy": ("sysLog", "sysClusterNode"),
    "Get": ("sysBootstrap",),
}
HIDDEN = frozenset(prefix + op for op, prefixes in _HIDDEN_OPS.items() for prefix in prefixes)
# The recovery administrator has no account of its own: no password, settings or credentials.
RECOVERY_PREFIXES = ("sysAccountPassword", "sysAccountSettings", "sysApiKey", "sysAppPassword")


def visible_permissions(principal) -> list[str]:
    names = set(principal.permissions) - HIDDEN
    if principal.recovery:
        names = {n for n in names if not n.startswith(RECOVERY_PREFIXES)}
    return catalogue.ordered(names)


class AccountSerializer(serializers.Serializer):
    permissions = serializers.ListField(child=serializers.CharField(), help_text="The caller's permissions.")
    edition = serializers.CharField()
    locale = serializers.CharField()


class AccountView(ApiView):
    preflight = "bare"

    @extend_schema(summary="What the web UI may show the caller",
                   description="The permissions of the current credential, the edition and the locale. Any method.",
                   responses={200: AccountSerializer, 401: PROBLEM})
    def get(self, request):
        principal = request.user
        locale = getattr(principal.account, "locale", None) or "en_US"
        response = JsonResponse({"permissions": visible_permissions(principal), "edition": EDITION, "locale": locale},
                                json_dumps_params={"separators": (",", ":")})
        response["Cache-Control"] = "no-store"
        return response

    post = put = patch = delete = same_as_get()


account = AccountView.as_view()
