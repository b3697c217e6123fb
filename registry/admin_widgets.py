"""Widgets for the composite values of the admin pages: durations with their unit, name/value
maps (response headers), rules (access rules) and sets of known names (permissions).

Each widget is made of plain inputs that submit without script; static/stalwart/admin-ui.js only
adds rows, filters and checks as one types. Each still accepts the single raw value the former
text input posted (a JSON text, a duration such as "01:00:00", names one per line), so that
what the form field validates is the same either way: the server stays the authority.
"""
from __future__ import annotations

import json
import re
from datetime import timedelta

from django import forms
from django.contrib.admin.widgets import AdminSplitDateTime
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.utils.text import capfirst
from django.utils.dateparse import parse_duration

from .forms import NameSetFormField

# Largest first: a value is shown in the largest unit that divides it.
DURATION_UNITS = (("d", "days", 86400), ("h", "hours", 3600), ("m", "minutes", 60), ("s", "seconds", 1))
_UNIT_SECONDS = {code: seconds for code, _, seconds in DURATION_UNITS}


class ProjectTemplateWidget(forms.Widget):
    """Rendered by the project's template engine (templates/admin/widgets/), not the form
    renderer's, which reads only the apps' and Django's own widget templates."""

    def render(self, name, value, attrs=None, renderer=None):
        return mark_safe(render_to_string(self.template_name, self.get_context(name, value, attrs)))


class DurationWidget(ProjectTemplateWidget):
    """A number and a unit (seconds, minutes, hours, days); posts a number of seconds."""

    template_name = "admin/widgets/stalwart_duration.html"

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        amount, unit = self.split(value)
        context["widget"].update({
            "amount": amount, "unit": unit,
            "units": [(code, label) for code, label, _ in DURATION_UNITS],
        })
        return context

    @staticmethod
    def split(value) -> tuple[str, str]:
        if isinstance(value, str):
            parsed = parse_duration(value.strip()) if value.strip() else None
            if parsed is None:
                return value, "s"  # what was typed, shown back beside its error
            value = parsed
        if not isinstance(value, timedelta):
            return "", "s"
        seconds = value.total_seconds()
        if seconds != int(seconds):
            return f"{seconds:g}", "s"
        for code, _, size in DURATION_UNITS:
            if seconds and seconds % size == 0:
                return str(int(seconds // size)), code
        return "0", "s"

    def value_from_datadict(self, data, files, name):
        if name in data:  # the single text input of before ("01:00:00", "3600")
            return data.get(name)
        amount = (data.get(name + "_amount") or "").strip()
        unit = data.get(name + "_unit") or "s"
        if not amount:
            return ""
        if unit not in _UNIT_SECONDS or not re.fullmatch(r"\d{1,12}", amount):
            return amount + " " + unit  # not a duration: the form field says so
        return str(int(amount) * _UNIT_SECONDS[unit])

    def value_omitted_from_data(self, data, files, name):
        return name not in data and name + "_amount" not in data


def _loads(value):
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


class RowsJson(str):
    """The JSON a row widget posts, with the names its rows gave more than once."""

    def __new__(cls, text: str, duplicates=()):
        obj = super().__new__(cls, text)
        obj.duplicates = list(duplicates)
        return obj


class KeyValueFormField(forms.JSONField):
    """The form field of a key/value widget: a name given in two rows is an error on the field."""

    def to_python(self, value):
        duplicates = getattr(value, "duplicates", None)
        if duplicates:
            raise forms.ValidationError(
                "%(names)s given in more than one row; each name may appear once.", code="duplicate",
                params={"names": ", ".join(duplicates) + (" is" if len(duplicates) == 1 else " are")})
        return super().to_python(value)


class KeyValueWidget(ProjectTemplateWidget):
    """Rows of name and value inputs (response headers); posts a JSON object."""

    template_name = "admin/widgets/stalwart_keyvalue.html"
    blank_rows = 2

    def __init__(self, attrs=None, key_label="Name", value_label="Value"):
        super().__init__(attrs)
        self.key_label, self.value_label = key_label, value_label

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        data = _loads(value)
        rows = [(str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in data.items()] \
            if isinstance(data, dict) else []
        if value and not isinstance(data, dict):
            context["widget"]["raw"] = value  # not an object: shown as typed, with its error
        rows += [("", "")] * self.blank_rows
        context["widget"].update({"rows": rows, "key_label": self.key_label, "value_label": self.value_label})
        return context

    def value_from_datadict(self, data, files, name):
        if name in data:
            return data.get(name)
        keys, values = data.getlist(name + "__key"), data.getlist(name + "__value")
        out, first, twice = {}, {}, []
        for key, text in zip(keys, values):
            if key.strip() or text.strip():
                # Header names are case-insensitive: two rows naming one header would have been
                # merged into one (the last row winning) without a word.
                folded = key.strip().lower()
                if folded in first and first[folded] not in twice:
                    twice.append(first[folded])
                first.setdefault(folded, key.strip())
                out[key] = text
        return RowsJson(json.dumps(out), twice)

    def value_omitted_from_data(self, data, files, name):
        return name not in data and name + "__key" not in data


class RuleWidget(ProjectTemplateWidget):
    """An access rule as rows of "if" condition and "then" result, and an "else" result; posts
    the rule's JSON. Each expression is checked as one types against the rule-check endpoint,
    which runs the server's own parser (network/expr.py) and answers with the error's position."""

    template_name = "admin/widgets/stalwart_rule.html"

    def __init__(self, attrs=None, field_path: str = ""):
        super().__init__(attrs)
        self.field_path = field_path

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        rule = _loads(value)
        rows, otherwise = [], ""
        if isinstance(rule, dict):
            match = rule.get("match") or []
            if isinstance(match, dict):
                match = [match[k] for k in sorted(match, key=lambda k: int(k) if str(k).isdigit() else 0)]
            for item in match if isinstance(match, list) else []:
                if isinstance(item, dict):
                    rows.append((str(item.get("if", "")), str(item.get("then", ""))))
            otherwise = str(rule.get("else", ""))
        elif value:
            context["widget"]["raw"] = value
        rows.append(("", ""))
        context["widget"].update({
            "rows": rows, "else": otherwise,
            "check_url": reverse("admin:rule-check") + "?field=" + self.field_path,
        })
        return context

    def value_from_datadict(self, data, files, name):
        if name in data:
            return data.get(name)
        conditions, results = data.getlist(name + "__if"), data.getlist(name + "__then")
        match = [{"if": c, "then": r} for c, r in zip(conditions, results) if c.strip() or r.strip()]
        rule = {"match": match, "else": data.get(name + "__else", "")} if match else {"else": data.get(name + "__else", "")}
        return json.dumps(rule)

    def value_omitted_from_data(self, data, files, name):
        return name not in data and name + "__else" not in data


class ServicesWidget(ProjectTemplateWidget):
    """One row per protocol: advertised or not, its host name (empty: the default host name),
    and whether the cleartext port is advertised too; posts the services' JSON object."""

    template_name = "admin/widgets/stalwart_services.html"

    def __init__(self, attrs=None, protocols=()):
        super().__init__(attrs)
        self.protocols = tuple(protocols)

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        data = _loads(value)
        if value and not isinstance(data, dict):
            context["widget"]["raw"] = value
            data = {}
        rows = []
        for protocol in self.protocols:
            service = (data or {}).get(protocol)
            service = service if isinstance(service, dict) else None
            rows.append({"protocol": protocol, "on": service is not None,
                         "hostname": (service or {}).get("hostname") or "",
                         "cleartext": bool((service or {}).get("cleartext"))})
        context["widget"]["rows"] = rows
        return context

    def value_from_datadict(self, data, files, name):
        if name in data:
            return data.get(name)
        advertised = set(data.getlist(name + "__on"))
        cleartext = set(data.getlist(name + "__cleartext"))
        out = {}
        for protocol in self.protocols:
            if protocol in advertised:
                host = (data.get(f"{name}__host__{protocol}") or "").strip()
                out[protocol] = {"hostname": host or None, "cleartext": protocol in cleartext}
        return json.dumps(out)

    def value_omitted_from_data(self, data, files, name):
        return name not in data and name + "__present" not in data


class MailExchangersWidget(ProjectTemplateWidget):
    """Rows of host name (empty: the default host name) and priority; posts the list's JSON."""

    template_name = "admin/widgets/stalwart_mx.html"

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        data = _loads(value)
        if value and not isinstance(data, list):
            context["widget"]["raw"] = value
            data = []
        rows = [((mx.get("hostname") or ""), mx.get("priority", "")) for mx in data or [] if isinstance(mx, dict)]
        rows.append(("", ""))
        context["widget"]["rows"] = rows
        return context

    def value_from_datadict(self, data, files, name):
        if name in data:
            return data.get(name)
        out = []
        for host, priority in zip(data.getlist(name + "__host"), data.getlist(name + "__priority")):
            host, priority = host.strip(), priority.strip()
            if not host and not priority:
                continue
            # A priority that is not a number goes through as typed: the model's check names it.
            out.append({"hostname": host or None, "priority": int(priority) if priority.isdigit() and len(priority) < 7 else priority})
        return json.dumps(out)

    def value_omitted_from_data(self, data, files, name):
        return name not in data and name + "__present" not in data


class NamePicker(ProjectTemplateWidget, forms.CheckboxSelectMultiple):
    """Checkboxes for a set of known names (permissions), with a search box and a count."""

    template_name = "admin/widgets/stalwart_names.html"


# Headings of the picker, by the leading word of a name (the catalogue's own naming scheme).
NAME_GROUPS = {
    "sys": "Management objects", "jmap": "JMAP", "dav": "WebDAV, CalDAV, CardDAV", "imap": "IMAP", "pop3": "POP3",
    "sieve": "Sieve", "action": "Server actions", "task": "Tasks", "calendar": "Calendar", "email": "Email",
}


def grouped_names(names) -> list:
    """Choices grouped under NAME_GROUPS' headings (the rest under "General"), each sorted."""
    groups: dict[str, list] = {}
    for name in sorted(names):
        head = re.match(r"[a-z]+[0-9]*", name)
        groups.setdefault(NAME_GROUPS.get(head.group(0) if head else "", "General"), []).append((name, name))
    order = ["General", *NAME_GROUPS.values()]
    return [(title, groups[title]) for title in order if title in groups]


class NameChoiceFormField(NameSetFormField):
    """A set of names from a known catalogue, picked with checkboxes."""

    def __init__(self, *args, allowed=None, **kwargs):
        super().__init__(*args, allowed=allowed, **kwargs)
        self.widget = NamePicker(choices=grouped_names(allowed()))

    def prepare_value(self, value):
        if isinstance(value, str):
            return self.to_python(value)
        return list(value or [])

    def to_python(self, value):
        if isinstance(value, (list, tuple, set)):
            # A posted item may still hold several names (the one-per-line text of before).
            value = "\n".join(str(v) for v in value)
        return super().to_python(value)


class LabelledSplitDateTime(AdminSplitDateTime):
    """Django's date and time inputs, each named for screen readers: the field's one label
    points at neither of the two."""

    def __init__(self, attrs=None):
        super().__init__(attrs)
        self.widgets[0].attrs.setdefault("aria-label", "Date (YYYY-MM-DD)")
        self.widgets[1].attrs.setdefault("aria-label", "Time (HH:MM:SS)")


_EXAMPLE = re.compile(r"\s*Example: (?=[\[{])")


def without_json_examples(text: str) -> str:
    """The help text without its "Example: <JSON>." sentences: they show the JSON faces (JMAP,
    manage.py, /api/schema) what to send, and mean nothing beside a widget that writes the JSON."""
    out, start = [], 0
    for match in _EXAMPLE.finditer(text):
        if match.start() < start:
            continue
        try:
            _value, end = json.JSONDecoder().raw_decode(text, match.end())
        except ValueError:
            continue
        out.append(text[start:match.start()])
        start = end + (1 if text[end:end + 1] == "." else 0)
    out.append(text[start:])
    return "".join(out).strip()


def plain_help(field, db_field) -> None:
    """Drop the "type JSON like this" half of a help text where a widget replaced the JSON."""
    if isinstance(field.widget, ProjectTemplateWidget):
        field.help_text = without_json_examples(str(db_field.help_text or ""))


def formfield_overrides(db_field) -> dict:
    """Form field arguments that give `db_field` one of these widgets, or {}."""
    # Imported by name, not by class: registry imports no other app of ours.
    kind = type(db_field).__name__
    if kind == "DateTimeField":
        return {"widget": LabelledSplitDateTime}
    if kind == "DurationField":
        return {"widget": DurationWidget}
    if kind == "HeaderMapField":
        return {"widget": KeyValueWidget(key_label="Header", value_label="Value"), "form_class": KeyValueFormField}
    if kind == "RuleField":
        path = f"{db_field.model._meta.label_lower}.{db_field.name}"
        return {"widget": RuleWidget(field_path=path)}
    if kind == "ServicesField":
        # The default lists every protocol, in the reference's order.
        return {"widget": ServicesWidget(protocols=list(db_field.get_default()))}
    if kind == "MailExchangersField":
        return {"widget": MailExchangersWidget}
    return {}


def name_choice_field(db_field, label: str | None = None):
    """A checkbox picker for a set of names from a known, finite catalogue (permissions)."""
    allowed = getattr(db_field, "allowed", None)
    if allowed is None or not hasattr(db_field, "jmap_encode"):
        return None
    return NameChoiceFormField(required=not db_field.blank, label=label or capfirst(db_field.verbose_name),
                               help_text=db_field.help_text, allowed=allowed)
