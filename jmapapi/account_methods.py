"""The management objects whose JMAP face differs from the generic one.

Account carries its credentials and aliases as lists in the reference's encoding; passwords
go through the password policy. AppPassword and ApiKey are the caller's own credentials, with
ids that are credential numbers and secrets returned only by the create that made them.
"""
from __future__ import annotations

import copy
import datetime as dt

from django.db.models import Prefetch

from accounts import credentials, services
from accounts.models import Account, Alias, Credential
from accounts.policy import PolicyViolation
from blobs import services as blobs
from registry import ids, schema
from registry.errors import Forbidden, InvalidPatch, InvalidProperties, NotFound, OverQuota

from .registry_methods import RegistryMethods, apply_pointer

MASK = "****"


def _iso(value):
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _parse_time(value, path):
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidPatch("Invalid value for object property", properties=[path])
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidPatch("Invalid value for object property", properties=[path]) from None
    if parsed.tzinfo is None:
        raise InvalidPatch("Invalid value for object property", properties=[path])
    return parsed


def _ip_set(value, path):
    if not isinstance(value, dict) or not all(isinstance(k, str) and v is True for k, v in value.items()):
        raise InvalidPatch("Invalid value for object property", properties=[path])
    return sorted(value)


KIND_TYPES = {"password": "Password", "app_password": "AppPassword", "api_key": "ApiKey"}
SCOPE_TYPES = {"inherit": "Inherit", "disable": "Disable", "replace": "Replace"}


def encode_credential(cred: Credential) -> dict:
    out = {"@type": KIND_TYPES[cred.kind], "credentialId": ids.encode(cred.credential_id), "secret": MASK}
    if cred.kind == Credential.Kind.PASSWORD:
        if cred.otp_url:
            out["otpAuth"] = MASK
    else:
        out["description"] = cred.description
        out["createdAt"] = _iso(cred.created_at)
        scope = {"@type": SCOPE_TYPES[cred.permissions_mode]}
        if cred.permissions_mode != "inherit":
            scope["permissions"] = {p: True for p in cred.permissions}
        out["permissions"] = scope
    out["expiresAt"] = _iso(cred.expires_at)
    out["allowedIps"] = {ip: True for ip in cred.allowed_ips}
    return out


class AccountMethods(RegistryMethods):
    def queryset(self, ctx):
        return Account.objects.select_related("domain")

    def prefetch(self, qs):
        # The usage of every account listed in the same query (a subquery each), not one more per account.
        return (super().prefetch(qs).prefetch_related("credentials", Prefetch("aliases", Alias.objects.order_by("pk")))
                .annotate(used_disk_quota=blobs.usage_expression()))

    def public_props(self):
        return [*super().public_props(), "credentials", "aliases", "usedDiskQuota"]

    def encode(self, ctx, obj):
        doc = super().encode(ctx, obj)
        used = obj.used_disk_quota if hasattr(obj, "used_disk_quota") else blobs.usage(obj.pk)
        doc["usedDiskQuota"] = used or 0
        if obj.kind == Account.Kind.USER:
            doc["credentials"] = {str(i): encode_credential(c) for i, c in enumerate(obj.credentials.all())}
        prefetched = "aliases" in getattr(obj, "_prefetched_objects_cache", {})
        doc["aliases"] = {
            str(i): {"name": a.name, "domainId": ids.encode(a.domain_id), "enabled": a.enabled,
                     "description": a.description or None}
            for i, a in enumerate(obj.aliases.all() if prefetched else obj.aliases.order_by("pk"))
        }
        return doc

    # --- create ---------------------------------------------------------------------------
    def decode_create(self, body):
        body = dict(body)
        body.pop("credentials", None)
        body.pop("aliases", None)
        body.pop("usedDiskQuota", None)  # server-set: what a snapshot read back carries is ignored
        return super().decode_create(body)

    def do_create(self, ctx, values, body):
        password = expires = None
        creds = body.get("credentials")
        if creds is not None:
            if not isinstance(creds, dict):
                raise InvalidPatch("Invalid value for object property", properties=["credentials"])
            for index, cred in creds.items():
                if not isinstance(cred, dict):
                    raise InvalidPatch("Invalid value for object property", properties=[f"credentials/{index}"])
                if cred.get("@type") in ("AppPassword", "ApiKey"):
                    raise InvalidProperties("Secondary credentials cannot be set directly.", properties=["credentials"])
                if cred.get("@type") != "Password" or index != "0":
                    raise InvalidProperties("Only one password credential is allowed.", properties=["credentials"])
                if not isinstance(cred.get("secret"), str) or not cred["secret"]:
                    raise InvalidProperties("The password is required.", properties=["secret"])
                password = cred["secret"]
                expires = _parse_time(cred.get("expiresAt"), f"credentials/{index}/expiresAt")
        aliases = self._decode_aliases(body.get("aliases")) if "aliases" in body else None
        try:
            account = services.create_account(values, ctx.principal, password=password)
        except PolicyViolation as exc:
            raise credentials.policy_error(exc) from None
        if expires is not None:
            credentials.set_password_expiry(account, expires, ctx.principal)
        if aliases is not None:
            services.set_aliases(account, aliases, ctx.principal)
        return account

    # --- update ---------------------------------------------------------------------------
    def decode_patch(self, ctx, obj, patch):
        plain, special = {}, {}
        for path, value in patch.items():
            head = path.split("/", 1)[0] if isinstance(path, str) else path
            (special if head in ("credentials", "aliases") else plain)[path] = value
        values = super().decode_patch(ctx, obj, plain)
        if special:
            values["__special__"] = special
        return values

    def do_update(self, ctx, obj, values, patch):
        special = values.pop("__special__", {})
        account = super().do_update(ctx, obj, values, patch) if values or not special else obj
        if special:
            current = self.encode(ctx, account)
            doc = {"credentials": copy.deepcopy(current.get("credentials", {})),
                   "aliases": copy.deepcopy(current["aliases"])}
            for path, value in special.items():
                apply_pointer(doc, path, value)
            if doc["aliases"] != current["aliases"]:
                services.set_aliases(account, self._decode_aliases(doc["aliases"]), ctx.principal)
            if account.kind == Account.Kind.USER and doc["credentials"] != current.get("credentials", {}):
                self._apply_credentials(ctx, account, current.get("credentials", {}), doc["credentials"])
        return account

    def _apply_credentials(self, ctx, account, old: dict, new: dict):
        by_id = {c.credential_id: c for c in account.credentials.all()}
        old_by_cid = {ids.decode(v["credentialId"]): v for v in old.values()}
        new_by_cid = {}
        for index, cred in new.items():
            if not isinstance(cred, dict):
                raise InvalidPatch("Invalid value for object property", properties=[f"credentials/{index}"])
            cid = ids.decode(cred.get("credentialId")) if isinstance(cred.get("credentialId"), str) else None
            if cid is None or cid not in by_id:
                if cred.get("@type") == "Password" and not any(c.kind == "password" for c in by_id.values()):
                    new_by_cid[None] = cred
                    continue
                if cred.get("@type") in ("AppPassword", "ApiKey"):
                    raise InvalidProperties("Secondary credentials cannot be set directly.", properties=["credentials"])
                raise InvalidProperties("Only one password credential is allowed.", properties=["credentials"])
            new_by_cid[cid] = cred
        for cid, stored in by_id.items():
            if cid not in new_by_cid:
                if stored.kind == Credential.Kind.PASSWORD:
                    raise InvalidProperties("The password credential cannot be removed.", properties=["credentials"])
                credentials.revoke_credential(account, cid, ctx.principal)
        for cid, cred in new_by_cid.items():
            before = old_by_cid.get(cid, {})
            if cid is not None and cred.get("@type") != before.get("@type"):
                raise InvalidProperties("The type of a credential cannot change.", properties=["credentials"])
            if cred.get("@type") == "Password":
                self._apply_password(ctx, account, before, cred)
            elif cred != before:
                changes = {}
                for key, value in cred.items():
                    if before.get(key) == value:
                        continue
                    if key == "secret":
                        raise Forbidden("The secret of an app password or API key cannot be changed.",
                                        properties=["secret"])
                    if key == "description":
                        changes["description"] = value if isinstance(value, str) else ""
                    elif key == "expiresAt":
                        changes["expires_at"] = _parse_time(value, "credentials/expiresAt")
                    elif key == "allowedIps":
                        changes["allowed_ips"] = _ip_set(value, "credentials/allowedIps")
                    elif key == "permissions":
                        scope = self._scope(value)
                        changes.update(scope)
                    else:
                        raise InvalidPatch("Cannot modify server set property.", properties=[f"credentials/{key}"])
                kind = "app_password" if cred["@type"] == "AppPassword" else "api_key"
                credentials.update_secondary_credential(account, cid, kind, changes, ctx.principal,
                                                     grantor_permissions=ctx.principal.permissions)

    def _apply_password(self, ctx, account, before, cred):
        secret = cred.get("secret")
        expires_changed = cred.get("expiresAt") != before.get("expiresAt")
        expires = _parse_time(cred.get("expiresAt"), "credentials/expiresAt") if expires_changed else None
        if secret not in (None, MASK):
            if not isinstance(secret, str) or not secret:
                raise InvalidProperties("The password is required.", properties=["secret"])
            try:
                kwargs = {"expires_at": expires} if expires_changed else {}
                credentials.set_password(account, secret, ctx.principal, **kwargs)
            except PolicyViolation as exc:
                raise credentials.policy_error(exc) from None
        elif expires_changed:
            credentials.set_password_expiry(account, expires, ctx.principal)
        for key in set(cred) - {"@type", "credentialId", "secret", "expiresAt", "allowedIps", "otpAuth"}:
            raise InvalidPatch("Invalid property", properties=[f"credentials/{key}"])

    @staticmethod
    def _scope(value):
        if not isinstance(value, dict) or value.get("@type") not in ("Inherit", "Disable", "Replace"):
            raise InvalidPatch("Invalid value for object property", properties=["credentials/permissions"])
        mode = value["@type"].lower()
        names = _ip_set(value.get("permissions", {}), "credentials/permissions") if mode != "inherit" else []
        return {"permissions_mode": mode, "permissions": names}

    @staticmethod
    def _decode_aliases(value) -> list[dict]:
        if not isinstance(value, dict):
            raise InvalidPatch("Invalid value for object property", properties=["aliases"])
        out = []
        for index, item in value.items():
            path = f"aliases/{index}"
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise InvalidPatch("Invalid value for object property", properties=[path])
            domain = ids.decode(item.get("domainId")) if isinstance(item.get("domainId"), str) else None
            if domain is None:
                raise InvalidPatch("Invalid value for object property", properties=[f"{path}/domainId"])
            enabled = item.get("enabled", True)
            if not isinstance(enabled, bool):
                raise InvalidPatch("Invalid value for object property", properties=[f"{path}/enabled"])
            out.append({"name": item["name"], "domain_id": domain, "enabled": enabled,
                        "description": item.get("description") or ""})
        return out


class CredentialMethods(RegistryMethods):
    """The caller's own app passwords or API keys."""

    kind: str

    def _account(self, ctx):
        if ctx.principal.recovery:
            raise NotFound("The recovery administrator has no account of its own.")
        return ctx.principal.account

    def queryset(self, ctx):
        if ctx.principal.recovery:
            return Credential.objects.none()
        return self.decl.model.objects.filter(account_id=ctx.principal.account_id, kind=self.kind)

    def set(self, ctx, args):
        # Creates come before destroys in a /set, so once one create is over quota every later
        # one is too: answer them without the transaction, row lock and count each would cost.
        ctx.quota_refusal = None
        try:
            return super().set(ctx, args)
        finally:
            del ctx.quota_refusal

    def before_create(self, ctx):
        if getattr(ctx, "quota_refusal", None) is not None:
            raise OverQuota(ctx.quota_refusal)

    def do_create(self, ctx, values, body):
        try:
            return self._create(ctx, values)
        except OverQuota as exc:
            if hasattr(ctx, "quota_refusal"):
                ctx.quota_refusal = exc.description
            raise

    def change_log(self, ctx, log):
        if ctx.principal.recovery:
            return log.none()
        return log.filter(object_id__startswith=f"{ids.encode(ctx.principal.account_id)}/")

    def change_id(self, log_id):
        return log_id.rsplit("/", 1)[1]

    def _create(self, ctx, values):
        account = self._account(ctx)
        cred, token = credentials.create_secondary_credential(
            account, self.kind, ctx.principal, description=values.get("description", ""),
            expires_at=values.get("expires_at"), permissions_mode=values.get("permissions_mode", "inherit"),
            permissions=values.get("permissions", []), allowed_ips=values.get("allowed_ips", []),
            grantor_permissions=ctx.principal.permissions,
        )
        cred._token = token
        return cred

    def created_extra(self, ctx, obj, body):
        return {"secret": obj._token, "createdAt": _iso(obj.created_at)}

    def do_update(self, ctx, obj, values, patch):
        return credentials.update_secondary_credential(
            self._account(ctx), obj.credential_id, self.kind, values, ctx.principal,
            grantor_permissions=ctx.principal.permissions)

    def do_destroy(self, ctx, obj):
        credentials.revoke_credential(self._account(ctx), obj.credential_id, ctx.principal, kinds=(self.kind,))


class AppPasswordMethods(CredentialMethods):
    kind = Credential.Kind.APP_PASSWORD


class ApiKeyMethods(CredentialMethods):
    kind = Credential.Kind.API_KEY



def _field(description: str, ftype: dict, update: str = "mutable") -> dict:
    return {"description": description, "type": ftype, "update": update}


_ID = {"type": "string", "format": "id"}
_SECRET = {"type": "string", "format": "secret"}
_EXPIRES = {"type": "utcDateTime", "nullable": True}
_IPS = {"type": "set", "class": {"type": "string", "format": "ipMask"}}
_PASSWORD_FIELDS = {
    "credentialId": _field("Number of the credential within the account.", _ID, "serverSet"),
    "secret": _field("The password, or a hash in a recognised format. Reads as ****.", _SECRET),
    "otpAuth": _field("The otpauth:// URL of two-factor login, enrolled on the account page. Reads as ****.",
                      {**_SECRET, "nullable": True}, "serverSet"),
    "expiresAt": _field("When the password expires.", _EXPIRES),
    "allowedIps": _field("Addresses the password may be used from; empty for any.", _IPS),
}
_SECONDARY_FIELDS = {
    "credentialId": _field("Number of the credential within the account.", _ID, "serverSet"),
    "description": _field("What the credential is for.", {"type": "string", "format": "string"}),
    "secret": _field("Shown once, to its owner, when created.", _SECRET, "serverSet"),
    "createdAt": _field("", {"type": "utcDateTime"}, "serverSet"),
    "expiresAt": _field("When the credential expires.", _EXPIRES),
    "permissions": _field("Inherit the account's permissions, or disable or replace some.",
                          {"type": "object", "objectName": "CredentialPermissions"}),
    "allowedIps": _field("Addresses the credential may be used from; empty for any.", _IPS),
}
_ALIAS_FIELDS = {
    "name": _field("Local part of the alias address.", {"type": "string", "format": "string"}),
    "domainId": _field("", {"type": "objectId", "objectName": "x:Domain"}),
    "enabled": _field("A disabled alias neither receives mail nor logs in.", {"type": "boolean"}),
    "description": _field("", {"type": "string", "format": "string", "nullable": True}),
}


def _form(*labels: tuple[str, str]) -> dict:
    return {"sections": [{"title": None, "fields": [{"name": n, "label": label} for n, label in labels]}]}


# The lists above are encoded by AccountMethods, not declared on the model: describe them in the
# schema so that `describe account` lists them and `--field credentials/0/secret=…` resolves.
schema.extend(
    "Account",
    properties={
        # Not exported by `manage.py snapshot`: the secrets read as ****, so a plan could not
        # recreate them, and the app passwords and API keys are their owners' to create.
        "credentials": {**_field("The password (users only), and the app passwords and API keys, which "
                                 "only their owner creates.", {"type": "objectList", "objectName": "Credential"}),
                        "exported": False},
        "aliases": _field("More addresses of the account.", {"type": "objectList", "objectName": "EmailAlias"}),
        "usedDiskQuota": {**_field("Octets the account stores: each distinct content it holds (messages, "
                                   "uploads) once.", {"type": "number", "format": "unsignedInteger"}, "serverSet"),
                          "exported": False},
    },
    sections=[{"title": "Aliases", "fields": [{"name": "aliases", "label": "Aliases"}]},
              {"title": "Credentials", "fields": [{"name": "credentials", "label": "Credentials"}]}],
    embedded={
        "schemas": {
            "Credential": {"type": "multiple", "variants": [
                {"name": "Password", "label": "Password", "schemaName": "PasswordCredential"},
                {"name": "AppPassword", "label": "App password", "schemaName": "SecondaryCredential"},
                {"name": "ApiKey", "label": "API key", "schemaName": "SecondaryCredential"},
            ]},
            "EmailAlias": {"type": "single", "schemaName": "EmailAlias"},
        },
        "fields": {
            "PasswordCredential": {"properties": _PASSWORD_FIELDS, "defaults": {}},
            "SecondaryCredential": {"properties": _SECONDARY_FIELDS, "defaults": {}},
            "EmailAlias": {"properties": _ALIAS_FIELDS, "defaults": {"enabled": True}},
        },
        "forms": {
            "PasswordCredential": _form(("credentialId", "Id"), ("secret", "Secret"), ("otpAuth", "Two-factor"),
                                        ("expiresAt", "Expires at"), ("allowedIps", "Allowed IPs")),
            "SecondaryCredential": _form(("credentialId", "Id"), ("description", "Description"),
                                         ("secret", "Secret"), ("createdAt", "Created at"),
                                         ("expiresAt", "Expires at"), ("permissions", "Permissions"),
                                         ("allowedIps", "Allowed IPs")),
            "EmailAlias": _form(("name", "Name"), ("domainId", "Domain"), ("enabled", "Enabled"),
                                ("description", "Description")),
        },
    },
)
