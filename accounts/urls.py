from django.urls import path

from . import views

urlpatterns = [
    path("", views.account, name="account"),
    path("password/", views.password, name="account-password"),
    path("credentials/", views.create_credential, name="account-credential-create"),
    path("credentials/<int:credential_id>/revoke/", views.revoke_credential, name="account-credential-revoke"),
]
