"""Transactions the database gave up on so that another could go on, and running them again.

PostgreSQL ends one of two transactions that wait on each other's row locks (deadlock_detected,
SQLSTATE 40P01) and, at the stricter isolation levels, one that would break serialisability
(serialization_failure, 40001). Its documentation's remedy for both is to roll back and run
the whole transaction again: nothing of it was written. SQLite has neither: its writers queue
on the database lock (`transaction_mode` IMMEDIATE in settings), so there is nothing to retry.

    for attempt in dbretry.attempts():
        try:
            with transaction.atomic():
                ...
            break
        except OperationalError as exc:
            if not attempt.again(exc):
                raise
"""
from __future__ import annotations

import random
import time
from collections.abc import Iterator

from django.db import OperationalError, connection, transaction

TRANSIENT_SQLSTATES = frozenset({"40001", "40P01"})
ATTEMPTS = 4
# Between attempts: a random pause below 20, 40, 80 ms, so that the two parties of a deadlock
# do not meet again at once.
FIRST_PAUSE = 0.02


def possible() -> bool:
    """Whether the database may roll a transaction back only to let another go on."""
    return connection.vendor == "postgresql"


def transient(exc: BaseException) -> bool:
    """Whether `exc` is a transaction the database rolled back only to let another one go on."""
    return isinstance(exc, OperationalError) and getattr(exc.__cause__, "sqlstate", None) in TRANSIENT_SQLSTATES


class Attempt:
    def __init__(self, number: int, last: bool):
        self.number = number
        self.last = last

    def again(self, exc: BaseException) -> bool:
        """True (after a pause) when the failed attempt should be run again; False when `exc`
        is to be raised: not transient, the last attempt, or inside a transaction that an outer
        caller owns (only the outermost transaction can be run again)."""
        if self.last or not transient(exc) or transaction.get_connection().in_atomic_block:
            return False
        time.sleep(random.uniform(0, FIRST_PAUSE * 2 ** self.number))
        return True


def attempts(limit: int = ATTEMPTS) -> Iterator[Attempt]:
    for number in range(limit):
        yield Attempt(number, number == limit - 1)
