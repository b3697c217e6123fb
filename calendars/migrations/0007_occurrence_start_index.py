# The occurrence index by start, with the long spans apart (calendars.models.Occurrence.long):
# a time range then reads the rows near it instead of every row ending after its start.

from datetime import timedelta

from django.db import migrations, models

LONG_SPAN = timedelta(days=2)  # Occurrence.LONG_SPAN when this migration was written


def mark_long(apps, schema_editor):
    Occurrence = apps.get_model("calendars", "Occurrence")
    rows = Occurrence.objects.using(schema_editor.connection.alias).order_by("pk")
    last = 0
    while True:
        batch = list(rows.filter(pk__gt=last).values_list("pk", "start", "end")[:2000])
        if not batch:
            return
        last = batch[-1][0]
        long_ids = [pk for pk, start, end in batch if end - start > LONG_SPAN]
        if long_ids:
            Occurrence.objects.using(schema_editor.connection.alias).filter(pk__in=long_ids).update(long=True)


class Migration(migrations.Migration):

    dependencies = [
        ('calendars', '0006_calendarscheduling_scheduling_fields'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='occurrence',
            name='calendars_occurrence_span',
        ),
        migrations.AddField(
            model_name='occurrence',
            name='long',
            field=models.BooleanField(default=False),
        ),
        migrations.RunPython(mark_long, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name='occurrence',
            index=models.Index(fields=['calendar', 'start'], name='calendars_occurrence_start'),
        ),
        migrations.AddIndex(
            model_name='occurrence',
            index=models.Index(condition=models.Q(('long', True)), fields=['calendar', 'end'], name='calendars_occurrence_long'),
        ),
    ]
