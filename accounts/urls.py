from django.urls import path

from stalwart_site.csp import strict_csp

from . import views

urlpatterns = [
    path("", strict_csp(views.account), name="account"),
    path("password/", strict_csp(views.password), name="account-password"),
    path("credentials/", strict_csp(views.create_credential), name="account-credential-create"),
    path("credentials/<int:credential_id>/revoke/", strict_csp(views.revoke_credential), name="account-credential-revoke"),
    path("two-factor/", strict_csp(views.totp_start), name="account-totp-start"),
    path("two-factor/confirm/", strict_csp(views.totp_confirm), name="account-totp-confirm"),
    path("two-factor/cancel/", strict_csp(views.totp_cancel), name="account-totp-cancel"),
    path("two-factor/remove/", strict_csp(views.totp_remove), name="account-totp-remove"),
]
