import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('calendars', '0005_rsvp_calendarscheduling'),
    ]

    operations = [
        migrations.AddField(
            model_name='calendarscheduling',
            name='enable',
            field=models.BooleanField(default=True, help_text='Send and receive invitations: the server schedules the events its accounts organize or answer (RFC 6638), and applies those arriving by mail (iMIP). Off: events are stored as they are written, and nobody is invited.', verbose_name='Enable scheduling'),
        ),
        migrations.AddField(
            model_name='calendarscheduling',
            name='auto_add_invitations',
            field=models.BooleanField(default=False, help_text="Add an invitation arriving by mail for an event not yet known to the recipient's calendar, from any authenticated sender. Off: only from the senders in the recipient's contacts; the others' invitations are left in the scheduling inbox (and the mail).", verbose_name='Auto-add invitations'),
        ),
        migrations.AddField(
            model_name='calendarscheduling',
            name='itip_max_size',
            field=models.PositiveIntegerField(default=524288, help_text='Largest calendar part of an incoming iMIP message that is applied, in bytes; a larger one is ignored (the mail is still delivered).', validators=[django.core.validators.MinValueValidator(100)], verbose_name='iTIP max size'),
        ),
        migrations.AddField(
            model_name='calendarscheduling',
            name='max_recipients',
            field=models.PositiveIntegerField(default=100, help_text='Most recipients one change of an event may send invitations or cancellations to; a change that would send to more is refused.', validators=[django.core.validators.MinValueValidator(1)], verbose_name='Max recipients'),
        ),
    ]
