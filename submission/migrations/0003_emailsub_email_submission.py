import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('submission', '0002_mta_route_verbose_name'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='EmailSubmission',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('identity_pk', models.BigIntegerField()),
                ('email_pk', models.BigIntegerField()),
                ('thread_pk', models.BigIntegerField()),
                ('blob_id', models.CharField(help_text="The account's JMAP blob id of the message sent.", max_length=64)),
                ('envelope', models.JSONField()),
                ('send_at', models.DateTimeField()),
                ('undo_status', models.CharField(choices=[('pending', 'Pending'), ('final', 'Final'), ('canceled', 'Canceled')], default='pending', max_length=8)),
                ('delivery_status', models.JSONField(default=dict)),
                ('next_attempt_at', models.DateTimeField(blank=True, null=True)),
                ('attempts', models.PositiveIntegerField(default=0)),
                ('last_error', models.TextField(blank=True, default='')),
                ('claim_token', models.CharField(blank=True, default='', max_length=32)),
                ('claimed_until', models.DateTimeField(blank=True, null=True)),
                ('hidden', models.BooleanField(default=False)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('account', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'indexes': [models.Index(fields=['account', 'send_at', 'id'], name='submission_sub_send_at'), models.Index(fields=['next_attempt_at'], name='submission_sub_due')],
            },
        ),
    ]
