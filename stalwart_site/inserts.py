"""INSERT statements of the hottest write path (a delivered message's rows), their SQL built
once per database and row count instead of compiled by the ORM at every call.

`Model.objects.create()` and `bulk_create()` build a model instance, run the field hooks and
compile the statement anew each time: about a fifth of a delivery's CPU, spent while the
delivery holds SQLite's write lock. An `Insert` names its model and columns once; each call
only converts the values as the ORM would (`Field.get_db_prep_save`, the field's own
placeholder: JSON, datetimes, a tsvector) and runs the cached SQL.

    EMAIL_ROW = Insert(Email, ["account", "thread", "meta", ...], returning=["id"])
    (pk,), = EMAIL_ROW.run([(account_id, thread_id, meta, ...)])

    Insert(Blob, ["digest", "size", "name", "created_at"], conflict=["digest"], update=["size"],
           returning=["id", "name"])  # INSERT … ON CONFLICT (digest) DO UPDATE … RETURNING

`conflict` without `update` is ON CONFLICT DO NOTHING; with `update`, the named columns take
the new row's values (`excluded`), which also locks the existing row (PostgreSQL) and makes
RETURNING answer it. SQLite (3.35 and later) and PostgreSQL take the same SQL. No model
signals are sent and no `auto_now_add` is filled: the caller gives every value, and uses this
only for models without receivers.
"""
from __future__ import annotations

from collections.abc import Sequence

from django.db import connection, models

from .sqlparams import slice_size


class Insert:
    def __init__(self, model, fields: Sequence[str], *, conflict: Sequence[str] = (), update: Sequence[str] = (),
                 returning: Sequence[str] = (), batch: int | None = None):
        self.model = model
        # At most this many rows per statement: the SQL is kept per row count, so a caller
        # whose row counts vary widely bounds how many statements are kept.
        self.batch = batch
        self.names = tuple(fields)
        self.conflict, self.update, self.returning = tuple(conflict), tuple(update), tuple(returning)
        self._fields = None
        self._sql: dict[tuple[str, int], str] = {}

    def fields(self):
        if self._fields is None:  # models are ready only once the apps are
            self._fields = [self.model._meta.get_field(name) for name in self.names]
            self._plain = [_plain(field) for field in self._fields]
        return self._fields

    def _column(self, name: str) -> str:
        return connection.ops.quote_name(self.model._meta.get_field(name).column)

    def sql(self, rows: int) -> str:
        key = (connection.vendor, rows)
        sql = self._sql.get(key)
        if sql is None:
            fields = self.fields()
            holders = [f.get_placeholder(None, None, connection) if hasattr(f, "get_placeholder") else "%s"
                       for f in fields]
            row = f"({', '.join(holders)})"
            sql = (f"INSERT INTO {connection.ops.quote_name(self.model._meta.db_table)} "
                   f"({', '.join(self._column(n) for n in self.names)}) VALUES {', '.join([row] * rows)}")
            if self.conflict:
                sql += f" ON CONFLICT ({', '.join(self._column(n) for n in self.conflict)}) "
                sql += ("DO UPDATE SET " + ", ".join(f"{self._column(n)} = excluded.{self._column(n)}"
                                                      for n in self.update)) if self.update else "DO NOTHING"
            if self.returning:
                sql += f" RETURNING {', '.join(self._column(n) for n in self.returning)}"
            self._sql[key] = sql
        return sql

    def run(self, rows: Sequence[Sequence]) -> list[tuple]:
        """Insert `rows` (values in the order of the fields), in one statement unless they are
        more than SQLite takes parameters; the RETURNING rows, if any were asked for (with DO
        NOTHING, none for a row that conflicted)."""
        fields = self.fields()
        plain = self._plain
        per = max(1, slice_size() // len(fields))  # SQLite's limit of parameters per statement
        if self.batch:
            per = min(per, self.batch)
        out = []
        with connection.cursor() as cursor:
            for start in range(0, len(rows), per):
                some = rows[start:start + per]
                cursor.execute(self.sql(len(some)), [
                    value if is_plain and type(value) in _PLAIN_TYPES else field.get_db_prep_save(value, connection)
                    for row in some for field, is_plain, value in zip(fields, plain, row)])
                if self.returning:
                    out.extend(cursor.fetchall())
        return out


# Fields whose conversion of an int or a bool is that same value on both databases (Django's
# own classes, not subclasses): such values go to the driver as they are, since a conversion
# per value is most of the cost of many small rows.
_PLAIN_FIELDS = (models.AutoField, models.BigAutoField, models.SmallAutoField, models.IntegerField,
                 models.BigIntegerField, models.SmallIntegerField, models.PositiveIntegerField,
                 models.PositiveBigIntegerField, models.PositiveSmallIntegerField, models.BooleanField)
_PLAIN_TYPES = (int, bool)


def _plain(field) -> bool:
    target = field.target_field if field.many_to_one else field
    return type(target) in _PLAIN_FIELDS
