from django import forms

from .models import Credential


class PasswordChangeForm(forms.Form):
    current_password = forms.CharField(
        label="Current password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )
    new_password = forms.CharField(
        label="New password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )
    new_password_confirm = forms.CharField(
        label="Confirm new password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def clean(self):
        data = super().clean()
        if data.get("new_password") and data.get("new_password") != data.get("new_password_confirm"):
            self.add_error("new_password_confirm", "The two passwords differ.")
        return data


class SecondaryCredentialForm(forms.Form):
    kind = forms.ChoiceField(choices=[(Credential.Kind.APP_PASSWORD, "App password"), (Credential.Kind.API_KEY, "API key")])
    description = forms.CharField(max_length=255, help_text="What it is for, e.g. “Thunderbird on the laptop”.")
    expires_at = forms.DateTimeField(required=False, help_text="Optional, e.g. 2027-01-31 12:00 (UTC).")


def _otp_widget(**attrs):
    return forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "pattern": "[0-9]{6,8}",
                                  "maxlength": "8", "size": "8", "spellcheck": "false", **attrs})


class OtpCodeField(forms.CharField):
    """A TOTP code: 6 to 8 digits (spaces, as some authenticators show them, are dropped)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("label", "Code from your authenticator")
        kwargs.setdefault("widget", _otp_widget())
        super().__init__(max_length=16, **kwargs)

    def to_python(self, value):
        return "".join((super().to_python(value) or "").split())

    def validate(self, value):
        super().validate(value)
        if value and not (value.isdigit() and 6 <= len(value) <= 8):
            raise forms.ValidationError("The code is 6 to 8 digits.", code="otp_format")


class TotpConfirmForm(forms.Form):
    """Enrolment: the current password, and a first code proving the authenticator works."""

    current_password = forms.CharField(
        label="Current password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )
    code = OtpCodeField()


class TotpRemoveForm(forms.Form):
    current_password = forms.CharField(
        label="Current password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )
    code = OtpCodeField(label="Current code from your authenticator")
