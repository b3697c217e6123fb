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
