"""EmailSubmission/get|changes|query|queryChanges|set (RFC 8621 §7), the JMAP face of
`submission.submissions`. Imported by submission.jmap (the app's ready()).

The engine has checked that the caller may open `accountId`; an identity or email of another
account is as unknown as one that does not exist (invalidProperties naming identityId or
emailId, as the reference answers). onSuccessUpdateEmail/onSuccessDestroyEmail become one
implicit Email/set, whose response follows this call's under the same call id (§7.5)."""
from __future__ import annotations

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import Account
from jmapapi.engine import METHODS, Context, Method, MethodError, invalid_arguments
from jmapapi.journal_methods import changes_method, query_changes_method
from jmapapi.registry_methods import WillDestroy
from journal import services as journal
from mail import jmap_common as c
from registry import ids
from registry.errors import SetError

from . import submissions
from .submissions import TYPE

SUBMISSION = "urn:ietf:params:jmap:submission"
FILTERS = {"identityIds", "emailIds", "threadIds", "undoStatus", "before", "after"}
SORTS = ("emailId", "threadId", "sentAt")
SORT_FIELDS = {"emailId": "email_pk", "threadId": "thread_pk", "sentAt": "send_at"}


def _register(name: str, fn, transactional: bool) -> None:
    METHODS[name] = Method(name, fn, SUBMISSION, account_optional=False, transactional=transactional)


# --- get ------------------------------------------------------------------------------------
def submission_get(ctx: Context, args: dict) -> dict:
    ctx.require("jmapEmailSubmissionGet")
    pk = c.account(ctx, args)
    wanted = c.id_list(args, "ids", ctx.limits.get_max_results)
    props = c.properties(args, submissions.PROPERTIES, submissions.PROPERTIES)
    state = journal.state(pk, TYPE)
    rows = submissions.visible(pk)
    if wanted is None:
        found, not_found = list(rows.order_by("pk")[:ctx.limits.get_max_results]), []
    else:
        asked = c.decode_ids(ctx, list(dict.fromkeys(wanted)))
        by_pk = {s.pk: s for s in rows.filter(pk__in=[v for v in asked.values() if v is not None])}
        found, not_found = [], []
        for value, spk in asked.items():
            (found.append(by_pk[spk]) if spk in by_pk else not_found.append(value))
    listed = []
    for sub in found:
        doc = submissions.to_json(sub)
        listed.append({p: doc[p] for p in props})
    return {"accountId": ids.encode(pk), "state": state, "list": listed, "notFound": not_found}


# --- query ----------------------------------------------------------------------------------
def _id_set(ctx: Context, value, name: str) -> list[int]:
    if not isinstance(value, list) or len(value) > 1000 or not all(isinstance(v, str) for v in value):
        raise MethodError("unsupportedFilter", f"{name} must be an array of ids.")
    return [v for v in c.decode_ids(ctx, value).values() if v is not None]


def _date(value, name: str):
    try:
        dt = parse_datetime(value) if isinstance(value, str) else None
    except ValueError:
        dt = None
    if dt is None or dt.tzinfo is None:
        raise MethodError("unsupportedFilter", f"{name} must be a UTCDate.")
    return dt


def _leaf(ctx: Context):
    def leaf(cond: dict):
        unknown = set(cond) - FILTERS
        if unknown:
            raise MethodError("unsupportedFilter", f"Unknown filter {sorted(unknown)[0][:64]}.")
        q = Q()
        for name, value in cond.items():
            if name == "identityIds":
                q &= Q(identity_pk__in=_id_set(ctx, value, name))
            elif name == "emailIds":
                q &= Q(email_pk__in=_id_set(ctx, value, name))
            elif name == "threadIds":
                q &= Q(thread_pk__in=_id_set(ctx, value, name))
            elif name == "undoStatus":
                if value not in (submissions.PENDING, submissions.FINAL, submissions.CANCELED):
                    raise MethodError("unsupportedFilter", 'undoStatus is "pending", "final" or "canceled".')
                q &= Q(undo_status=value)
            elif name == "before":
                q &= Q(send_at__lt=_date(value, name))
            elif name == "after":
                q &= Q(send_at__gte=_date(value, name))
        return q

    return leaf


def _fold(node):
    if isinstance(node, Q):
        return node
    op, children = node
    qs = [_fold(n) for n in children]
    if op == "OR":
        out = Q(pk__in=[])
        for q in qs:
            out |= q
        return out
    out = Q()
    for q in qs:
        out &= q if op == "AND" else ~q
    return out


def query_ids(ctx: Context, args: dict) -> list[str]:
    pk = c.account(ctx, args)
    filt = args.get("filter")
    q = _fold(c.walk_filter(filt, _leaf(ctx))) if filt is not None else None
    comparators = c.sort_list(args, SORTS)
    order = [("" if cmp.get("isAscending", True) else "-") + SORT_FIELDS[cmp["property"]] for cmp in comparators]
    rows = submissions.visible(pk)
    if q is not None:
        rows = rows.filter(q)
    return [ids.encode(v) for v in rows.order_by(*order, "send_at", "pk").values_list("pk", flat=True)]


def submission_query(ctx: Context, args: dict) -> dict:
    ctx.require("jmapEmailSubmissionQuery")
    pk = c.account(ctx, args)
    state = journal.state(pk, TYPE)
    found = query_ids(ctx, args)
    return c.query_result(ctx, args, pk, state, found)


# --- set ------------------------------------------------------------------------------------
def _on_success_arguments(args: dict) -> tuple[dict, list]:
    update = args.get("onSuccessUpdateEmail")
    destroy = args.get("onSuccessDestroyEmail")
    if update is not None and not (isinstance(update, dict) and all(isinstance(p, dict) for p in update.values())):
        raise invalid_arguments('"onSuccessUpdateEmail" must be null or an object of EmailSubmission id to '
                                "Email patch.")
    if destroy is not None and not (isinstance(destroy, list) and all(isinstance(i, str) for i in destroy)):
        raise invalid_arguments('"onSuccessDestroyEmail" must be null or an array of EmailSubmission ids.')
    return update or {}, destroy or []


def submission_set(ctx: Context, args: dict) -> dict:
    pk, create, update, destroy, out = c.begin_set(ctx, args, TYPE)
    on_update, on_destroy = _on_success_arguments(args)
    destroy = list(dict.fromkeys(destroy))
    old_state = out["oldState"]
    # The email of each submission this call created, updated or destroyed, by the name the
    # on-success arguments use for it: "#<creation id>", or the submission's id.
    email_of: dict[str, int] = {}
    immediate: list[int] = []
    account = Account.objects.get(pk=pk) if create else None
    now = timezone.now()
    for cid, values in create.items():
        try:
            with transaction.atomic():
                sub = submissions.create(account, values, may_send=ctx.principal.has("emailSend"),
                                         resolve=ctx.resolve_creation_id, now=now)
        except SetError as exc:
            out["notCreated"][cid] = exc.to_json()
            continue
        sid = ids.encode(sub.pk)
        ctx.created_ids[cid] = sid
        out["created"][cid] = {"id": sid, "threadId": ids.encode(sub.thread_pk), "sendAt": submissions.utc(sub.send_at),
                               "undoStatus": sub.undo_status}
        email_of[f"#{cid}"] = sub.email_pk
        if sub.send_at <= now:
            immediate.append(sub.pk)
    for object_id, patch in update.items():
        target = ctx.resolve_creation_id(object_id) or object_id
        try:
            with transaction.atomic():
                if object_id in destroy:
                    submissions.load(pk, target)  # notFound comes before willDestroy
                    raise WillDestroy("The submission is destroyed in this request.")
                sub = submissions.update(pk, target, patch)
        except SetError as exc:
            out["notUpdated"][object_id] = exc.to_json()
            continue
        out["updated"][object_id] = None
        email_of[object_id] = sub.email_pk
    for object_id in destroy:
        try:
            with transaction.atomic():
                sub = submissions.destroy(pk, ctx.resolve_creation_id(object_id) or object_id)
        except SetError as exc:
            out["notDestroyed"][object_id] = exc.to_json()
            continue
        out["destroyed"].append(object_id)
        email_of[object_id] = sub.email_pk
    changed = out["created"] or out["updated"] or out["destroyed"]
    out["newState"] = journal.state(pk, TYPE) if changed else old_state
    for key in ("created", "updated", "destroyed", "notCreated", "notUpdated", "notDestroyed"):
        out[key] = out[key] or None

    for sub_pk in immediate:
        submissions.send_after_commit(sub_pk)
    # §7.5: one implicit Email/set for the submissions that succeeded, after this response.
    email_update = {ids.encode(email_of[k]): patch for k, patch in on_update.items() if k in email_of}
    email_destroy = list(dict.fromkeys(ids.encode(email_of[k]) for k in on_destroy if k in email_of))
    if email_update or email_destroy:
        implicit = {"accountId": out["accountId"]}
        if email_update:
            implicit["update"] = email_update
        if email_destroy:
            implicit["destroy"] = email_destroy
        ctx.then_call("Email/set", implicit)
    return out


_register("EmailSubmission/get", submission_get, transactional=False)
_register("EmailSubmission/query", submission_query, transactional=False)
_register("EmailSubmission/set", submission_set, transactional=True)
c.guarded(changes_method("EmailSubmission/changes", TYPE, SUBMISSION), "jmapEmailSubmissionChanges")
c.guarded(query_changes_method("EmailSubmission/queryChanges", TYPE, SUBMISSION, results=query_ids),
          "jmapEmailSubmissionQueryChanges")
