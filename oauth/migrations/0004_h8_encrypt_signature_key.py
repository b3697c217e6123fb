# Secrets at rest (registry/crypto.py): the column becomes encrypted text, and the rows
# written before are encrypted under the current key.
import registry.crypto
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('oauth', '0003_h2_credential_link'),
    ]

    operations = [
        migrations.AlterField(
            model_name='oidcprovider',
            name='signature_key',
            field=registry.crypto.EncryptedTextField(blank=True, help_text='PEM private key that signs ID tokens (generated when empty).'),
        ),
        registry.crypto.migration('oauth', {"OidcProvider": ["signature_key"]}),
    ]
