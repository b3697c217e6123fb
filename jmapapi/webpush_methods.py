"""PushSubscription/get and PushSubscription/set (RFC 8620 §7.2), and the webpush-vapid session
capability. A subscription belongs to the caller's account; the methods take no accountId and
answer without one. Delivery is in webpush.py; the URL rules in stalwart_site.egress.
"""
from __future__ import annotations

import datetime as dt
import hmac
import re
import secrets
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Account
from registry import ids
from stalwart_site import egress

from . import capabilities, webpush
from .engine import METHODS, Context, Method, MethodError, check_set_size, invalid_arguments, set_arguments
from .models import PushSubscription
from .push import DATA_TYPES, readable_types

PROPERTIES = ("id", "deviceClientId", "url", "keys", "verificationCode", "expires", "types")
# url and keys are write-only (asking for them is forbidden, as in the reference).
READABLE = ("id", "deviceClientId", "verificationCode", "expires", "types")
UPDATABLE = ("verificationCode", "expires", "types")
_UTC_DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z")

capabilities.register(
    webpush.VAPID_CAPABILITY,
    session=lambda limits: ({"applicationServerKey": key} if (key := webpush.application_server_key()) else None))


class SetError(Exception):
    def __init__(self, type: str, description: str, properties: list[str] | None = None):
        super().__init__(description)
        self.type, self.description, self.properties = type, description, properties

    def to_json(self) -> dict:
        out = {"type": self.type, "description": self.description}
        if self.properties:
            out["properties"] = self.properties
        return out


def _account(ctx: Context) -> int:
    if ctx.principal.recovery:
        raise MethodError("forbidden", "The recovery administrator has no account to push to.")
    return ctx.principal.account_id


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def encode(sub: PushSubscription) -> dict:
    return {"id": ids.encode(sub.pk), "deviceClientId": sub.device_client_id,
            # Never shown (as in the reference): the code must come by push, and once echoed the
            # client has it.
            "verificationCode": None,
            "expires": _iso(sub.expires), "types": sub.types}


def get(ctx: Context, args: dict) -> dict:
    ctx.require("jmapPushSubscriptionGet")
    account_id = _account(ctx)
    wanted, props = args.get("ids"), args.get("properties")
    if wanted is not None and not (isinstance(wanted, list) and all(isinstance(i, str) for i in wanted)):
        raise invalid_arguments('"ids" must be an array of ids or null.')
    if props is not None:
        if not (isinstance(props, list) and all(isinstance(p, str) for p in props)):
            raise invalid_arguments('"properties" must be an array of strings or null.')
        unknown = [p for p in props if p not in PROPERTIES]
        if unknown:
            raise invalid_arguments(f"Unknown property {unknown[0]}.")
        if "url" in props or "keys" in props:
            raise MethodError("forbidden", "The 'url' and 'keys' properties are not readable.")
    if wanted is not None and len(wanted) > ctx.limits.get_max_results:
        raise MethodError("requestTooLarge", f"At most {ctx.limits.get_max_results} objects may be read at once.")
    # An expired subscription is gone for its client (deleted at the account's next create).
    qs = PushSubscription.objects.filter(account_id=account_id, expires__gt=timezone.now()).order_by("pk")
    not_found: list[str] = []
    if wanted is not None:
        pks = {i: ids.decode(i) for i in wanted}
        found = {sub.pk: sub for sub in qs.filter(pk__in=[p for p in pks.values() if p is not None])}
        subs = []
        for i, pk in pks.items():
            if pk in found:
                subs.append(found[pk])
            else:
                not_found.append(i)
    else:
        subs = list(qs[:ctx.limits.get_max_results])
    shown = [p for p in (props or READABLE) if p in READABLE]
    if "id" not in shown:
        shown.insert(0, "id")
    return {"list": [{k: v for k, v in encode(sub).items() if k in shown} for sub in subs], "notFound": not_found}


# --- validation -------------------------------------------------------------------------------
def _expires(value) -> dt.datetime:
    """The expiry asked for, clamped to WEBPUSH_MAX_EXPIRES from now; null: the maximum."""
    latest = timezone.now() + dt.timedelta(seconds=settings.WEBPUSH_MAX_EXPIRES)
    if value is None:
        return latest.replace(microsecond=0)
    if not isinstance(value, str) or not _UTC_DATE.fullmatch(value):
        raise SetError("invalidProperties", "expires must be a UTCDate (YYYY-MM-DDTHH:MM:SSZ).", ["expires"])
    try:
        parsed = dt.datetime.fromisoformat(value[:19]).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise SetError("invalidProperties", "expires is not a valid date.", ["expires"]) from None
    if parsed <= timezone.now():
        raise SetError("invalidProperties", "expires is in the past.", ["expires"])
    return min(parsed, latest.replace(microsecond=0))


def _types(value) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise SetError("invalidProperties", "types must be an array of data type names or null.", ["types"])
    unknown = [t for t in value if t not in DATA_TYPES]
    if unknown:
        raise SetError("invalidProperties", f"Unknown data type {unknown[0]}.", ["types"])
    return list(dict.fromkeys(value))


def _keys(value) -> tuple[str, str]:
    if value is None:
        return "", ""
    if not isinstance(value, dict) or set(value) != {"p256dh", "auth"}:
        raise SetError("invalidProperties", "keys must be an object with p256dh and auth.", ["keys"])
    try:
        webpush.check_keys(value["p256dh"], value["auth"])
    except ValueError as exc:
        raise SetError("invalidProperties", f"Invalid keys: {exc}", ["keys"]) from None
    return value["p256dh"], value["auth"]


def _create(ctx: Context, account_id: int, body) -> tuple[PushSubscription, dict]:
    if not ctx.principal.has("jmapPushSubscriptionCreate"):
        raise SetError("forbidden", "You are not authorized to create push subscriptions.")
    if not isinstance(body, dict):
        raise SetError("invalidProperties", "A PushSubscription must be an object.")
    unknown = [k for k in body if k not in PROPERTIES]
    if unknown:
        raise SetError("invalidProperties", f"Unknown property {unknown[0]}.", unknown)
    if "id" in body:
        raise SetError("invalidProperties", "id is set by the server.", ["id"])
    if body.get("verificationCode") is not None:
        raise SetError("invalidProperties", "verificationCode is set once the server has sent it.",
                       ["verificationCode"])
    device = body.get("deviceClientId")
    if not isinstance(device, str) or not 0 < len(device) <= 255:
        raise SetError("invalidProperties", "deviceClientId must be a string of 1 to 255 characters.",
                       ["deviceClientId"])
    try:
        # Checked (and resolved) before any write, outside the transaction.
        egress.resolve(body.get("url"))
    except egress.Refused as exc:
        raise SetError("invalidProperties", str(exc), ["url"]) from None
    p256dh, auth = _keys(body.get("keys"))
    expires, types = _expires(body.get("expires")), _types(body.get("types"))
    with transaction.atomic():
        # The account's row, locked: two requests cannot both take the last free place.
        Account.objects.select_for_update().filter(pk=account_id).values_list("pk").first()
        PushSubscription.objects.filter(account_id=account_id, expires__lte=timezone.now()).delete()
        limit = settings.WEBPUSH_MAX_SUBSCRIPTIONS
        if limit and PushSubscription.objects.filter(account_id=account_id).count() >= limit:
            raise SetError("overQuota", f"An account may have at most {limit} push subscriptions.")
        sub = PushSubscription.objects.create(
            account_id=account_id, device_client_id=device, url=body["url"], p256dh=p256dh, auth=auth,
            verification_code=secrets.token_urlsafe(24), expires=expires, types=types,
            readable=readable_types(ctx.principal.permissions))
        transaction.on_commit(partial(webpush.dispatcher.later, 0, partial(webpush.verify, sub.pk)))
    created = {"id": ids.encode(sub.pk), "expires": _iso(expires)}
    return sub, created


def _update(ctx: Context, account_id: int, sub_id: str, patch) -> dict | None:
    pk = ids.decode(sub_id)
    sub = PushSubscription.objects.filter(pk=pk, account_id=account_id).first() if pk is not None else None
    if sub is None:
        raise SetError("notFound", f"Push subscription {sub_id} not found.")
    if not ctx.principal.has("jmapPushSubscriptionUpdate"):
        raise SetError("forbidden", "You are not authorized to update push subscriptions.")
    if not isinstance(patch, dict):
        raise SetError("invalidPatch", "A patch must be an object.")
    wrong = [k for k in patch if k not in UPDATABLE]
    if wrong:
        raise SetError("invalidProperties", f"{wrong[0]} cannot be changed.", wrong)
    changes, out = {}, {}
    if "verificationCode" in patch:
        code = patch["verificationCode"]
        if not isinstance(code, str) or not hmac.compare_digest(code.encode(), sub.verification_code.encode()):
            raise SetError("invalidProperties", "Verification code does not match.", ["verificationCode"])
        changes["verified"] = True
    if "expires" in patch:
        changes["expires"] = _expires(patch["expires"])
        if patch["expires"] != _iso(changes["expires"]):
            out["expires"] = _iso(changes["expires"])
    if "types" in patch:
        changes["types"] = _types(patch["types"])
    if changes:
        with transaction.atomic():
            PushSubscription.objects.filter(pk=sub.pk).update(**changes)
            if changes.get("verified") and not sub.verified:
                webpush.subscriptions_changed()  # its account may now be pushed to
    return out or None


def _destroy(ctx: Context, account_id: int, sub_id: str) -> None:
    pk = ids.decode(sub_id)
    if not ctx.principal.has("jmapPushSubscriptionDestroy"):
        raise SetError("forbidden", "You are not authorized to destroy push subscriptions.")
    with transaction.atomic():
        deleted, _ = PushSubscription.objects.filter(pk=pk, account_id=account_id).delete() if pk else (0, {})
        if deleted:
            webpush.subscriptions_changed()
    if not deleted:
        raise SetError("notFound", f"Push subscription {sub_id} not found.")


def set_(ctx: Context, args: dict) -> dict:
    account_id = _account(ctx)
    create, update, destroy = set_arguments(args)
    check_set_size(ctx, create, update, destroy)
    out: dict = {"created": None, "updated": None, "destroyed": None,
                 "notCreated": None, "notUpdated": None, "notDestroyed": None}
    for cid, body in create.items():
        try:
            _, created = _create(ctx, account_id, body)
        except SetError as exc:
            out["notCreated"] = {**(out["notCreated"] or {}), cid: exc.to_json()}
        else:
            out["created"] = {**(out["created"] or {}), cid: created}
            ctx.created_ids[cid] = created["id"]
    for sub_id, patch in update.items():
        real = ctx.resolve_creation_id(sub_id) or sub_id
        try:
            result = _update(ctx, account_id, real, patch)
        except SetError as exc:
            out["notUpdated"] = {**(out["notUpdated"] or {}), sub_id: exc.to_json()}
        else:
            out["updated"] = {**(out["updated"] or {}), sub_id: result}
    for sub_id in destroy:
        real = ctx.resolve_creation_id(sub_id) or sub_id
        try:
            _destroy(ctx, account_id, real)
        except SetError as exc:
            out["notDestroyed"] = {**(out["notDestroyed"] or {}), sub_id: exc.to_json()}
        else:
            out["destroyed"] = [*(out["destroyed"] or []), sub_id]
    return out


# No transaction around the call: /set resolves the URL's host (DNS) before its writes, which
# each take a short transaction of their own (on SQLite a transaction holds the write lock).
METHODS["PushSubscription/get"] = Method("PushSubscription/get", get, "urn:ietf:params:jmap:core",
                                         transactional=False)
METHODS["PushSubscription/set"] = Method("PushSubscription/set", set_, "urn:ietf:params:jmap:core",
                                         transactional=False)
webpush.install()
