"""The JMAP face of sending: Identity/get|changes|set (RFC 8621 §6), VacationResponse/get|set
(§8), EmailSubmission/* (§7, in jmap_submission), and the session capabilities
`urn:ietf:params:jmap:submission` and `urn:ietf:params:jmap:vacationresponse` (advertised
because these methods exist).

The engine has already checked that the caller may open `accountId`; the services decide the
rest (an identity of another account is notFound, an address the account may not use is
forbiddenFrom). Imported by the app's ready()."""
from __future__ import annotations

from accounts.models import Account
from jmapapi import capabilities
from jmapapi.engine import METHODS, Context, Method, MethodError, check_set_size, invalid_arguments, set_arguments
from jmapapi.journal_methods import account_of, changes
from jmapapi.registry_methods import WillDestroy
from journal import services as journal
from registry import ids
from registry.errors import Forbidden, SetError, SingletonError

from . import identities, jmap_submission, vacation  # noqa: F401  (EmailSubmission/* join METHODS)
from .submissions import MAX_DELAYED_SEND, SUBMISSION_EXTENSIONS

SUBMISSION = "urn:ietf:params:jmap:submission"
VACATION = "urn:ietf:params:jmap:vacationresponse"


def _string_list(args: dict, name: str) -> list[str] | None:
    value = args.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid_arguments(f'"{name}" must be null or an array of strings.')
    return value


def _properties(args: dict, known: tuple[str, ...]) -> list[str] | None:
    props = _string_list(args, "properties")
    unknown = [p for p in props or () if p not in known]
    if unknown:
        raise invalid_arguments(f"Unknown properties: {', '.join(unknown[:10])}.")
    return props


def _pick(doc: dict, props: list[str] | None) -> dict:
    return doc if props is None else {k: v for k, v in doc.items() if k == "id" or k in props}


def _set_arguments(ctx: Context, args: dict) -> tuple[dict, dict, list]:
    create, update, destroy = set_arguments(args)
    destroy = list(dict.fromkeys(destroy))
    check_set_size(ctx, create, update, destroy)
    return create, update, destroy


def _if_in_state(args: dict, current: str) -> str | None:
    wanted = args.get("ifInState")
    if wanted is not None and not isinstance(wanted, str):
        raise invalid_arguments('"ifInState" must be a string.')
    if wanted is not None and wanted != current:
        raise MethodError("stateMismatch", "The state does not match ifInState.")
    return wanted


def _check_no_interleaving(if_in_state: str | None, journalled: int, final: str) -> None:
    """With ifInState, the writes must follow that state directly. The journal's counter is
    locked from this call's first write to the commit, so only a writer that committed between
    the check and that write can sit in between (PostgreSQL; SQLite's write lock is held from
    the start): raising rolls back the whole call, as if the check had failed."""
    if if_in_state is not None and journalled and int(final) != int(if_in_state) + journalled:
        raise MethodError("stateMismatch", "The state does not match ifInState.")


def _require(ctx: Context, permission: str) -> None:
    """Per object, as RFC 8620 §5.3 lets a server refuse one operation and do the others."""
    if not ctx.principal.has(permission):
        raise Forbidden("You are not authorized to perform this action.")


# --- Identity -------------------------------------------------------------------------------
def identity_get(ctx: Context, args: dict) -> dict:
    ctx.require("jmapIdentityGet")
    account_id = account_of(ctx, args)
    wanted = _string_list(args, "ids")
    props = _properties(args, identities.PROPERTIES)
    limit = ctx.limits.get_max_results
    if wanted is not None and len(wanted) > limit:
        raise MethodError("requestTooLarge", f"At most {limit} ids may be fetched at once.")
    identities.ensure_default(account_id)
    if wanted is None:
        found = list(identities.visible(account_id).order_by("pk")[:limit])
        not_found = []
    else:
        wanted = list(dict.fromkeys(wanted))
        resolved = {w: ctx.resolve_creation_id(w) or w for w in wanted}
        pks = {pk for pk in (ids.decode(r) for r in resolved.values()) if pk is not None}
        by_pk = {i.pk: i for i in identities.visible(account_id).filter(pk__in=pks)} if pks else {}
        found, not_found = [], []
        for w in wanted:
            identity = by_pk.get(ids.decode(resolved[w]))
            (found.append(identity) if identity is not None else not_found.append(w))
    return {"accountId": ids.encode(account_id), "state": journal.state(account_id, identities.TYPE),
            "list": [_pick(identities.to_json(i), props) for i in found], "notFound": not_found}


def identity_changes(ctx: Context, args: dict) -> dict:
    ctx.require("jmapIdentityChanges")
    identities.ensure_default(account_of(ctx, args))
    return changes(ctx, args, identities.TYPE)


def identity_set(ctx: Context, args: dict) -> dict:
    account_id = account_of(ctx, args)
    create, update, destroy = _set_arguments(ctx, args)
    old_state = journal.state(account_id, identities.TYPE)
    if_in_state = _if_in_state(args, old_state)
    out = {"accountId": ids.encode(account_id), "oldState": old_state, "newState": old_state,
           "created": {}, "updated": {}, "destroyed": [], "notCreated": {}, "notUpdated": {}, "notDestroyed": {}}
    account = Account.objects.get(pk=account_id) if create else None
    for cid, body in create.items():
        try:
            _require(ctx, "jmapIdentityCreate")
            identity = identities.create(account, body)
            new_id = ids.encode(identity.pk)
            ctx.created_ids[cid] = new_id
            # RFC 8620 §5.3 asks for the server-set and defaulted properties at least; the whole
            # object is sent, since clients such as jmapc decode it as a complete Identity.
            out["created"][cid] = identities.to_json(identity)
        except SetError as exc:
            out["notCreated"][cid] = exc.to_json()
    for object_id, patch in update.items():
        try:
            _require(ctx, "jmapIdentityUpdate")
            target = ctx.resolve_creation_id(object_id) or object_id
            if object_id in destroy:
                identities.load(account_id, target)  # notFound comes before willDestroy
                raise WillDestroy("The identity is destroyed in this request.")
            identities.update(account_id, target, patch)
            out["updated"][object_id] = None
        except SetError as exc:
            out["notUpdated"][object_id] = exc.to_json()
    for object_id in destroy:
        try:
            _require(ctx, "jmapIdentityDestroy")
            identities.destroy(account_id, ctx.resolve_creation_id(object_id) or object_id)
            out["destroyed"].append(object_id)
        except SetError as exc:
            out["notDestroyed"][object_id] = exc.to_json()
    journalled = len(out["created"]) + len(out["updated"]) + len(out["destroyed"])
    if journalled:
        out["newState"] = journal.state(account_id, identities.TYPE)
    _check_no_interleaving(if_in_state, journalled, out["newState"])
    for key in ("created", "updated", "destroyed", "notCreated", "notUpdated", "notDestroyed"):
        out[key] = out[key] or None
    return out


# --- VacationResponse -----------------------------------------------------------------------
def vacation_get(ctx: Context, args: dict) -> dict:
    ctx.require("jmapVacationResponseGet")
    account_id = account_of(ctx, args)
    wanted = _string_list(args, "ids")
    props = _properties(args, vacation.PROPERTIES)
    listed, not_found = [], []
    for object_id in (dict.fromkeys(wanted) if wanted is not None else [vacation.SINGLETON]):
        if object_id == vacation.SINGLETON:
            listed.append(_pick(vacation.to_json(vacation.current(account_id)), props))
        else:
            not_found.append(object_id)
    return {"accountId": ids.encode(account_id), "state": journal.state(account_id, vacation.TYPE),
            "list": listed, "notFound": not_found}


def vacation_set(ctx: Context, args: dict) -> dict:
    account_id = account_of(ctx, args)
    create, update, destroy = _set_arguments(ctx, args)
    old_state = journal.state(account_id, vacation.TYPE)
    if_in_state = _if_in_state(args, old_state)
    out = {"accountId": ids.encode(account_id), "oldState": old_state, "newState": old_state,
           "updated": {}, "notCreated": {}, "notUpdated": {}, "notDestroyed": {}}
    # RFC 8621 §8: the one object always exists; creating or destroying it is a singleton error.
    for cid in create:
        out["notCreated"][cid] = SingletonError("The VacationResponse cannot be created: it always exists.").to_json()
    for object_id in destroy:
        out["notDestroyed"][object_id] = SingletonError("The VacationResponse cannot be destroyed.").to_json()
    for object_id, patch in update.items():
        try:
            _require(ctx, "jmapVacationResponseUpdate")
            vacation.update(account_id, object_id, patch)
            out["updated"][object_id] = None
        except SetError as exc:
            out["notUpdated"][object_id] = exc.to_json()
    if out["updated"]:
        out["newState"] = journal.state(account_id, vacation.TYPE)
    _check_no_interleaving(if_in_state, len(out["updated"]), out["newState"])
    for key in ("updated", "notCreated", "notUpdated", "notDestroyed"):
        out[key] = out[key] or None
    return {**out, "created": None, "destroyed": None}


def _register(name: str, fn, capability: str, transactional: bool) -> None:
    # RFC 8620 §5: accountId is required by the standard methods (unlike the x: management ones).
    METHODS[name] = Method(name, fn, capability, account_optional=False, transactional=transactional)


# Reads make the default identity in a short transaction of their own, only the first time.
_register("Identity/get", identity_get, SUBMISSION, transactional=False)
_register("Identity/changes", identity_changes, SUBMISSION, transactional=False)
_register("Identity/set", identity_set, SUBMISSION, transactional=True)
_register("VacationResponse/get", vacation_get, VACATION, transactional=False)
_register("VacationResponse/set", vacation_set, VACATION, transactional=True)

capabilities.register(
    SUBMISSION, account=lambda principal, limits: {"maxDelayedSend": MAX_DELAYED_SEND,
                                                   "submissionExtensions": SUBMISSION_EXTENSIONS},
    permission="jmapEmailSubmissionCreate")
capabilities.register(VACATION, account=lambda principal, limits: {}, permission="jmapVacationResponseGet")
