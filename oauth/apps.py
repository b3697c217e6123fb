from django.apps import AppConfig


class OAuthConfig(AppConfig):
    name = "oauth"
    verbose_name = "OAuth and OpenID Connect"

    def ready(self):
        # Imported once the app registry is ready: these modules import models.
        from django.db.models.signals import post_save, pre_delete

        from accounts import http_auth
        from accounts.models import Credential
        from accounts.signals import password_changed

        from . import client_methods  # noqa: F401  (the JMAP face of x:OAuthClient)
        from . import services

        # OAuth access tokens are one more way to present a Bearer credential.
        if services.bearer_access_token not in http_auth.BEARER_METHODS:
            http_auth.BEARER_METHODS.append(services.bearer_access_token)
        password_changed.connect(services.revoke_account_tokens, dispatch_uid="oauth-revoke-on-password")
        # Whatever face changes or destroys an app password, what was obtained with it ends.
        post_save.connect(services.revoke_credential_tokens, sender=Credential, dispatch_uid="oauth-revoke-on-credential")
        pre_delete.connect(services.revoke_credential_tokens, sender=Credential,
                           dispatch_uid="oauth-revoke-on-credential-delete")
