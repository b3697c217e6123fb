# Secrets at rest (registry/crypto.py): the column becomes encrypted text, and the rows
# written before are encrypted under the current key.
import registry.crypto
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('certificates', '0001_initial'),
    ]

    operations = [
        migrations.AlterField(
            model_name='acmeprovider',
            name='account_key',
            field=registry.crypto.EncryptedTextField(blank=True, default=''),
        ),
        migrations.AlterField(
            model_name='acmeprovider',
            name='eab_hmac_key',
            field=registry.crypto.EncryptedTextField(blank=True, default='', help_text='The External Account Binding HMAC key (base64url, as the CA gives it). Never shown again.', max_length=512, verbose_name='EAB HMAC key'),
        ),
        migrations.AlterField(
            model_name='certificate',
            name='private_key',
            field=registry.crypto.EncryptedTextField(),
        ),
        registry.crypto.migration('certificates', {"AcmeProvider": ["account_key", "eab_hmac_key"], "Certificate": ["private_key"]}),
    ]
