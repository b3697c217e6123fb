"""The JMAP face of the change journal: `Foo/changes` and `Foo/queryChanges` for any data type
whose changes go through `journal.services`, so that each type's methods are one line:

    changes_method("Mailbox/changes", "Mailbox", MAIL)
    query_changes_method("Mailbox/queryChanges", "Mailbox", MAIL, results=mailbox_query_ids)

The engine has already checked `accountId` (the caller's own, or one it may impersonate); the
arguments are validated here as RFC 8620 §5.2 and §5.6 say (invalidArguments), and the
journal's refusals become cannotCalculateChanges and tooManyChanges. A type whose objects are
not all visible to everyone who may open the account (shared mailboxes) filters the ids in its
own handler around `changes()`; the journal itself knows no rights.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from journal import services as journal
from registry import ids

from .engine import METHODS, Context, Method, MethodError, invalid_arguments

# RFC 8620 §1.3: UnsignedInt is at most 2^53-1.
MAX_UNSIGNED_INT = 2**53 - 1


def account_of(ctx: Context, args: dict) -> int:
    """The account a call acts on (the engine checked that the caller may)."""
    return ids.decode(args.get("accountId") or ctx.account_id)


def state(ctx: Context, args: dict, type: str) -> str:
    """The `state` a Foo/get or Foo/set answers with."""
    return journal.state(account_of(ctx, args), type)


def _unsigned(args: dict, name: str, *, positive: bool) -> int | None:
    value = args.get(name)
    if value is None:
        return None
    if (not isinstance(value, int) or isinstance(value, bool) or value < (1 if positive else 0)
            or value > MAX_UNSIGNED_INT):
        raise invalid_arguments(f'"{name}" must be {"a positive" if positive else "an unsigned"} integer or null.')
    return value


def _state_argument(args: dict, name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str):
        raise invalid_arguments(f'"{name}" is required and must be a string.')
    return value


def changes(ctx: Context, args: dict, type: str) -> dict:
    """A `Foo/changes` response (RFC 8620 §5.2) from the journal of `type`."""
    since = _state_argument(args, "sinceState")
    wanted = _unsigned(args, "maxChanges", positive=True)
    # The server's own maximum applies whether or not the client names one (§5.2: the server
    # MAY return fewer), so a client far behind pages through intermediate states.
    cap = min(wanted or ctx.limits.changes_max_results, ctx.limits.changes_max_results)
    try:
        got = journal.changes(account_of(ctx, args), type, since, cap)
    except journal.CannotCalculateChanges as exc:
        raise MethodError("cannotCalculateChanges", str(exc)) from None
    return {"accountId": ids.encode(account_of(ctx, args)), "oldState": since, "newState": got.new_state,
            "hasMoreChanges": got.has_more_changes, "created": got.created, "updated": got.updated,
            "destroyed": got.destroyed}


def query_changes(ctx: Context, args: dict, type: str, results: Callable[[Context, dict], Sequence[str]], *,
                  immutable: Callable[[dict], bool] = lambda args: False) -> dict:
    """A `Foo/queryChanges` response (RFC 8620 §5.6).

    `results(ctx, args)` runs the query of `args` (its filter and sort, validated there, with
    the query's own method errors) and returns every matching id in order; the journal tells
    which ids changed since `sinceQueryState`. `immutable(args)` says whether that filter and
    sort read only properties that never change, which is when `upToId` may cut the answer.
    A query state is the type's journal state, so a type whose query reads another type's
    objects (Email by mailbox) must record a change of its own objects when those change.
    """
    since = _state_argument(args, "sinceQueryState")
    max_changes = _unsigned(args, "maxChanges", positive=False)
    up_to_id = args.get("upToId")
    if up_to_id is not None and not isinstance(up_to_id, str):
        raise invalid_arguments('"upToId" must be an id or null.')
    calculate_total = args.get("calculateTotal", False)
    if not isinstance(calculate_total, bool):
        raise invalid_arguments('"calculateTotal" must be a boolean.')
    account = account_of(ctx, args)
    try:
        got = journal.query_changes(account, type, since, lambda: results(ctx, args), max_changes=max_changes,
                                    up_to_id=up_to_id, immutable=immutable(args))
    except journal.CannotCalculateChanges as exc:
        raise MethodError("cannotCalculateChanges", str(exc)) from None
    except journal.TooManyChanges as exc:
        raise MethodError("tooManyChanges", str(exc)) from None
    out = {"accountId": ids.encode(account), "oldQueryState": since, "newQueryState": got.new_state,
           "removed": got.removed, "added": [{"id": object_id, "index": index} for object_id, index in got.added]}
    if calculate_total:
        out["total"] = got.total
    return out


def changes_method(name: str, type: str, capability: str) -> Method:
    """Register `name` (e.g. "Mailbox/changes") as the journal's changes of `type`."""
    # A read of one statement: no transaction of its own (on SQLite one would take the write lock).
    METHODS[name] = Method(name, lambda ctx, args: changes(ctx, args, type), capability,
                           account_optional=False, transactional=False)
    return METHODS[name]


def query_changes_method(name: str, type: str, capability: str, results: Callable[[Context, dict], Sequence[str]],
                         *, immutable: Callable[[dict], bool] = lambda args: False) -> Method:
    """Register `name` (e.g. "Email/queryChanges") over the journal of `type` and a query."""
    METHODS[name] = Method(name, lambda ctx, args: query_changes(ctx, args, type, results, immutable=immutable),
                           capability, account_optional=False, transactional=False)
    return METHODS[name]
