"""Emails stored before the text filters used the full-text index kept their search text in
Email.search: index it, and keep only the header lines there (what the `header` filter reads)."""
from django.db import migrations

# The text the index takes (fulltext.text.FIELDS): written out because a migration must not
# follow later changes of the code it would import.
TEXT_FIELDS = ("subject", "from", "to", "cc", "bcc", "attachmentNames", "body")


def index_existing(apps, schema_editor):
    # fulltext's own services: its FTS5 table (SQLite) is no model the historical registry has.
    from fulltext import services as ft  # noqa: PLC0415  (see above)

    Email = apps.get_model("mail", "Email")
    rows = Email.objects.exclude(search={}).order_by("pk").values_list("pk", "account_id", "search")
    last = 0
    while True:
        batch = list(rows.filter(pk__gt=last)[:500])
        if not batch:
            return
        by_account = {}
        for pk, account_id, search in batch:
            text = {k: v for k, v in search.items() if k in TEXT_FIELDS and isinstance(v, str)}
            if text:
                by_account.setdefault(account_id, []).append((pk, text))
                Email.objects.filter(pk=pk).update(search={"headers": search.get("headers", "")})
        for account_id, docs in by_account.items():
            ft.index_many(account_id, "email", docs)
        last = batch[-1][0]


class Migration(migrations.Migration):
    dependencies = [
        ("mail", "0001_mailstore_initial"),
        ("fulltext", "0002_fulltext_statistics"),
    ]

    operations = [migrations.RunPython(index_existing, migrations.RunPython.noop)]
