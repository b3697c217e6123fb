from django.db import models
from django.db.models import Lookup


class TsVectorField(models.Field):
    """PostgreSQL's tsvector; on SQLite an unused column (the words live in the FTS5 table).

    Written from the literal `text.pg_tsvector()` builds, so PostgreSQL's parser never splits
    the words itself."""

    description = "Full-text vector (PostgreSQL)"

    def db_type(self, connection):
        return "tsvector" if connection.vendor == "postgresql" else "text"

    def get_placeholder(self, value, compiler, connection):
        return "%s::tsvector" if connection.vendor == "postgresql" else "%s"


@TsVectorField.register_lookup
class TsMatch(Lookup):
    """`vector__tsmatch=<tsquery literal>`: PostgreSQL's `@@`."""

    lookup_name = "tsmatch"

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} @@ ({rhs})::tsquery", [*lhs_params, *rhs_params]


class Document(models.Model):
    """One indexed document: its fields' text as given (for snippets) and, on PostgreSQL, its
    words. On SQLite the words are in the FTS5 table `fulltext_fts`, whose rowid is this id.

    `account_id` and `doc_id` are the caller's integers, not foreign keys: this app knows no
    other app (the store deletes what it indexed, `services.purge()` for a whole account)."""

    account_id = models.BigIntegerField()
    kind = models.CharField(max_length=32)
    doc_id = models.BigIntegerField()
    fields = models.JSONField(default=dict)
    vector = TsVectorField(null=True, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account_id", "kind", "doc_id"], name="fulltext_document_unique"),
        ]

    def __str__(self):
        return f"{self.kind} {self.doc_id} of account {self.account_id}"
