# Secrets at rest (registry/crypto.py): the column becomes encrypted text, and the rows
# written before are encrypted under the current key.
import registry.crypto
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0007_h5_printable_names_public_url'),
    ]

    operations = [
        migrations.AlterField(
            model_name='credential',
            name='otp_url',
            field=registry.crypto.EncryptedTextField(blank=True, default='', max_length=512),
        ),
        registry.crypto.migration('accounts', {"Credential": ["otp_url"]}),
    ]
