import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0005_systemsettings_discovery"),
        ("oauth", "0002_oauthclient_no_generated_defaults"),
        ("oauth2_provider", "0022_refreshtoken_token_family_index"),
    ]

    operations = [
        migrations.CreateModel(
            name="CredentialLink",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("access_token", models.OneToOneField(null=True, on_delete=django.db.models.deletion.CASCADE,
                                                      related_name="credential_link",
                                                      to="oauth2_provider.accesstoken")),
                ("credential", models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL,
                                                 related_name="oauth_links", to="accounts.credential")),
                ("device", models.OneToOneField(null=True, on_delete=django.db.models.deletion.CASCADE,
                                                related_name="credential_link", to="oauth.deviceauthorization")),
                ("grant", models.OneToOneField(null=True, on_delete=django.db.models.deletion.CASCADE,
                                               related_name="credential_link", to="oauth2_provider.grant")),
                ("refresh_token", models.OneToOneField(null=True, on_delete=django.db.models.deletion.CASCADE,
                                                       related_name="credential_link",
                                                       to="oauth2_provider.refreshtoken")),
            ],
            options={"verbose_name": "OAuth credential link"},
        ),
    ]
