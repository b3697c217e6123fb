from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("registry", "0002_changelog"),
    ]

    operations = [
        migrations.AddField(
            model_name="changelog",
            name="tenant_id",
            field=models.BigIntegerField(blank=True, null=True),
        ),
    ]
