from django.db import migrations, models

import fulltext.models

FTS5_COLUMNS = "subject, addr_from, addr_to, addr_cc, addr_bcc, attachments, body"


def create_index(apps, schema_editor):
    """The words' index: an FTS5 table on SQLite, a GIN index on PostgreSQL."""
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        # A table with its own content: deleting a row needs only its rowid (a contentless
        # table would need the words it was given back, and SQLite 3.43's contentless_delete
        # is newer than the SQLite many systems ship). The words arrive tokenised by
        # fulltext.text; unicode61 only splits them on the spaces between them.
        schema_editor.execute(
            f"CREATE VIRTUAL TABLE fulltext_fts USING fts5({FTS5_COLUMNS}, "
            "tokenize = 'unicode61 remove_diacritics 2')")
    elif vendor == "postgresql":
        schema_editor.execute("CREATE INDEX fulltext_document_vector ON fulltext_document USING gin (vector)")


def drop_index(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        schema_editor.execute("DROP TABLE IF EXISTS fulltext_fts")
    elif vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS fulltext_document_vector")


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Document",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("account_id", models.BigIntegerField()),
                ("kind", models.CharField(max_length=32)),
                ("doc_id", models.BigIntegerField()),
                ("fields", models.JSONField(default=dict)),
                ("vector", fulltext.models.TsVectorField(editable=False, null=True)),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("account_id", "kind", "doc_id"), name="fulltext_document_unique")],
            },
        ),
        migrations.RunPython(create_index, drop_index),
    ]
