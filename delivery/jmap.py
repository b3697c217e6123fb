"""The JMAP face of the script store (RFC 9661): SieveScript/get, changes, query,
queryChanges, set, validate, the `urn:ietf:params:jmap:sieve` capability, and SieveScript as a
data type that holds blobs (Blob/lookup). Imported by the app's ready()."""
from __future__ import annotations

from django.db import transaction

import sieve
from blobs import services as blobs
from jmapapi import capabilities
from jmapapi.engine import Context, MethodError, invalid_arguments, method
from jmapapi.journal_methods import changes as journal_changes
from jmapapi.journal_methods import query_changes_method
from journal import services as journal
from mail import jmap_common as c
from registry import ids

from . import scripts
from .models import SieveScript

SIEVE = "urn:ietf:params:jmap:sieve"
PROPERTIES = ("id", "name", "blobId", "isActive")
IMPLEMENTATION = "Stalwart v1.0.0"  # spec/jmap.md §2.2: the reference's session value


def _account_capability(principal, limits) -> dict:
    return sieve.account_capability(sieve.Limits.from_settings(), max_size_script_name=scripts.MAX_NAME,
                                     max_number_scripts=scripts.max_scripts())


capabilities.register(SIEVE, session=lambda limits: {"implementation": IMPLEMENTATION},
                      account=_account_capability, permission="jmapSieveScriptGet")
blobs.register_data_type("SieveScript", scripts.OWNER, lambda owner_id: ids.encode(int(owner_id)))


@method("SieveScript/get", SIEVE, account_optional=False, transactional=False)
def script_get(ctx: Context, args: dict) -> dict:
    ctx.require("jmapSieveScriptGet")
    pk = c.account(ctx, args)
    wanted = c.id_list(args, "ids", ctx.limits.get_max_results)
    props = c.properties(args, PROPERTIES, PROPERTIES)
    state = journal.state(pk, scripts.TYPE)
    rows = SieveScript.objects.filter(account_id=pk).order_by("pk")
    if wanted is None:
        return {"accountId": ids.encode(pk), "state": state, "notFound": [],
                "list": [scripts.to_json(s, props) for s in rows[:ctx.limits.get_max_results]]}
    asked = c.decode_ids(ctx, dict.fromkeys(wanted))
    by_pk = {s.pk: s for s in rows.filter(pk__in=[v for v in asked.values() if v is not None])}
    listed, not_found = [], []
    for value, spk in asked.items():
        (listed.append(scripts.to_json(by_pk[spk], props)) if spk in by_pk else not_found.append(value))
    return {"accountId": ids.encode(pk), "state": state, "list": listed, "notFound": not_found}


@method("SieveScript/changes", SIEVE, account_optional=False, transactional=False)
def script_changes(ctx: Context, args: dict) -> dict:
    ctx.require("jmapSieveScriptGet")
    return journal_changes(ctx, args, scripts.TYPE)


# --- query ------------------------------------------------------------------------------------
FILTERS = {"name", "isActive"}


def _leaf(cond: dict):
    unknown = set(cond) - FILTERS
    if unknown:
        raise MethodError("unsupportedFilter", f"Unknown filter {sorted(unknown)[0][:64]}.")
    checks = []
    if "name" in cond:
        if not isinstance(cond["name"], str):
            raise MethodError("unsupportedFilter", "name must be a string.")
        needle = cond["name"].casefold()
        checks.append(lambda s: needle in s.name.casefold())
    if "isActive" in cond:
        if not isinstance(cond["isActive"], bool):
            raise MethodError("unsupportedFilter", "isActive must be a boolean.")
        checks.append(lambda s, want=cond["isActive"]: s.is_active == want)
    return lambda s: all(check(s) for check in checks)


def query_ids(ctx: Context, args: dict) -> list[str]:
    pk = c.account(ctx, args)
    filt = args.get("filter")
    tree = c.walk_filter(filt, _leaf) if filt is not None else None
    comparators = c.sort_list(args, ("name", "isActive"))
    found = [s for s in SieveScript.objects.filter(account_id=pk).order_by("pk") if tree is None or c.evaluate(tree, s)]
    for comp in reversed(comparators):
        key = (lambda s: s.is_active) if comp["property"] == "isActive" else (lambda s: s.name)
        found.sort(key=key, reverse=not comp.get("isAscending", True))
    return [ids.encode(s.pk) for s in found]


@method("SieveScript/query", SIEVE, account_optional=False, transactional=False)
def script_query(ctx: Context, args: dict) -> dict:
    ctx.require("jmapSieveScriptQuery")
    pk = c.account(ctx, args)
    state = journal.state(pk, scripts.TYPE)
    return c.query_result(ctx, args, pk, state, query_ids(ctx, args))


c.guarded(query_changes_method("SieveScript/queryChanges", scripts.TYPE, SIEVE, results=query_ids),
          "jmapSieveScriptQuery")


# --- set --------------------------------------------------------------------------------------
def _activation_target(ctx: Context, args: dict) -> tuple[bool, str | None]:
    """(whether onSuccessActivateScript was given, the id it names), and checks the deactivate flag."""
    if "onSuccessDeactivateScript" in args and not isinstance(args["onSuccessDeactivateScript"], (bool, type(None))):
        raise invalid_arguments('"onSuccessDeactivateScript" must be a boolean.')
    target = args.get("onSuccessActivateScript")
    if target is not None and not isinstance(target, str):
        raise invalid_arguments('"onSuccessActivateScript" must be an id.')
    return target is not None, target


@method("SieveScript/set", SIEVE, account_optional=False)
def script_set(ctx: Context, args: dict) -> dict:
    pk, create, update, destroy, out = c.begin_set(ctx, args, scripts.TYPE)
    activate, target = _activation_target(ctx, args)
    deactivate = bool(args.get("onSuccessDeactivateScript"))
    if activate or deactivate:
        ctx.require("jmapSieveScriptUpdate")
    created, updated, destroyed = [], [], []
    for cid, values in create.items():
        try:
            with transaction.atomic():
                script = scripts.create(pk, values)
        except scripts.ScriptError as exc:
            out["notCreated"][cid] = exc.to_json()
            continue
        new_id = ids.encode(script.pk)
        ctx.created_ids[cid] = new_id
        created.append(new_id)
        out["created"][cid] = {"id": new_id, "name": script.name, "blobId": script.blob_id, "isActive": False}
    for sid, values in update.items():
        try:
            with transaction.atomic():
                script = scripts.load(pk, ctx.resolve_creation_id(sid) or "")
                if sid in destroy:
                    raise scripts.ScriptError("willDestroy", "The script is destroyed in this request.")
                scripts.update(pk, script, values)
        except scripts.ScriptError as exc:
            out["notUpdated"][sid] = exc.to_json()
            continue
        updated.append(ids.encode(script.pk))
        out["updated"][sid] = None
    for sid in destroy:
        try:
            with transaction.atomic():
                script = scripts.load(pk, ctx.resolve_creation_id(sid) or "")
                object_id = ids.encode(script.pk)
                scripts.destroy(pk, script)
        except scripts.ScriptError as exc:
            out["notDestroyed"][sid] = exc.to_json()
            continue
        destroyed.append(object_id)
        out["destroyed"].append(sid)
    failed = out["notCreated"] or out["notUpdated"] or out["notDestroyed"]
    # RFC 9661 §2.2: the activation happens only if every create, update and destroy succeeded;
    # an id that names nothing is ignored.
    if (activate or deactivate) and not failed:
        wanted = None
        if activate:
            resolved = ctx.resolve_creation_id(target)
            wanted = ids.decode(resolved) if resolved else None
            if wanted is None or not SieveScript.objects.filter(account_id=pk, pk=wanted).exists():
                wanted = activate = None
        if activate or deactivate:
            for spk, now_active in scripts.set_active(pk, wanted):
                object_id = ids.encode(spk)
                updated.append(object_id)
                key = next((cid for cid, v in out["created"].items() if v["id"] == object_id), None)
                if key is not None:
                    out["created"][key]["isActive"] = now_active
                else:
                    key = next((k for k in out["updated"] if (ctx.resolve_creation_id(k) or k) == object_id),
                               object_id)
                    out["updated"][key] = {**(out["updated"].get(key) or {}), "isActive": now_active}
    out["newState"] = scripts.record(pk, created, updated, destroyed)
    for key in ("created", "updated", "notCreated", "notUpdated", "notDestroyed"):
        out[key] = out[key] or None
    out["destroyed"] = out["destroyed"] or None
    return out


@method("SieveScript/validate", SIEVE, account_optional=False, transactional=False)
def script_validate(ctx: Context, args: dict) -> dict:
    ctx.require("jmapSieveScriptValidate")
    pk = c.account(ctx, args)
    blob_id = args.get("blobId")
    if not isinstance(blob_id, str):
        raise invalid_arguments('"blobId" is required and must be an id.')
    try:
        scripts.read_text(pk, blob_id)
        error = None
    except scripts.ScriptError as exc:
        if exc.type == "blobNotFound":
            raise invalid_arguments(f"Blob {blob_id[:64]} not found.") from None
        error = {"type": exc.type, "description": exc.description}
    return {"accountId": ids.encode(pk), "error": error}
