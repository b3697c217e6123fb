"""Form fields for values stored specially (sets of names)."""
import re

from django import forms


class NameSetFormField(forms.CharField):
    """A set of names typed one per line (commas and spaces also separate)."""

    widget = forms.Textarea(attrs={"rows": 6, "cols": 60, "spellcheck": "false"})

    def __init__(self, *args, allowed=None, **kwargs):
        self.allowed = allowed
        kwargs.pop("encoder", None)
        kwargs.pop("decoder", None)
        kwargs.pop("max_length", None)
        super().__init__(*args, **kwargs)

    def prepare_value(self, value):
        if isinstance(value, (list, tuple, set)):
            return "\n".join(value)
        return value

    def to_python(self, value):
        if isinstance(value, (list, tuple, set)):
            return sorted(set(value))
        return sorted({item for item in re.split(r"[\s,]+", value or "") if item})

    def validate(self, value):
        if self.required and not value:
            raise forms.ValidationError(self.error_messages["required"], code="required")
        if self.allowed is not None:
            unknown = sorted(set(value) - set(self.allowed()))
            if unknown:
                raise forms.ValidationError(
                    "Unknown name(s): %(value)s", code="invalid", params={"value": ", ".join(unknown[:10])}
                )

    def has_changed(self, initial, data):
        return sorted(set(initial or [])) != self.to_python(data)


class StringListFormField(forms.CharField):
    """An ordered list of strings typed one per line (order kept, blank lines dropped)."""

    widget = forms.Textarea(attrs={"rows": 3, "cols": 60, "spellcheck": "false"})

    def __init__(self, *args, **kwargs):
        for key in ("encoder", "decoder", "max_length"):
            kwargs.pop(key, None)
        super().__init__(*args, **kwargs)

    def prepare_value(self, value):
        if isinstance(value, (list, tuple)):
            return "\n".join(value)
        return value

    def to_python(self, value):
        if isinstance(value, (list, tuple)):
            return list(value)
        return [line.strip() for line in (value or "").splitlines() if line.strip()]

    def validate(self, value):
        if self.required and not value:
            raise forms.ValidationError(self.error_messages["required"], code="required")

    def has_changed(self, initial, data):
        # The initial comes back as typed text when the page carried it (show_hidden_initial).
        return self.to_python(initial) != self.to_python(data)
