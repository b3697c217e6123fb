"""The Settings › Telemetry › Metrics page, built from the declaration (registry.admin).

It differs from the generic page in one field: the stored hash of the scraper's secret is never
shown. The field reads "****" while a secret is stored; leaving it so keeps the secret, typing a
new value replaces it (stored hashed).
"""
from django import forms

from registry.admin import SingletonAdmin, register_declared
from django.contrib import admin

from . import objects  # noqa: F401  (declarations)
from .models import MASK, Metrics


class MetricsForm(forms.ModelForm):
    class Meta:
        model = Metrics
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields.get("prometheus_auth_secret")
        if field is not None:
            field.widget = forms.PasswordInput(render_value=True, attrs={"autocomplete": "new-password"})
            field.help_text = ("Used when the source is Value. Leave **** to keep the stored secret, or type a new "
                               "one to replace it (it is stored hashed).")
            if self.instance.prometheus_auth_secret:
                self.initial["prometheus_auth_secret"] = MASK


@admin.register(Metrics)
class MetricsAdmin(SingletonAdmin):
    form = MetricsForm


register_declared("telemetry")
