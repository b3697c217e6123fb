"""Model fields for values the reference encodes specially in JSON."""
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.text import capfirst

from .forms import NameSetFormField, StringListFormField


class NameSetField(models.JSONField):
    """A set of names, stored as a sorted JSON list and encoded as {"name": true, …} in JMAP.

    `allowed` is a callable returning the permitted names, checked on validation.
    """

    def __init__(self, *args, allowed=None, schema_type="Set<String>", **kwargs):
        self.allowed = allowed
        self.schema_type = schema_type
        kwargs.setdefault("default", list)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs.pop("allowed", None)
        return name, path, args, kwargs

    def jmap_encode(self, value):
        return {name: True for name in value or []}

    def jmap_decode(self, value):
        if not isinstance(value, dict) or not all(isinstance(k, str) and v is True for k, v in value.items()):
            raise ValueError("expected an object of names mapped to true")
        return sorted(value)

    def validate(self, value, model_instance):
        super().validate(value, model_instance)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValidationError("Expected a list of names.", code="invalid", params={"value": value})
        if self.allowed is not None:
            unknown = sorted(set(value) - set(self.allowed()))
            if unknown:
                raise ValidationError(
                    "Unknown name(s): %(value)s", code="invalid", params={"value": ", ".join(unknown[:10])}
                )

    def formfield(self, **kwargs):
        # The form's label when it gives one (an admin page: the declaration's), else the field's.
        return NameSetFormField(
            required=not self.blank, label=kwargs.get("label") or capfirst(self.verbose_name),
            help_text=self.help_text, allowed=self.allowed,
        )


class StringListField(models.JSONField):
    """An ordered list of strings (the reference's `String[]`), a JSON array in JMAP."""

    def __init__(self, *args, schema_type="String[]", **kwargs):
        self.schema_type = schema_type
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)

    def jmap_encode(self, value):
        return list(value or [])

    def jmap_decode(self, value):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError("expected a list of strings")
        return value

    def validate(self, value, model_instance):
        super().validate(value, model_instance)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValidationError("Expected a list of strings.", code="invalid", params={"value": value})

    def formfield(self, **kwargs):

        # Through Field.formfield(): the add page starts from the model's default list.
        return super().formfield(**{"form_class": StringListFormField, **kwargs})
