"""What the Mailbox, Email and Thread methods share: argument checks (RFC 8620 §5), the
`urn:ietf:params:jmap:mail` capability and the FilterOperator walk."""
from __future__ import annotations

from jmapapi import capabilities
from jmapapi.engine import Context, MethodError, check_set_size, invalid_arguments, set_arguments
from jmapapi.journal_methods import MAX_UNSIGNED_INT, account_of
from jmapapi.registry_methods import FILTER_LIMITS
from journal import services as journal
from registry import ids

MAIL = "urn:ietf:params:jmap:mail"
MAX_MAILBOX_DEPTH = 10
MAX_MAILBOX_NAME = 255
MAX_ATTACHMENTS_SIZE = 50_000_000
SORT_OPTIONS = ["receivedAt", "size", "from", "to", "subject", "sentAt", "hasKeyword", "allInThreadHaveKeyword",
                "someInThreadHaveKeyword"]


def _account_capability(principal, limits) -> dict:
    return {"maxMailboxesPerEmail": None, "maxMailboxDepth": MAX_MAILBOX_DEPTH,
            "maxSizeMailboxName": MAX_MAILBOX_NAME, "maxSizeAttachmentsPerEmail": MAX_ATTACHMENTS_SIZE,
            "emailQuerySortOptions": SORT_OPTIONS, "mayCreateTopLevelMailbox": True}


capabilities.register(MAIL, account=_account_capability, permission="jmapEmailGet")


def guarded(entry, permission: str):
    """A method registered by jmapapi.journal_methods, checked against the caller's permission."""
    inner = entry.fn

    def fn(ctx: Context, args: dict):
        ctx.require(permission)
        return inner(ctx, args)

    entry.fn = fn
    return entry


def account(ctx: Context, args: dict) -> int:
    return account_of(ctx, args)


def id_list(args: dict, name: str, limit: int, *, required: bool = False) -> list[str] | None:
    value = args.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid_arguments(f'"{name}" must be an array of ids.')
    if len(value) > limit:
        raise MethodError("requestTooLarge", f"At most {limit} ids may be given.")
    return value


def decode_ids(ctx: Context, values) -> dict[str, int | None]:
    """Asked id (maybe '#creation') -> primary key, or None when it names nothing."""
    out = {}
    for value in values:
        resolved = ctx.resolve_creation_id(value)
        out[value] = ids.decode(resolved) if resolved else None
    return out


def properties(args: dict, known: tuple, default: tuple, *, extra=lambda p: False) -> list[str]:
    value = args.get("properties")
    if value is None:
        return list(default)
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise invalid_arguments('"properties" must be an array of property names.')
    unknown = [p for p in value if p not in known and not extra(p)]
    if unknown:
        raise invalid_arguments(f"Unknown property {unknown[0][:100]}.")
    return list(dict.fromkeys(["id", *value]))


def unsigned(args: dict, name: str, default=None, *, signed: bool = False):
    value = args.get(name)
    if value is None:
        return default
    low = -MAX_UNSIGNED_INT if signed else 0
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= MAX_UNSIGNED_INT:
        raise invalid_arguments(f'"{name}" must be {"an" if signed else "an unsigned"} integer.')
    return value


def boolean(args: dict, name: str, default: bool = False) -> bool:
    value = args.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid_arguments(f'"{name}" must be a boolean.')
    return value


def set_objects(args: dict, ctx: Context) -> tuple[dict, dict, list]:
    create, update, destroy = set_arguments(args)
    check_set_size(ctx, create, update, destroy)
    return create, update, destroy


def begin_set(ctx: Context, args: dict, type_name: str) -> tuple[int, dict, dict, list, dict]:
    """What every mail /set does before its first object (RFC 8620 §5.3): the account, the
    arguments, the jmap<Type>Create/Update/Destroy permission each non-empty branch needs,
    ifInState, and the response to fill in (its oldState set)."""
    pk = account(ctx, args)
    create, update, destroy = set_objects(args, ctx)
    for op, branch in (("Create", create), ("Update", update), ("Destroy", destroy)):
        if branch:
            ctx.require(f"jmap{type_name}{op}")
    old_state = journal.state(pk, type_name)
    check_if_in_state(args, old_state)
    out = {"accountId": ids.encode(pk), "oldState": old_state, "created": {}, "updated": {}, "destroyed": [],
           "notCreated": {}, "notUpdated": {}, "notDestroyed": {}}
    return pk, create, update, destroy, out


def check_if_in_state(args: dict, current: str) -> None:
    wanted = args.get("ifInState")
    if wanted is not None and wanted != current:
        raise MethodError("stateMismatch", "The state has changed.")


MAX_FILTER_DEPTH = FILTER_LIMITS["maxFilterDepth"]
# The management objects' limit, advertised in urn:stalwart:jmap: an OR of n conditions is an
# SQL expression n deep, and SQLite refuses one deeper than 1 000 (a serverFail, not the
# client's error); a request of a few hundred KB could otherwise hold thousands.
MAX_FILTER_CONDITIONS = FILTER_LIMITS["maxFilterConditions"]


def _check_filter_size(node) -> None:
    count, stack = 0, [node]
    while stack:
        item = stack.pop()
        if not isinstance(item, dict):
            continue
        is_operator = "operator" in item
        count += 1 if is_operator else max(len(item), 1)
        if count > MAX_FILTER_CONDITIONS:
            raise MethodError("unsupportedFilter", f"A filter may have at most {MAX_FILTER_CONDITIONS} conditions "
                                                   "and operators (maxFilterConditions).")
        if is_operator and isinstance(item.get("conditions"), list):
            stack.extend(item["conditions"])


def walk_filter(node, leaf, depth: int = 0):
    """A FilterOperator tree (RFC 8620 §5.5) folded with `leaf(condition)`: returns
    ("AND"|"OR"|"NOT", [children]) trees of leaf results, validating operators."""
    if depth == 0:
        _check_filter_size(node)
    if depth > MAX_FILTER_DEPTH:
        raise MethodError("unsupportedFilter", "The filter is nested too deeply.")
    if not isinstance(node, dict):
        raise MethodError("unsupportedFilter", "A filter must be an object.")
    if "operator" in node:
        op, conditions = node.get("operator"), node.get("conditions")
        if op not in ("AND", "OR", "NOT") or not isinstance(conditions, list) or set(node) - {"operator", "conditions"}:
            raise MethodError("unsupportedFilter", "A FilterOperator has an operator (AND, OR, NOT) and conditions.")
        return op, [walk_filter(c, leaf, depth + 1) for c in conditions]
    return leaf(node)


def sort_list(args: dict, allowed) -> list[dict]:
    value = args.get("sort")
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid_arguments('"sort" must be an array of Comparators.')
    out = []
    for comparator in value:
        if not isinstance(comparator, dict) or not isinstance(comparator.get("property"), str):
            raise invalid_arguments("A Comparator must be an object with a property.")
        if comparator["property"] not in allowed:
            raise MethodError("unsupportedSort", f"Sorting by {comparator['property'][:64]} is not supported.")
        if not isinstance(comparator.get("isAscending", True), bool):
            raise invalid_arguments('"isAscending" must be a boolean.')
        out.append(comparator)
    return out


def window(args: dict, ctx: Context, ordered_ids, total: int | None = None):
    """position/anchor/anchorOffset/limit of RFC 8620 §5.5 over a full list of ids."""
    position = unsigned(args, "position", 0, signed=True)
    anchor = args.get("anchor")
    anchor_offset = unsigned(args, "anchorOffset", 0, signed=True)
    limit = unsigned(args, "limit", None)
    if anchor is not None and not isinstance(anchor, str):
        raise invalid_arguments('"anchor" must be an id.')
    cap = ctx.limits.query_max_results
    limit = cap if limit is None else min(limit, cap)
    ordered_ids = list(ordered_ids)
    total = len(ordered_ids)
    if anchor is not None:
        try:
            start = ordered_ids.index(anchor) + anchor_offset
        except ValueError:
            raise MethodError("anchorNotFound", "The anchor is not in the results.") from None
        start = max(start, 0)
    else:
        start = position if position >= 0 else max(total + position, 0)
    return ordered_ids[start:start + limit], min(start, total), limit, total
