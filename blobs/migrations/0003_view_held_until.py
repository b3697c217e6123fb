from django.db import migrations, models
from django.db.models import Exists, Max, OuterRef, Subquery


def fill_held_until(apps, schema_editor):
    # The views uploads hold now (few: an upload lives an upload lifetime) get the latest expiry
    # of their holds, so the usage finds them by the new index. The counted row of each
    # account's lasting content (StoreUsage "blobs") is not filled here: the first write that
    # moves it measures it (blobs.services.count_usage), as for the other counted stores.
    AccountBlob = apps.get_model("blobs", "AccountBlob")
    Hold = apps.get_model("blobs", "Hold")
    expiring = Hold.objects.filter(account_blob=OuterRef("pk"), expires_at__isnull=False)
    latest = expiring.values("account_blob").annotate(latest=Max("expires_at")).values("latest")[:1]
    AccountBlob.objects.filter(Exists(expiring)).update(held_until=Subquery(latest))


class Migration(migrations.Migration):

    dependencies = [
        ('blobs', '0002_store_usage'),
    ]

    operations = [
        migrations.AddField(
            model_name='accountblob',
            name='held_until',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name='accountblob',
            index=models.Index(fields=['account', 'held_until'], name='blobs_view_held_until'),
        ),
        migrations.RunPython(fill_held_until, migrations.RunPython.noop),
    ]
