"""What every JMAP /query shares (RFC 8620 §5.5): the argument checks, the FilterOperator walk
with its size limits, comparators, the window of position/anchor/limit over the ordered ids, and
the response. Each data type gives its own conditions and sort keys."""
from __future__ import annotations

from .engine import Context, MethodError, invalid_arguments
from .journal_methods import MAX_UNSIGNED_INT
from .registry_methods import FILTER_LIMITS
from registry import ids


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


def evaluate(tree, item) -> bool:
    """A tree walk_filter built, whose leaves are predicates, applied to one object."""
    if callable(tree):
        return tree(item)
    op, children = tree
    if op == "AND":
        return all(evaluate(t, item) for t in children)
    if op == "OR":
        return any(evaluate(t, item) for t in children)
    return not any(evaluate(t, item) for t in children)


def query_result(ctx: Context, args: dict, account_id: int, state: str, ordered_ids) -> dict:
    """The /query response over the full ordered list of ids: the window, `total` when asked,
    and `limit` only when the server lowered the client's (RFC 8620 §5.5)."""
    page, position, limit, total = window(args, ctx, ordered_ids)
    out = {"accountId": ids.encode(account_id), "queryState": state, "canCalculateChanges": True,
           "position": position, "ids": page}
    if boolean(args, "calculateTotal"):
        out["total"] = total
    if args.get("limit") is not None and args["limit"] > limit:
        out["limit"] = limit
    return out
