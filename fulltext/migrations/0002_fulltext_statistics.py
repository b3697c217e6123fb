from django.db import migrations


def more_statistics(apps, schema_editor):
    """PostgreSQL estimates how many rows a tsquery matches from the most common lexemes it
    sampled (100 by default per statistics target). With so few, a rare word is guessed common,
    and the planner probes every message in date order for it: 1.4 s instead of 5 ms at
    100,000 messages (bench/fulltext.py). Lexemes are tagged by field, so the list must be long."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE fulltext_document ALTER COLUMN vector SET STATISTICS 2000")


def default_statistics(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE fulltext_document ALTER COLUMN vector SET STATISTICS -1")


class Migration(migrations.Migration):
    dependencies = [("fulltext", "0001_fulltext_document")]

    operations = [migrations.RunPython(more_statistics, default_statistics)]
