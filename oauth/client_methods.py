"""The JMAP face of x:OAuthClient where it differs from the generic one.

- `secret` is write-only: a plaintext value is stored as an argon2id hash (the model's save),
  reads give "****", or null when there is none; null (like "") removes the secret, which makes
  the client public.
- The `text` filter searches the client id, the description and the name, never the stored
  secret hash (the generic filter searches every text column).

Imported by oauth.apps.ready(), before jmapapi builds its method table on the first request.
"""
from __future__ import annotations

from django.db.models import Q

from jmapapi.engine import MethodError
from jmapapi.methods import HANDLERS
from jmapapi.registry_methods import RegistryMethods


class OAuthClientMethods(RegistryMethods):
    def encode(self, ctx, obj):
        doc = super().encode(ctx, obj)
        if doc.get("secret") == "":
            doc["secret"] = None  # String?: no secret is null, not ""
        return doc

    def decode_create(self, body):
        if isinstance(body, dict) and "secret" in body and body["secret"] is None:
            body = {**body, "secret": ""}
        return super().decode_create(body)

    def decode_patch(self, ctx, obj, patch):
        patch = {k: ("" if k == "secret" and v is None else v) for k, v in patch.items()}
        return super().decode_patch(ctx, obj, patch)

    def _one_condition(self, key, value):
        if key == "text":
            if not isinstance(value, str):
                raise MethodError("unsupportedFilter", "Filter on property text is not supported or invalid")
            return Q(client_id__icontains=value) | Q(description__icontains=value) | Q(name__icontains=value)
        return super()._one_condition(key, value)


HANDLERS["OAuthClient"] = OAuthClientMethods
