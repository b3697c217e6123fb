"""Quota/get, changes, query and queryChanges (RFC 9425) and the `urn:ietf:params:jmap:quota`
capability.

An account has one quota while it has a disk limit (`Account.max_disk_quota`): the octets of
distinct content it holds (blobs.services.usage, live), under the reference's id for it. An
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

from . import capabilities
from .engine import Context, MethodError, invalid_arguments, method
from .journal_methods import MAX_UNSIGNED_INT, account_of, changes_method, query_changes_method

QUOTA = "urn:ietf:params:jmap:quota"
PROPERTIES = ("id", "resourceType", "used", "hardLimit", "warnLimit", "softLimit", "scope", "name", "description",
              "types")
FILTERS = ("name", "scope", "resourceType", "type")
SORTS = ("name", "used")
MAX_FILTER_DEPTH = 16
# The data types whose storage the disk quota counts (RFC 9425 §4.1 `types`): messages, and the
# uploads (blobs) not yet made into one.
TYPES = ["Email", "Blob"]

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
        "types": list(TYPES),
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
def _condition(node, depth: int = 0):
    """The filter as a predicate over a quota's properties; unsupportedFilter when malformed."""
    if depth > MAX_FILTER_DEPTH:
        raise MethodError("unsupportedFilter", "The filter is nested too deeply.")
    if not isinstance(node, dict):
        raise MethodError("unsupportedFilter", "A filter must be an object.")
    if "operator" in node:
        op, conditions = node.get("operator"), node.get("conditions")
        if op not in ("AND", "OR", "NOT") or not isinstance(conditions, list) or set(node) - {"operator", "conditions"}:
            raise MethodError("unsupportedFilter", "A FilterOperator has an operator (AND, OR, NOT) and conditions.")
        children = [_condition(c, depth + 1) for c in conditions]
        if op == "AND":
            return lambda q: all(c(q) for c in children)
        if op == "OR":
            return lambda q: any(c(q) for c in children)
        return lambda q: not any(c(q) for c in children)
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


def _sort(args: dict) -> list[tuple[str, bool]]:
    value = args.get("sort")
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid_arguments('"sort" must be an array of Comparators.')
    out = []
    for comparator in value:
        if not isinstance(comparator, dict) or not isinstance(comparator.get("property"), str):
            raise invalid_arguments("A Comparator must be an object with a property.")
        if comparator["property"] not in SORTS:
            raise MethodError("unsupportedSort", f"Sorting by {comparator['property'][:64]} is not supported.")
        ascending = comparator.get("isAscending", True)
        if not isinstance(ascending, bool):
            raise invalid_arguments('"isAscending" must be a boolean.')
        out.append((comparator["property"], ascending))
    return out


def _query_ids(ctx: Context, args: dict) -> list[str]:
    pk = account_of(ctx, args)
    test = _condition(args["filter"]) if args.get("filter") is not None else (lambda q: True)
    order = _sort(args)
    found = [q for q in quotas(pk) if test(q)]
    found.sort(key=lambda q: q["id"])
    for prop, ascending in reversed(order):
        found.sort(key=lambda q: (q[prop] or "").casefold() if prop == "name" else q[prop], reverse=not ascending)
    return [q["id"] for q in found]


def _unsigned(args: dict, name: str, default, *, signed: bool = False):
    value = args.get(name, default)
    if value is None:
        return default
    low = -MAX_UNSIGNED_INT if signed else 0
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= MAX_UNSIGNED_INT:
        raise invalid_arguments(f'"{name}" must be {"an" if signed else "an unsigned"} integer.')
    return value


@method("Quota/query", QUOTA, account_optional=False, transactional=False)
def quota_query(ctx: Context, args: dict) -> dict:
    ctx.require("jmapQuotaQuery")
    pk = account_of(ctx, args)
    state = _state(pk)
    found = _query_ids(ctx, args)
    position = _unsigned(args, "position", 0, signed=True)
    anchor = args.get("anchor")
    anchor_offset = _unsigned(args, "anchorOffset", 0, signed=True)
    limit = _unsigned(args, "limit", None)
    calculate_total = args.get("calculateTotal", False)
    if not isinstance(calculate_total, bool):
        raise invalid_arguments('"calculateTotal" must be a boolean.')
    if anchor is not None and not isinstance(anchor, str):
        raise invalid_arguments('"anchor" must be an id.')
    cap = ctx.limits.query_max_results
    limit = cap if limit is None else min(limit, cap)
    total = len(found)
    if anchor is not None:
        if anchor not in found:
            raise MethodError("anchorNotFound", "The anchor is not in the results.")
        start = max(found.index(anchor) + anchor_offset, 0)
    else:
        start = position if position >= 0 else max(total + position, 0)
    out = {"accountId": ids.encode(pk), "queryState": state, "canCalculateChanges": True,
           "position": min(start, total), "ids": found[start:start + limit], "limit": limit}
    if calculate_total:
        out["total"] = total
    return out


_guarded(query_changes_method("Quota/queryChanges", blobs.QUOTA_TYPE, QUOTA, _query_ids), "jmapQuotaQueryChanges")
