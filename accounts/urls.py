from django.urls import path

from . import views

urlpatterns = [
    path("", views.account, name="account"),
    path("password/", views.password, name="account-password"),
    path("credentials/", views.create_credential, name="account-credential-create"),
    path("credentials/<int:credential_id>/revoke/", views.revoke_credential, name="account-credential-revoke"),
    path("two-factor/", views.totp_start, name="account-totp-start"),
    path("two-factor/confirm/", views.totp_confirm, name="account-totp-confirm"),
    path("two-factor/cancel/", views.totp_cancel, name="account-totp-cancel"),
    path("two-factor/remove/", views.totp_remove, name="account-totp-remove"),
]
