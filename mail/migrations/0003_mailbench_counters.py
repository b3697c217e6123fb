"""Stored per-mailbox counts (totalEmails, unreadEmails, totalThreads, unreadThreads), filled
from a recount of the mailboxes that exist."""
from django.db import migrations, models
from django.db.models import Count, Exists, OuterRef


def recount(apps, schema_editor):
    # Written out here rather than imported from mail.store: a migration must not follow later
    # changes of the code it would import.
    Mailbox = apps.get_model("mail", "Mailbox")
    Membership = apps.get_model("mail", "Membership")
    Keyword = apps.get_model("mail", "Keyword")
    unread = ~Exists(Keyword.objects.filter(email=OuterRef("email_id"), keyword="$seen"))
    counts = {}
    for row in Membership.objects.values("mailbox_id").annotate(
            total=Count("email_id"), threads=Count("email__thread_id", distinct=True)):
        counts.setdefault(row["mailbox_id"], {}).update(total_emails=row["total"], total_threads=row["threads"])
    for row in Membership.objects.filter(unread).values("mailbox_id").annotate(
            total=Count("email_id"), threads=Count("email__thread_id", distinct=True)):
        counts.setdefault(row["mailbox_id"], {}).update(unread_emails=row["total"], unread_threads=row["threads"])
    for pk, values in counts.items():
        Mailbox.objects.filter(pk=pk).update(**values)


class Migration(migrations.Migration):
    dependencies = [("mail", "0002_ftwire_index_existing")]

    operations = [
        migrations.AddField("mailbox", "total_emails", models.PositiveIntegerField(default=0)),
        migrations.AddField("mailbox", "unread_emails", models.PositiveIntegerField(default=0)),
        migrations.AddField("mailbox", "total_threads", models.PositiveIntegerField(default=0)),
        migrations.AddField("mailbox", "unread_threads", models.PositiveIntegerField(default=0)),
        migrations.RunPython(recount, migrations.RunPython.noop),
    ]
