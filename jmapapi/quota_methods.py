"""Quota/get, changes, query and queryChanges (RFC 9425) and the `urn:ietf:params:jmap:quota`
capability.

An account has one quota while it has a disk limit (`Account.max_disk_quota`): the octets of
distinct content it holds and of the calendar objects and vCards it stores (blobs.services.usage,
live), under the reference's id for it. An
account without a limit has no Quota object (RFC 9425 has no unlimited quota); tenants have no
quotas in this server yet. Unlike the reference, whose Quota/changes answers
cannotCalculateChanges, the blob store journals the quota whenever its usage moves and the
account's admin journals a change of its limit, so Quota/changes and /queryChanges answer.
"""
from __future__ import annotations

from accounts.models import Account
from blobs import services as blobs
from journal import services as journal
from registry import ids

from . import capabilities, query
from .engine import Context, MethodError, invalid_arguments, method
from .journal_methods import account_of, changes_method, query_changes_method

QUOTA = "urn:ietf:params:jmap:quota"
PROPERTIES = ("id", "resourceType", "used", "hardLimit", "warnLimit", "softLimit", "scope", "name", "description",
              "types")
FILTERS = ("name", "scope", "resourceType", "type")
SORTS = ("name", "used")
# The data types whose storage the disk quota counts (RFC 9425 §4.1 `types`): messages, the
# uploads (blobs) not yet made into one, then the stores registered with blobs (calendar
# events, contact cards).
TYPES = ["Email", "Blob"]


def types() -> list[str]:
    return [*TYPES, *(t for t in blobs.usage_types() if t not in TYPES)]

capabilities.register(QUOTA, account=lambda principal, limits: {}, permission="jmapQuotaGet")


def quotas(account_pk: int) -> list[dict]:
    """The account's quotas, every property filled in."""
    account = (Account.objects.filter(pk=account_pk).only("email_address", "description", "max_disk_quota")
               .first())
    if account is None or account.max_disk_quota is None:
        return []
    return [{
        "id": blobs.DISK_QUOTA_ID,
        "resourceType": "octets",
        "used": blobs.usage(account_pk),
        "hardLimit": account.max_disk_quota,
        "warnLimit": None,
        "softLimit": None,
        "scope": "account",
        "name": account.email_address,
        "description": account.description or None,
        "types": types(),
    }]


def _state(pk: int) -> str:
    return journal.state(pk, blobs.QUOTA_TYPE)


@method("Quota/get", QUOTA, account_optional=False, transactional=False)
def quota_get(ctx: Context, args: dict) -> dict:
    ctx.require("jmapQuotaGet")
    pk = account_of(ctx, args)
    wanted = args.get("ids")
    if wanted is not None:
        if not isinstance(wanted, list) or not all(isinstance(v, str) for v in wanted):
            raise invalid_arguments('"ids" must be an array of ids or null.')
        if len(wanted) > ctx.limits.get_max_results:
            raise MethodError("requestTooLarge", f"At most {ctx.limits.get_max_results} ids may be given.")
    props = args.get("properties")
    if props is None:
        props = list(PROPERTIES)
    elif not isinstance(props, list) or not all(isinstance(p, str) for p in props):
        raise invalid_arguments('"properties" must be an array of property names.')
    else:
        unknown = [p for p in props if p not in PROPERTIES]
        if unknown:
            raise invalid_arguments(f"Unknown property {unknown[0][:100]}.")
        props = list(dict.fromkeys(["id", *props]))
    state = _state(pk)
    have = {q["id"]: q for q in quotas(pk)}
    listed, not_found = [], []
    for asked in (list(have) if wanted is None else list(dict.fromkeys(wanted))):
        quota = have.get(asked)
        if quota is None:
            not_found.append(asked)
        else:
            listed.append({p: quota[p] for p in props})
    return {"accountId": ids.encode(pk), "state": state, "list": listed, "notFound": not_found}


def _guarded(entry, permission: str):
    inner = entry.fn

    def fn(ctx: Context, args: dict):
        ctx.require(permission)
        return inner(ctx, args)

    entry.fn = fn
    return entry


_guarded(changes_method("Quota/changes", blobs.QUOTA_TYPE, QUOTA), "jmapQuotaChanges")


# --- Quota/query (RFC 9425 §4.4) --------------------------------------------------------------
def _leaf(node: dict):
    """One FilterCondition as a predicate over a quota's properties."""
    unknown = set(node) - set(FILTERS)
    if unknown:
        raise MethodError("unsupportedFilter", f"Unknown filter {sorted(unknown)[0][:64]}.")
    for name, value in node.items():
        if not isinstance(value, str):
            raise MethodError("unsupportedFilter", f"{name} must be a string.")
    tests = []
    if "name" in node:
        wanted = node["name"].casefold()
        tests.append(lambda q: wanted in (q["name"] or "").casefold())
    for name in ("scope", "resourceType"):
        if name in node:
            tests.append(lambda q, name=name, value=node[name]: q[name] == value)
    if "type" in node:
        tests.append(lambda q, value=node["type"]: value in q["types"])
    return lambda q: all(t(q) for t in tests)


def _query_ids(ctx: Context, args: dict) -> list[str]:
    pk = account_of(ctx, args)
    tree = query.walk_filter(args["filter"], _leaf) if args.get("filter") is not None else None
    found = [q for q in quotas(pk) if tree is None or query.evaluate(tree, q)]
    found.sort(key=lambda q: q["id"])
    for comp in reversed(query.sort_list(args, SORTS)):
        prop = comp["property"]
        found.sort(key=lambda q: (q[prop] or "").casefold() if prop == "name" else q[prop],
                   reverse=not comp.get("isAscending", True))
    return [q["id"] for q in found]


@method("Quota/query", QUOTA, account_optional=False, transactional=False)
def quota_query(ctx: Context, args: dict) -> dict:
    ctx.require("jmapQuotaQuery")
    pk = account_of(ctx, args)
    state = _state(pk)
    return query.query_result(ctx, args, pk, state, _query_ids(ctx, args))


_guarded(query_changes_method("Quota/queryChanges", blobs.QUOTA_TYPE, QUOTA, _query_ids), "jmapQuotaQueryChanges")
