"""The change journal: per account and data type, what was created, updated and destroyed.

It knows no protocol. A data type is a short string ("Mailbox", "Email", "CalendarEvent", ...);
an object id is the string a client knows the object by (a JMAP id); a destroyed object may
carry an `href` (its DAV path) so that a sync client can be told it went away.

    record(account_id, "Email", created=["m1"], destroyed={"m0": "/dav/…/m0.eml"}) -> "17"
    record_many(account_id, {"Email": Change(created=["m1"]), "Thread": Change(updated=["t1"])})
    state(account_id, "Email") -> "17"
    changes(account_id, "Email", since_state="12", max_changes=500) -> Changes(...)
    query_changes(account_id, "Email", since_state, results=lambda: [...]) -> QueryChanges(...)

Guarantees:

* A change is written in the caller's transaction: call `record()` inside the
  `transaction.atomic()` that writes the objects, as its last step. If that transaction rolls
  back, so does the journal. Recording last also keeps the counter row, which every writer of
  the account's type locks, locked for the shortest time, and always after the object rows.
* Every changed object gets a change id of its own, from a per account+type counter bumped
  under its row lock, so ids are handed out in commit order: a reader that sees state n sees
  every entry up to n (no client can skip a change that commits late with a lower id), and any
  change id is a state a client can resume from (an intermediate state of `changes()`).
* `changes()` and `state()` are one indexed query each, whatever the journal's size; a
  `since_state` that is not a state this journal gave out, that is in the future, or older than
  what pruning kept raises `CannotCalculateChanges`, never a wrong answer.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Max
from django.utils import timezone

from stalwart_site.inserts import Insert

from . import notify
from .models import Counter, Entry

__all__ = ["CannotCalculateChanges", "Change", "Changes", "QueryChanges", "TooManyChanges", "changes",
           "prune", "query_changes", "record", "record_many", "state", "states"]

CREATED, UPDATED, DESTROYED = Entry.Kind.CREATED, Entry.Kind.UPDATED, Entry.Kind.DESTROYED
MAX_TYPE_LENGTH = Counter._meta.get_field("type").max_length
MAX_ID_LENGTH = Entry._meta.get_field("object_id").max_length
MAX_HREF_LENGTH = Entry._meta.get_field("href").max_length
# States are decimal change ids; 18 digits stay below 2**63 on every database.
_MAX_STATE_DIGITS = 18


class CannotCalculateChanges(Exception):
    """The journal cannot tell what changed since that state (unknown, future or pruned)."""


class TooManyChanges(Exception):
    """A query_changes() answer would hold more than the caller's maximum."""


Ids = Iterable[str] | Mapping[str, str]


@dataclass(frozen=True)
class Change:
    """The objects of one type that one write created, updated and destroyed.

    Each is a list of ids, or a mapping id -> href where the object has a DAV path.
    """

    created: Ids = ()
    updated: Ids = ()
    destroyed: Ids = ()


@dataclass
class Changes:
    """The answer of `changes()`, with RFC 8620 §5.2 semantics.

    An object created and then updated is only in `created`; updated then destroyed only in
    `destroyed`; created then destroyed nowhere; destroyed then created again (an id reused, as
    a DAV href may be) in `updated`. `hrefs` gives the latest href of each listed id that has one.
    """

    old_state: str
    new_state: str
    has_more_changes: bool
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    destroyed: list[str] = field(default_factory=list)
    hrefs: dict[str, str] = field(default_factory=dict)


@dataclass
class QueryChanges:
    """The answer of `query_changes()`, with RFC 8620 §5.6 semantics."""

    old_state: str
    new_state: str
    total: int
    removed: list[str] = field(default_factory=list)
    added: list[tuple[str, int]] = field(default_factory=list)


# --- writing ----------------------------------------------------------------------------------

def record(account_id: int, type: str, *, created: Ids = (), updated: Ids = (), destroyed: Ids = ()) -> str:
    """Journal one write to `account_id`'s objects of `type`; return the type's new state.

    Call it inside the transaction that writes the objects (it opens one if there is none).
    Ids are recorded in the order created, updated, destroyed; an id may appear in several.
    """
    return record_many(account_id, {type: Change(created, updated, destroyed)})[type]


def record_many(account_id: int, changes_by_type: Mapping[str, Change]) -> dict[str, str]:
    """Journal one write that touched several types (an Email, its Thread, its Mailboxes' counts).

    Two queries, however many types and ids: one upsert that bumps (or creates) every counter,
    locking them in the order of their names, and one INSERT of every entry. Returns each
    type's new state; a type with no ids keeps its state (read, not written: one query more).
    """
    rows: dict[str, list[tuple[str, int, str]]] = {}
    for type, change in changes_by_type.items():
        _check_type(type)
        listed = [*_items(change.created, CREATED), *_items(change.updated, UPDATED),
                  *_items(change.destroyed, DESTROYED)]
        rows[type] = listed
    moving = {type: len(listed) for type, listed in rows.items() if listed}
    if not moving:
        current = states(account_id, list(rows))
        return {type: current[type] for type in rows}
    now = timezone.now()
    with transaction.atomic(savepoint=False):
        last = _bump(account_id, moving)
        entries = []
        for type, count in moving.items():
            first = last[type] - count + 1
            entries.extend((account_id, type, first + n, object_id, kind, href, now)
                           for n, (object_id, kind, href) in enumerate(rows[type]))
        _ENTRY_ROWS.run(entries)
        notify.publish_on_commit(account_id, last)
    out = {type: str(value) for type, value in last.items()}
    if len(out) < len(rows):
        out.update(states(account_id, [type for type in rows if type not in out]))
    return out


# The entries' INSERT, its SQL built once (stalwart_site.inserts): the journal is written by every
# write of every data type, delivery's included.
_ENTRY_ROWS = Insert(Entry, ["account", "type", "change", "object_id", "kind", "href", "at"])


def _items(ids: Ids, kind: int) -> list[tuple[str, int, str]]:
    if isinstance(ids, str):
        raise TypeError("ids are given as a list or a mapping id -> href, not as one string")
    pairs = ids.items() if isinstance(ids, Mapping) else ((object_id, "") for object_id in ids)
    out = []
    for object_id, href in pairs:
        # NUL is refused here because PostgreSQL refuses it in text (a 5xx at the INSERT).
        if not isinstance(object_id, str) or not 0 < len(object_id) <= MAX_ID_LENGTH or "\0" in object_id:
            raise ValueError(f"an object id is a string of 1 to {MAX_ID_LENGTH} characters, not {object_id!r}")
        if not isinstance(href, str) or len(href) > MAX_HREF_LENGTH or "\0" in href:
            raise ValueError(f"an href is a string of at most {MAX_HREF_LENGTH} characters, without NUL")
        out.append((object_id, kind, href))
    return out


def _check_type(type: str) -> None:
    if not isinstance(type, str) or not 0 < len(type) <= MAX_TYPE_LENGTH or "\0" in type:
        raise ValueError(f"a data type is a string of 1 to {MAX_TYPE_LENGTH} characters, not {type!r}")


def _bump(account_id: int, counts: Mapping[str, int]) -> dict[str, int]:
    """Add counts[type] to each counter, creating the missing ones; return {type: new last}.

    One upsert (PostgreSQL and SQLite both have INSERT … ON CONFLICT … RETURNING). Its rows are
    taken in the order of their names, so every writer locks an account's counters in the same
    order and two writers never wait on each other in a cycle (a counter created on the way
    must not be locked after the others: that order broke the threaded test with deadlocks).
    """
    table = connection.ops.quote_name(Counter._meta.db_table)
    types = sorted(counts)
    values = ", ".join(["(%s, %s, %s, 0)"] * len(types))
    params = [value for type in types for value in (account_id, type, counts[type])]
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} (account_id, type, last, pruned) VALUES {values} "
                       f"ON CONFLICT (account_id, type) DO UPDATE SET last = {table}.last + excluded.last "
                       "RETURNING type, last", params)
        return dict(cursor.fetchall())


# --- reading ----------------------------------------------------------------------------------

def state(account_id: int, type: str) -> str:
    """The current state of `account_id`'s objects of `type` ("0" before any change). One query."""
    return states(account_id, [type])[type]


def states(account_id: int, types: Sequence[str]) -> dict[str, str]:
    """The states of several types of one account, in one query."""
    for type in types:
        _check_type(type)
    found = dict(Counter.objects.filter(account_id=account_id, type__in=list(types)).values_list("type", "last"))
    return {type: str(found.get(type, 0)) for type in types}


def parse_state(since_state) -> int:
    """The change id a state string stands for; CannotCalculateChanges if it is not one."""
    if (not isinstance(since_state, str) or not 0 < len(since_state) <= _MAX_STATE_DIGITS
            or not since_state.isascii() or not since_state.isdigit()):
        raise CannotCalculateChanges("That is not a state this server gave out.")
    return int(since_state)


def _window(account_id: int, type: str, since_state: str, limit: int) -> tuple[int, list[tuple]]:
    """(the type's last change id, the first `limit` entries after since_state), in one query.

    One statement, so one snapshot: a pruning that commits between reading the counter and
    reading the entries cannot make entries vanish from an answer that believed them there; and
    in that snapshot no entry is past the counter's `last` (both are written in one transaction).
    The entries are a subquery of their own, ordered and limited, so that the database walks
    the (account, type, change) index from `since` and stops after `limit` rows; a join to the
    counter would make PostgreSQL read and sort the whole window first.
    """
    _check_type(type)
    since = parse_state(since_state)
    counter = connection.ops.quote_name(Counter._meta.db_table)
    entry = connection.ops.quote_name(Entry._meta.db_table)
    sql = (f"SELECT last, pruned, CAST(NULL AS BIGINT), CAST(NULL AS TEXT), CAST(NULL AS SMALLINT), "
           f"CAST(NULL AS TEXT) FROM {counter} WHERE account_id = %s AND type = %s "
           "UNION ALL SELECT * FROM (SELECT CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), change, object_id, kind, href "
           f"FROM {entry} WHERE account_id = %s AND type = %s AND change > %s ORDER BY change LIMIT %s) AS w")
    with connection.cursor() as cursor:
        cursor.execute(sql, [account_id, type, account_id, type, since, limit])
        rows = cursor.fetchall()
    head = [row for row in rows if row[2] is None]
    if not head:  # no counter: nothing was ever recorded, the state is "0"
        if since != 0:
            raise CannotCalculateChanges("That state is in the future.")
        return 0, []
    last, pruned = head[0][0], head[0][1]
    if since > last:
        raise CannotCalculateChanges("That state is in the future.")
    if since < pruned:
        raise CannotCalculateChanges("The changes since that state are no longer kept.")
    return last, sorted(row[2:] for row in rows if row[2] is not None)


def changes(account_id: int, type: str, since_state: str, max_changes: int) -> Changes:
    """What changed in `account_id`'s objects of `type` after `since_state`: at most
    `max_changes` ids in all, and when there are more, `new_state` is an intermediate state the
    caller resumes from (`has_more_changes`). One query.
    """
    if not isinstance(max_changes, int) or isinstance(max_changes, bool) or max_changes < 1:
        raise ValueError("max_changes is a positive integer")
    # One row more than fits tells whether there are more; each row is one id, so max_changes
    # rows can never list more than max_changes ids (fewer when an id changed twice).
    last, rows = _window(account_id, type, since_state, max_changes + 1)
    has_more = len(rows) > max_changes
    if has_more:
        rows = rows[:max_changes]
    created, updated, destroyed, hrefs = _fold(rows)
    new_state = rows[-1][0] if has_more else last
    return Changes(old_state=since_state, new_state=str(new_state), has_more_changes=has_more,
                   created=created, updated=updated, destroyed=destroyed, hrefs=hrefs)


def _fold(rows: Iterable[tuple]) -> tuple[list[str], list[str], list[str], dict[str, str]]:
    """Each id's net change over `rows` (change, object_id, kind, href), in order of first change."""
    first: dict[str, int] = {}
    final: dict[str, int] = {}
    hrefs: dict[str, str] = {}
    for _, object_id, kind, href in rows:
        first.setdefault(object_id, kind)
        final[object_id] = kind
        if href:
            hrefs[object_id] = href
    created, updated, destroyed = [], [], []
    for object_id, was in first.items():
        now = final[object_id]
        if was == CREATED:
            if now != DESTROYED:
                created.append(object_id)
        elif now == DESTROYED:
            destroyed.append(object_id)
        else:
            updated.append(object_id)
    listed = {*created, *updated, *destroyed}
    return created, updated, destroyed, {k: v for k, v in hrefs.items() if k in listed}


def query_changes(account_id: int, type: str, since_state: str, results: Callable[[], Sequence[str]], *,
                  max_changes: int | None = None, up_to_id: str | None = None,
                  immutable: bool = False) -> QueryChanges:
    """What a query's results gained and lost since `since_state` (RFC 8620 §5.6).

    The journal knows which ids changed; the query layer knows what matches. `results` is called
    after the journal is read and returns the query's current result ids, in order; an object
    written in between is then both in the results and (at the next call) in the journal, so
    nothing is missed. `removed` lists every id that changed since the state and may have left
    or moved in the results (updated or destroyed; an id created since is not in the client's
    old results); `added` gives every changed id now in the results, with its position. With
    `immutable` (the query sorts and filters only on properties that never change) and an
    `up_to_id` in the results, additions after it are left out. Raises TooManyChanges beyond
    `max_changes`, CannotCalculateChanges for a state `changes()` would refuse or when more than
    settings.JOURNAL_QUERY_CHANGES_MAX entries are to be read.
    """
    cap = settings.JOURNAL_QUERY_CHANGES_MAX
    last, rows = _window(account_id, type, since_state, cap + 1)
    if len(rows) > cap:
        raise CannotCalculateChanges("Too many changes since that state: query again.")
    created, updated, destroyed, _ = _fold(rows)
    current = list(results())
    touched = {*created, *updated}
    added = [(object_id, index) for index, object_id in enumerate(current) if object_id in touched]
    if immutable and up_to_id is not None and up_to_id in current:
        limit = current.index(up_to_id)
        added = [(object_id, index) for object_id, index in added if index <= limit]
    removed = [*updated, *destroyed]
    if max_changes is not None and len(removed) + len(added) > max_changes:
        raise TooManyChanges(f"More than {max_changes} changes since that state.")
    return QueryChanges(old_state=since_state, new_state=str(last), total=len(current), removed=removed, added=added)


# --- pruning ----------------------------------------------------------------------------------

def prune(*, max_age: timedelta | None = None, max_changes: int | None = None, batch: int = 5000) -> int:
    """Forget entries older than `max_age`, and beyond the `max_changes` newest of each account
    and type; return how many entries went. A state older than what is kept then answers
    CannotCalculateChanges.

    Each counter's floor (`pruned`) is raised and committed before its entries are deleted, in
    batches of `batch` rows (short transactions, no long lock on a busy journal): from then on
    no answer reads the rows being deleted.
    """
    floors: dict[tuple[int, str], int] = {}
    if max_age is not None:
        old = (Entry.objects.filter(at__lt=timezone.now() - max_age).values("account_id", "type")
               .annotate(top=Max("change")).values_list("account_id", "type", "top"))
        for account_id, type, top in old:
            floors[account_id, type] = top
    if max_changes:
        long = (Counter.objects.filter(last__gt=F("pruned") + max_changes)
                .values_list("account_id", "type", "last"))
        for account_id, type, last in long:
            key = (account_id, type)
            floors[key] = max(floors.get(key, 0), last - max_changes)
    deleted = 0
    for (account_id, type), floor in sorted(floors.items()):
        Counter.objects.filter(account_id=account_id, type=type, pruned__lt=floor).update(pruned=floor)
        gone = Entry.objects.filter(account_id=account_id, type=type, change__lte=floor)
        while pks := list(gone.order_by("change").values_list("pk", flat=True)[:batch]):
            deleted += Entry.objects.filter(pk__in=pks).delete()[0]
    return deleted
