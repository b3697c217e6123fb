"""What the Mailbox, Email and Thread methods share: argument checks (RFC 8620 §5), the
`urn:ietf:params:jmap:mail` capability and the FilterOperator walk."""
from __future__ import annotations

from jmapapi import capabilities
from jmapapi.engine import Context, MethodError, check_set_size, invalid_arguments, set_arguments
from jmapapi.journal_methods import account_of
# Re-exported: the mail methods call them as jmap_common.<name>.
from jmapapi.query import (MAX_FILTER_CONDITIONS, MAX_FILTER_DEPTH, boolean, evaluate,  # noqa: F401
                           query_result, sort_list, unsigned, walk_filter, window)
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
