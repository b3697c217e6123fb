"""The request context: what the edge of the HTTP service reads once and hands on.

The edge (network.middleware) reads the states of every object type a request may depend on
in one query, checks the client address against the block list once, and notes the account
rate limit in force. Everything after it in the same request (authentication, the JMAP
methods, the settings singletons) takes the states from here instead of reading them again.

A request's own changes move states: bump_state() forgets the moved type here, so that a
later read in the same request (an x:T/get after an x:T/set) goes to the database.
Outside a request (commands, tests calling services directly) there is no context and every
read goes to the database, as before.
"""
from __future__ import annotations

import contextvars
from dataclasses import dataclass, field

from django.db import connection

from . import declaration
from .models import ObjectState

_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar("stalwart_request", default=None)
# Types whose states every request reads, named by the apps that read them (besides every
# settings singleton, which any request may serve or consult).
_needed: set[str] = set()
_names: tuple[str, ...] | None = None


def needs(*names: str) -> None:
    """Declare that requests read the states of `names` (called at import by the apps)."""
    global _names
    _needed.update(names)
    _names = None


def _all_names() -> tuple[str, ...]:
    global _names
    if _names is None:
        singletons = {d.name for d in declaration.declarations().values() if d.singleton}
        _names = tuple(sorted(_needed | singletons))
    return _names


@dataclass(eq=False)
class RequestContext:
    states: dict[str, int]
    # The client address the edge checked against the block list (and let through).
    checked_address: str | None = None
    # The HTTP service's limit for authenticated requests, (count, period in seconds), or None.
    account_limit: tuple[int, float] | None = None
    extra: dict = field(default_factory=dict)


def begin() -> tuple[RequestContext, contextvars.Token]:
    """Read the states (one query) and make them this request's context; end() with the token."""
    ctx = RequestContext(states=read(*_all_names()))
    return ctx, _current.set(ctx)


def end(token: contextvars.Token) -> None:
    _current.reset(token)


def current() -> RequestContext | None:
    return _current.get()


def states(*names: str) -> dict[str, int]:
    """The states of `names`: those the request read at its edge, the others in one query."""
    ctx = _current.get()
    known = ctx.states if ctx is not None else {}
    missing = [name for name in names if name not in known]
    if not missing:
        return {name: known[name] for name in names}
    found = read(*missing)
    return {name: known[name] if name in known else found[name] for name in names}


_SQL: dict[int, str] = {}


def read(*names: str) -> dict[str, int]:
    """The current states of `names` from the database (0 for a type never changed).

    Every request reads these, so the query is plain SQL: building it through the ORM cost
    more than the rest of a request with a cached verdict.
    """
    sql = _SQL.get(len(names))
    if sql is None:
        table = connection.ops.quote_name(ObjectState._meta.db_table)
        sql = _SQL[len(names)] = f"SELECT name, state FROM {table} WHERE name IN ({', '.join(['%s'] * len(names))})"
    with connection.cursor() as cursor:
        cursor.execute(sql, list(names))
        found = dict(cursor.fetchall())
    return {name: found.get(name, 0) for name in names}


def moved(name: str) -> None:
    """The request changed objects of `name`: its state must be read again from now on."""
    ctx = _current.get()
    if ctx is not None:
        ctx.states.pop(name, None)
