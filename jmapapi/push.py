"""JMAP push over EventSource (RFC 8620 §7.3): what a worker does for its open streams.

One `Hub` per worker process learns of committed changes, for every connection at once:

- with REDIS_URL, from the push channel (journal.notify publishes each commit's new states);
- on the embedded default, by reading the journal's counters of the accounts that have a
  stream open, one query every EVENTSOURCE_POLL_MS, in a thread of its own (so a long request
  in the worker's shared thread never delays it).

It runs only while the worker has streams open. Each stream (`Subscriber`) keeps the states it
has told its client (the ones read when it opened, then each one sent) and gets a StateChange
for every type whose state moved past them; a state older than one already sent (two commits
announced out of order) is never sent.

A stream holds no thread and no database connection while it waits: it is an async generator
on the worker's event loop (stalwart_site.asgi streams it), woken by the hub.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import connection

from journal import notify
from journal.models import Counter
from stalwart_site import pubsub

log = logging.getLogger(__name__)

# RFC 8620 §7.1 and the reference's DataType names (spec §9). Each is readable with its /get
# permission; a type no permission names (Core) is readable by every caller.
DATA_TYPES = (
    "Email", "EmailDelivery", "EmailSubmission", "Mailbox", "Thread", "Identity", "Core", "PushSubscription",
    "SearchSnippet", "VacationResponse", "MDN", "Quota", "SieveScript", "Calendar", "CalendarEvent",
    "CalendarEventNotification", "AddressBook", "ContactCard", "FileNode", "Principal", "ShareNotification",
    "ParticipantIdentity", "CalendarAlert",
)
READ_PERMISSION = {name: f"jmap{name}Get" for name in DATA_TYPES}
READ_PERMISSION.update({"Core": None, "EmailDelivery": "jmapEmailGet", "MDN": "jmapEmailGet",
                        "CalendarAlert": "jmapCalendarEventGet"})


def readable_types(permissions) -> list[str]:
    return [name for name in DATA_TYPES if READ_PERMISSION[name] is None or READ_PERMISSION[name] in permissions]


class Subscriber:
    """One open stream: its account, the types it listens to, the states its client knows."""

    __slots__ = ("account_id", "types", "known", "pending", "wake", "ending")

    def __init__(self, account_id: int, types: Iterable[str], known: dict[str, int]):
        self.account_id = account_id
        self.types = frozenset(types)
        self.known = dict(known)
        self.pending: dict[str, int] = {}
        self.wake = asyncio.Event()
        self.ending = False

    def offer(self, states: dict[str, int]) -> None:
        moved = False
        for type, value in states.items():
            if type in self.types and value > self.known.get(type, 0):
                self.known[type] = self.pending[type] = value
                moved = True
        if moved:
            self.wake.set()

    def take(self) -> dict[str, str]:
        changed, self.pending = self.pending, {}
        self.wake.clear()
        return {type: str(value) for type, value in sorted(changed.items())}


def read_counters(account_ids: list[int]) -> dict[int, dict[str, int]]:
    """Every journal counter of these accounts: {account: {type: last}}; one query per 500."""
    out: dict[int, dict[str, int]] = {}
    for start in range(0, len(account_ids), 500):
        rows = Counter.objects.filter(account_id__in=account_ids[start:start + 500]).values_list(
            "account_id", "type", "last")
        for account_id, type, last in rows:
            out.setdefault(account_id, {})[type] = last
    return out


class Hub:
    """The worker's one listener for every stream it holds (see the module's docstring)."""

    def __init__(self):
        self.subscribers: dict[int, set[Subscriber]] = {}
        self._task: asyncio.Task | None = None
        self._checker: asyncio.Task | None = None
        self._to_check: set[int] = set()
        # One thread, so one database connection per worker, used only while streams are open.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="push")
        self.reads = 0  # queries made, for the tests and the benchmark
        # The counters each account had at the last read: an account whose counters did not move
        # is not offered to its streams again (a new stream clears its account's entry).
        self._seen: dict[int, dict[str, int]] = {}

    @property
    def count(self) -> int:
        return sum(len(subs) for subs in self.subscribers.values())

    def add(self, sub: Subscriber) -> None:
        self.subscribers.setdefault(sub.account_id, set()).add(sub)
        self._seen.pop(sub.account_id, None)
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._redis() if settings.REDIS_URL else self._poll_loop())
        elif settings.REDIS_URL:
            # The stream read its states before it was listed here: a commit announced in between
            # went unheard, so its account is read once more (batched with the other new ones).
            self._to_check.add(sub.account_id)
            if self._checker is None or self._checker.done():
                self._checker = loop.create_task(self._drain_checks())

    def remove(self, sub: Subscriber) -> None:
        subs = self.subscribers.get(sub.account_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self.subscribers[sub.account_id]
                self._seen.pop(sub.account_id, None)
        if not self.subscribers:
            for task in (self._task, self._checker):
                if task is not None and not task.done():
                    task.cancel()
            self._task = self._checker = None
            self._executor.submit(connection.close)

    def end_all(self) -> None:
        """End every stream (the worker is stopping): their clients reconnect, to another
        worker, instead of waiting for the graceful timeout to cut them."""
        for subs in self.subscribers.values():
            for sub in subs:
                sub.ending = True
                sub.wake.set()

    def deliver(self, account_id: int, states: dict[str, int]) -> None:
        for sub in tuple(self.subscribers.get(account_id, ())):
            sub.offer(states)

    async def _read(self, account_ids: list[int]) -> None:
        if not account_ids:
            return
        loop = asyncio.get_running_loop()
        try:
            found = await loop.run_in_executor(self._executor, read_counters, account_ids)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database away for a moment: try again at the next round
            log.warning("push: could not read the journal's counters (%s)", exc.__class__.__name__)
            self._executor.submit(connection.close)
            return
        self.reads += 1
        for account_id, states in found.items():
            if self._seen.get(account_id) != states:
                self._seen[account_id] = states
                self.deliver(account_id, states)

    async def _poll_loop(self) -> None:
        interval = max(settings.EVENTSOURCE_POLL_MS, 10) / 1000
        while self.subscribers:
            await self._read(list(self.subscribers))
            await asyncio.sleep(interval)

    async def _drain_checks(self) -> None:
        while self._to_check:
            accounts, self._to_check = list(self._to_check), set()
            await self._read(accounts)

    async def _redis(self) -> None:
        # At each subscription, the accounts are read once: what committed before it took effect.
        await pubsub.listen(notify.channel(), self._heard, running=lambda: bool(self.subscribers), label="push",
                            on_subscribed=lambda: self._read(list(self.subscribers)))

    def _heard(self, data: bytes) -> None:
        decoded = notify.decode(data)
        if decoded is not None:
            self.deliver(*decoded)


hub = Hub()


def frame(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def stream(sub: Subscriber, account_key: str, *, ping: int, close_after_state: bool):
    """The body of one EventSource response: state frames (coalesced, at most one per
    EVENTSOURCE_THROTTLE_MS), a ping frame after `ping` seconds without a frame, and the end
    after the first state frame when `close_after_state`. Whatever ends it (the client going
    away cancels it) takes it off the hub."""
    throttle = max(settings.EVENTSOURCE_THROTTLE_MS, 0) / 1000
    hub.add(sub)
    try:
        # A comment line: the client has its headers now, and the stream is listening.
        yield b": listening\n\n"
        last_sent = 0.0
        while True:
            if not sub.pending:
                try:
                    await asyncio.wait_for(sub.wake.wait(), ping or None)
                except TimeoutError:
                    yield frame("ping", {"interval": ping})
                    continue
            if sub.ending:
                return
            wait = last_sent + throttle - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            changed = sub.take()
            if not changed:
                continue
            yield frame("state", {"@type": "StateChange", "changed": {account_key: changed}})
            last_sent = time.monotonic()
            if close_after_state:
                return
    finally:
        hub.remove(sub)
