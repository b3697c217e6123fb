"""The change journal's two tables.

`Counter` is one row per account and data type: the last change id handed out (the type's
state) and the floor below which the journal no longer answers. `Entry` is one row per
created, updated or destroyed object, each with a change id of its own, so that any entry
ends a state a client can resume from. See docs/architecture.md ("The change journal").
"""
from __future__ import annotations

from django.conf import settings
from django.db import models


class Counter(models.Model):
    """The state of one account's objects of one type.

    `last` is bumped in the writer's transaction and its row stays locked until the commit, so
    change ids are handed out in commit order: a reader that sees `last = n` sees every entry up
    to n. `pruned` is the oldest state still answerable: the entries up to it may be gone.
    """

    account = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+",
                                db_index=False)
    type = models.CharField(max_length=64)
    last = models.BigIntegerField(default=0)
    pruned = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "type"], name="journal_counter_account_type")]

    def __str__(self):
        return f"{self.type} of account {self.account_id}: {self.last}"


class Entry(models.Model):
    """One change of one object; a destroyed object's row is its tombstone.

    The unique index (account, type, change) is the one `changes()` reads: a range scan from
    sinceState, stopped after maxChanges rows, whatever the size of the journal. `at` serves
    pruning by age only.
    """

    class Kind(models.IntegerChoices):
        CREATED = 1
        UPDATED = 2
        DESTROYED = 3

    account = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+",
                                db_index=False)
    type = models.CharField(max_length=64)
    change = models.BigIntegerField()
    object_id = models.CharField(max_length=255)
    kind = models.PositiveSmallIntegerField(choices=Kind.choices)
    # What a DAV client needs to be told a resource went away (its path); empty for JMAP-only data.
    href = models.CharField(max_length=2048, blank=True, default="")
    at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "type", "change"], name="journal_entry_change")]

    def __str__(self):
        return f"{self.type} {self.object_id} {self.get_kind_display()} at {self.change}"
