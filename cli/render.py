"""Human output: values (cli.md §2), objects laid out by the schema's forms (§5.2), tables
(§5.3), SetError blocks (§5.9) and the describe views (§5.1)."""
from __future__ import annotations

import json
import re

from .errors import CliError
from .schema import Schema, display_name, is_composite, kind, ref_target

MAX_CELL_WIDTH = 60
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")


class Ansi:
    NAMED = {"black": "30", "red": "31", "green": "32", "yellow": "33", "orange": "33", "blue": "34",
             "magenta": "35", "purple": "35", "violet": "35", "cyan": "36", "teal": "36", "white": "37",
             "gray": "90", "grey": "90"}

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def code(self, code: str) -> str:
        return f"\x1b[{code}m" if self.enabled else ""

    @property
    def reset(self):
        return self.code("0")

    @property
    def bold(self):
        return self.code("1")

    @property
    def dim(self):
        return self.code("2")

    @property
    def red(self):
        return self.code("31")

    @property
    def green(self):
        return self.code("32")

    @property
    def blue(self):
        return self.code("34")

    @property
    def cyan(self):
        return self.code("36")

    def named(self, color: str) -> str:
        return self.code(self.NAMED.get(str(color).lower(), "34"))


def visible_width(text: str) -> int:
    return len(_ANSI_RE.sub("", text))


def compact(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# --- scalar values ----------------------------------------------------------------------------
def render_size(n: float) -> str:
    if n <= 0:
        return "0 B"
    for label, unit in (("TB", 1024 ** 4), ("GB", 1024 ** 3), ("MB", 1024 ** 2), ("KB", 1024)):
        if n >= unit:
            v = n / unit
            return f"{v:.1f} {label}" if v < 100 else f"{v:.0f} {label}"
    return f"{n:.0f} B"


DURATION_UNITS = ((86_400_000, "d"), (3_600_000, "h"), (60_000, "m"), (1_000, "s"), (1, "ms"))


def render_duration(ms: float) -> str:
    """The two most significant units: `1 m 30 s`, `2 h 15 m`, `1 d 5 h`, `90 d`."""
    negative = ms < 0
    ms = int(abs(ms))
    if ms == 0:
        return "0 ms"
    for i, (unit, label) in enumerate(DURATION_UNITS):
        if ms >= unit:
            whole, rem = divmod(ms, unit)
            out = f"{'-' if negative else ''}{whole} {label}"
            if i + 1 < len(DURATION_UNITS) and rem:
                next_unit, next_label = DURATION_UNITS[i + 1]
                if rem // next_unit:
                    out += f" {rem // next_unit} {next_label}"
            return out
    return "0 ms"


def _number(value, fmt) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return compact(value)
    if fmt == "size":
        return render_size(value)
    if fmt == "duration":
        return render_duration(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class DisplayCache:
    """Labels of referenced objects, fetched with one x:T/get per referenced type."""

    def __init__(self):
        self.labels: dict[str, dict[str, str]] = {}

    def get(self, object_name, object_id) -> str | None:
        return self.labels.get(object_name, {}).get(object_id)

    def populate(self, client, schema: Schema, props: dict | None, objs: list[dict]) -> None:
        if props is None:
            return
        needed: dict[str, set] = {}
        for obj in objs:
            _collect_map(schema, props, obj, needed, set())
        for object_name in sorted(needed):
            label_prop = (schema.lists.get(object_name) or {}).get("labelProperty")
            if not label_prop or label_prop == "id":
                continue
            cached = self.labels.setdefault(object_name, {})
            missing = sorted(i for i in needed[object_name] if i not in cached)
            for start in range(0, len(missing), client.max_get):
                try:
                    result = client.call(f"{object_name}/get",
                                         {"ids": missing[start:start + client.max_get], "properties": [label_prop]})
                except CliError:
                    break
                for item in result.get("list") or []:
                    raw = item.get(label_prop) if isinstance(item, dict) else None
                    if isinstance(raw, bool):
                        raw = str(raw).lower()
                    if isinstance(raw, (str, int, float)) and str(raw) != "" and isinstance(item.get("id"), str):
                        cached[item["id"]] = str(raw)


def _collect_map(schema, props, obj, out, visited):
    if not isinstance(obj, dict):
        return
    for key, value in obj.items():
        field = props.get(key)
        if field is not None:
            _collect_value(schema, value, field.get("type"), out, visited)


def _collect_value(schema, value, ftype, out, visited):
    k = kind(ftype)
    if k == "objectId":
        if isinstance(value, str):
            out.setdefault(ftype.get("objectName"), set()).add(value)
    elif k == "set":
        target = ref_target(ftype.get("class"))
        if target and isinstance(value, dict):
            out.setdefault(target, set()).update(value)
    elif k == "map" and isinstance(value, dict):
        target = ref_target(ftype.get("keyClass"))
        if target:
            out.setdefault(target, set()).update(value)
        vclass = ftype.get("valueClass")
        if kind(vclass) == "object":
            for v in value.values():
                _collect_nested(schema, v, vclass.get("objectName"), out, visited)
    elif k == "object":
        _collect_nested(schema, value, ftype.get("objectName"), out, visited)
    elif k == "objectList" and isinstance(value, dict):
        for v in value.values():
            _collect_nested(schema, v, ftype.get("objectName"), out, visited)


def _collect_nested(schema, value, object_name, out, visited):
    if isinstance(value, dict) and object_name:
        props = schema.properties_for(object_name, value) if object_name in schema.schemas else None
        if props:
            _collect_map(schema, props, value, out, visited)


def _id_label(cache, object_name, object_id) -> str:
    label = cache.get(object_name, object_id) if cache else None
    return f"{label} (id: {object_id})" if label is not None else object_id


def _enum(schema, ansi, enum_name, value) -> str:
    if not isinstance(value, str):
        return compact(value)
    variant = schema.enum_variant(enum_name, value)
    if variant is None:
        return value
    color = ansi.named(variant["color"]) if variant.get("color") else ansi.blue
    return f"{color}{variant.get('label') or value}{ansi.reset}"


def _scalar_key(schema, ansi, cache, klass, key) -> str:
    k = kind(klass)
    if k == "objectId":
        return _id_label(cache, klass.get("objectName"), key)
    if k == "enum":
        return _enum(schema, ansi, klass.get("enumName"), key)
    return key


def render_inline(schema: Schema, value, ftype, cache, ansi: Ansi, reveal: bool = False) -> str:
    if value is None:
        return f"{ansi.dim}<none>{ansi.reset}"
    k = kind(ftype)
    if k == "string":
        if isinstance(ftype, dict) and ftype.get("format") in ("secret", "secretText") and not reveal:
            return "*****"
        return value if isinstance(value, str) else compact(value)
    if k == "number":
        return _number(value, ftype.get("format"))
    if k == "utcDateTime":
        return value if isinstance(value, str) else compact(value)
    if k == "boolean":
        return {True: "Yes", False: "No"}.get(value, compact(value)) if isinstance(value, bool) else compact(value)
    if k == "enum":
        return _enum(schema, ansi, ftype.get("enumName"), value)
    if k == "blobId":
        return f"<blob: {value if isinstance(value, str) else ''}>"
    if k == "objectId":
        return _id_label(cache, ftype.get("objectName"), value) if isinstance(value, str) else compact(value)
    if k == "set":
        if not isinstance(value, dict):
            return compact(value)
        if not value:
            return f"{ansi.dim}<none>{ansi.reset}"
        return ", ".join(_scalar_key(schema, ansi, cache, ftype.get("class"), key) for key in value)
    if k == "map":
        vclass = ftype.get("valueClass")
        if kind(vclass) == "object":
            return f"<map:{len(value) if isinstance(value, dict) else 0}>"
        if not isinstance(value, dict):
            return compact(value)
        if not value:
            return f"{ansi.dim}<none>{ansi.reset}"
        parts = []
        for key, v in value.items():
            rendered = render_inline(schema, v, vclass, None, ansi) if vclass is not None else compact(v)
            parts.append(f"{_scalar_key(schema, ansi, cache, ftype.get('keyClass'), key)} → {rendered}")
        return ", ".join(parts)
    if k == "object":
        return schema.variant_label(ftype.get("objectName"), value) or "<object>"
    if k == "objectList":
        return f"<list:{len(value) if isinstance(value, dict) else 0}>"
    return value if isinstance(value, str) else compact(value)


# --- whole objects ----------------------------------------------------------------------------
class ObjectRenderer:
    def __init__(self, schema: Schema, cache: DisplayCache, ansi: Ansi, reveal: bool = False):
        # reveal: show secrets, as create does for the values the server returns only once
        self.schema, self.cache, self.ansi, self.reveal = schema, cache, ansi, reveal

    def _form(self, name: str, obj: dict):
        schema = self.schema
        variants = schema.variants(name)
        if variants is not None:
            variant = next((v for v in variants if v.get("name") == obj.get("@type")), None)
            keys = []
            if variant is not None:
                if variant.get("schemaName"):
                    keys.append(variant["schemaName"])
                keys.append(f"{name}/{variant['name']}")
            keys.append(name)
        else:
            keys = [name, *schema.schema_names(name), *schema.views_of(name)]
        return next((schema.forms[k] for k in keys if k in schema.forms), None)

    def top(self, name: str, obj: dict) -> str:
        out: list[str] = []
        label = self.schema.variant_label(name, obj) if self.schema.variants(name) is not None else None
        if label:
            out.append(f"{self.ansi.bold}Type:{self.ansi.reset} {label}\n\n")
        props = self.schema.properties_for(name, obj)
        if props is None:
            return "".join(out) + json.dumps(obj, indent=2, ensure_ascii=False) + "\n"
        self._body(out, name, props, obj, 0)
        return "".join(out)

    def _body(self, out, name, props, obj, indent):
        schema = self.schema
        multi = schema.variants(name) is not None
        forms = []
        form = self._form(name, obj)
        if form is not None:
            forms.append(form)
        for view in schema.views_of(name):
            if view in schema.forms and schema.forms[view] is not form:
                forms.append(schema.forms[view])
        sections = []
        seen: set = set()
        for f in forms:
            for section in f.get("sections") or []:
                items = []
                for ff in section.get("fields") or []:
                    fname = ff.get("name")
                    if (fname == "@type" and multi) or fname not in props or fname not in obj or fname in seen:
                        continue
                    seen.add(fname)
                    items.append((ff.get("label") or fname, fname, props[fname]))
                if items:
                    sections.append((section.get("title"), items))
        orphans = [(n, n, f) for n, f in props.items() if n in obj and n not in seen and not (n == "@type" and multi)]
        if orphans:
            sections.append((None, orphans))
        first = True
        pad = " " * indent
        for title, items in sections:
            if not first:
                out.append("\n")
            first = False
            if title:
                out.append(f"{pad}{self.ansi.bold}{title}{self.ansi.reset}\n")
            width = max(len(label) for label, _, _ in items)
            for label, fname, field in items:
                self._field(out, label, width, field.get("type"), obj[fname], indent)

    def _field(self, out, label, width, ftype, value, indent):
        pad = " " * indent
        out.append(f"{pad}  {self.ansi.bold}{label}:{self.ansi.reset}")
        k = kind(ftype)
        if value is not None and k == "object":
            out.append("\n")
            self._nested(out, ftype.get("objectName"), value, indent + 4)
        elif value is not None and k == "objectList":
            out.append("\n")
            self._object_table(out, ftype.get("objectName"), value, indent + 4, "#", None)
        elif value is not None and k == "map" and kind(ftype.get("valueClass")) == "object":
            out.append("\n")
            self._object_table(out, ftype["valueClass"].get("objectName"), value, indent + 4, "Key",
                               ftype.get("keyClass"))
        else:
            out.append(" " * (width - len(label)) + " ")
            out.append(render_inline(self.schema, value, ftype, self.cache, self.ansi, self.reveal) + "\n")

    def _nested(self, out, object_name, value, indent):
        pad = " " * indent
        if not isinstance(value, dict) or object_name not in self.schema.schemas:
            out.append(pad + compact(value) + "\n")
            return
        label = self.schema.variant_label(object_name, value) if self.schema.variants(object_name) is not None else None
        if label:
            out.append(f"{pad}{self.ansi.bold}Type:{self.ansi.reset} {label}\n")
        props = self.schema.properties_for(object_name, value)
        if props is None:
            if not label:
                out.append(pad + compact(value) + "\n")
            return
        self._body(out, object_name, props, value, indent)

    def _columns(self, object_name):
        schema = self.schema
        if schema.variants(object_name) is not None or object_name not in schema.schemas:
            return None
        props = schema.properties(object_name)
        form = self._form(object_name, {})
        columns = []
        if form is not None:
            for section in form.get("sections") or []:
                for ff in section.get("fields") or []:
                    name = ff.get("name")
                    if name == "@type" or name not in props or is_composite(props[name].get("type")):
                        continue
                    columns.append((ff.get("label") or name, name, props[name].get("type")))
        else:
            columns = [(n, n, f.get("type")) for n, f in props.items() if not is_composite(f.get("type"))]
        return columns or None

    def _object_table(self, out, object_name, value, indent, first_header, key_class):
        pad = " " * indent
        if not isinstance(value, dict):
            out.append(pad + compact(value) + "\n")
            return
        if not value:
            out.append(f"{pad}{self.ansi.dim}<empty>{self.ansi.reset}\n")
            return
        columns = self._columns(object_name)
        if key_class is None:
            keys = sorted(value, key=_natural)
        else:
            keys = sorted(value, key=lambda k: _scalar_key(self.schema, Ansi(False), self.cache, key_class, k))
        if columns is None:
            for key in keys:
                out.append(f"{pad}{self.ansi.dim}{key}:{self.ansi.reset}\n")
                self._nested(out, object_name, value[key], indent + 2)
            return
        rows = []
        for key in keys:
            item = value[key]
            if not isinstance(item, dict):
                continue
            shown = key if key_class is None else _scalar_key(self.schema, Ansi(False), self.cache, key_class, key)
            rows.append([shown] + [render_inline(self.schema, item[name], ftype, self.cache, Ansi(False))
                                   if name in item else "" for _, name, ftype in columns])
        headers = [first_header] + [label for label, _, _ in columns]
        widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
        header = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
        out.append(f"{pad}{self.ansi.bold}{header.rstrip()}{self.ansi.reset}\n")
        for row in rows:
            out.append(pad + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() + "\n")


def _natural(key: str):
    return (0, int(key), "") if key.isdigit() else (1, 0, key)


# --- tables (query) ---------------------------------------------------------------------------
def tidy_cell(text: str) -> str:
    out, visible, prev_space, i = [], 0, False, 0
    while i < len(text):
        m = _ANSI_RE.match(text, i)
        if m:
            out.append(m.group())
            i = m.end()
            continue
        c = text[i]
        i += 1
        if c in "\n\r\t":
            if not prev_space:
                out.append(" ")
                visible += 1
                prev_space = True
        else:
            out.append(c)
            visible += 1
            prev_space = False
        if visible >= MAX_CELL_WIDTH:
            out.append("…")
            break
    return "".join(out)


# --- SetErrors --------------------------------------------------------------------------------
def _object_ref(ref, annotate=None) -> str:
    if isinstance(ref, dict):
        obj, oid = ref.get("object"), str(ref.get("id", ""))
        text = f"{display_name(obj)}#{oid}" if obj else oid
    else:
        oid = str(ref)
        text = oid
    note = annotate(oid) if annotate else None
    return f"{text} (plan reference #{note})" if note else text


def _validation_error(item) -> str:
    if not isinstance(item, dict):
        return str(item)
    prop, kind_ = item.get("property", ""), item.get("type", "")
    required = item.get("required")
    if kind_ == "Invalid":
        return f'{prop}: invalid value "{item.get("value", "")}"'
    if kind_ == "Required":
        return f"{prop}: required"
    if kind_ == "MaxLength":
        return f"{prop}: must be at most {required} chars"
    if kind_ == "MinLength":
        return f"{prop}: must be at least {required} chars"
    if kind_ == "MaxValue":
        return f"{prop}: must be at most {required}"
    if kind_ == "MinValue":
        return f"{prop}: must be at least {required}"
    return f"{prop}: {kind_}" + (f" {item.get('message')}" if item.get("message") else "")


def render_set_error(err, ansi: Ansi, annotate=None) -> str:
    """The block of cli.md §5.9; annotate(server_id) may name the plan reference it came from."""
    if not isinstance(err, dict):
        err = {"type": str(err)}
    lines = [f"{ansi.red}error: {err.get('type', 'unknown')}{ansi.reset}"]
    if err.get("description"):
        lines.append(f"  {err['description']}")
    if err.get("properties"):
        lines.append("  Properties: " + ", ".join(str(p) for p in err["properties"]))
    if err.get("existingId"):
        lines.append(f"  Existing id: {err['existingId']}")
    if err.get("objectId"):
        lines.append("  Object id:   " + _object_ref(err["objectId"], annotate))
    if err.get("linkedObjects"):
        lines.append("  Linked by:   " + ", ".join(_object_ref(r, annotate) for r in err["linkedObjects"]))
    if err.get("validationErrors"):
        lines.append("  Validation errors:")
        lines.extend(f"    {_validation_error(v)}" for v in err["validationErrors"])
    return "\n".join(lines)


# --- describe ---------------------------------------------------------------------------------
def _format_scalar(klass) -> str:
    if isinstance(klass, str):
        m = re.fullmatch(r"(?i)set<(.+)>", klass)
        return m.group(1) if m else klass
    k = kind(klass)
    if k == "objectId":
        return f"id<{display_name(klass.get('objectName', ''))}>"
    if k == "enum":
        return f"enum (see {klass.get('enumName')})"
    if k in ("string", "number"):
        return f"{k}<{klass.get('format') or k}>"
    return type_summary(klass)


def type_summary(ftype) -> str:
    if not isinstance(ftype, dict):
        return str(ftype)
    k = kind(ftype)
    q = "?" if ftype.get("nullable") else ""
    if k == "string":
        return f"string<{ftype.get('format') or 'string'}>{q}"
    if k == "number":
        return f"number<{ftype.get('format') or 'integer'}>{q}"
    if k == "utcDateTime":
        return f"datetime{q}"
    if k == "boolean":
        return "boolean"
    if k == "enum":
        return f"enum (see {ftype.get('enumName')}){q}"
    if k == "blobId":
        return "blob"
    if k == "objectId":
        return f"id<{display_name(ftype.get('objectName', ''))}>{q}"
    if k == "object":
        return f"object<{display_name(ftype.get('objectName', ''))}>{q}"
    if k == "objectList":
        return f"list<{display_name(ftype.get('objectName', ''))}>"
    if k == "set":
        return f"set<{_format_scalar(ftype.get('class'))}>"
    if k == "map":
        value = ftype.get("valueClass")
        if kind(value) == "object":
            vtext = f"object<{display_name(value.get('objectName', ''))}>"
        else:
            vtext = _format_scalar(value)
        return f"map<{_format_scalar(ftype.get('keyClass'))}, {vtext}>"
    return k or "unknown"


UPDATE_MODES = {"mutable": "mutable", "immutable": "immutable", "serverSet": "server-set"}


def describe_all(schema: Schema, ansi: Ansi) -> str:
    entries = sorted((k, v) for k, v in schema.objects.items() if k.startswith("x:") and v.get("type") != "view")
    if not entries:
        return ""
    width = max(len(display_name(k)) for k, _ in entries)
    out = []
    for key, entry in entries:
        name = display_name(key)
        line = f"{ansi.cyan}{name}{ansi.reset}{' ' * (width - len(name))}  {entry.get('description', '')}"
        if entry.get("type") == "singleton":
            line += f" {ansi.dim}[singleton]{ansi.reset}"
        out.append(line + "\n")
    return "".join(out)


def _fields_section(out, header, props, ansi, nested=False):
    out.append(f"{ansi.bold}{header}{ansi.reset}\n")
    ind, desc_ind = ("        ", "            ") if nested else ("    ", "        ")
    names = sorted(props)
    width = max((len(n) for n in names), default=0)
    for name in names:
        field = props[name]
        mode = UPDATE_MODES.get(field.get("update"), field.get("update") or "mutable")
        out.append(f"{ind}{ansi.cyan}{name}{ansi.reset}{' ' * (width - len(name))}  "
                   f"{type_summary(field.get('type'))}  {ansi.dim}{mode}{ansi.reset}\n")
        for line in (field.get("description") or "").splitlines():
            out.append(f"{desc_ind}{line}\n")


def describe_object(schema: Schema, canonical: str, ansi: Ansi) -> str:
    entry = schema.objects.get(canonical) or {}
    out = [f"{ansi.bold}{display_name(canonical)}{ansi.reset}"]
    if entry.get("type") == "singleton":
        out.append(f" {ansi.dim}[singleton]{ansi.reset}")
    # An embedded type (Credential, EmailAlias) has no description line of its own.
    out.append(f"\n  {entry['description']}\n\n" if entry.get("description") else "\n\n")
    variants = schema.variants(canonical)
    if variants is None:
        names = schema.schema_names(canonical)
        if names and names[0] in schema.fields:
            _fields_section(out, "Fields:", (schema.fields[names[0]] or {}).get("properties") or {}, ansi)
    else:
        out.append(f"{ansi.bold}  Variants:{ansi.reset}\n")
        for v in variants:
            out.append(f"    {ansi.cyan}{v.get('name')}{ansi.reset}: {v.get('label', '')}\n")
            if v.get("schemaName") in schema.fields:
                _fields_section(out, "      Fields:", schema.fields[v["schemaName"]].get("properties") or {},
                                ansi, nested=True)
    filters, sort, seen, seen_sort = [], [], set(), set()
    for key in [canonical, *schema.views_of(canonical)]:
        entry_list = schema.lists.get(key) or {}
        for f in entry_list.get("filters") or []:
            if f.get("field") not in seen:
                seen.add(f.get("field"))
                filters.append(f)
        for s in entry_list.get("sort") or []:
            if s not in seen_sort:
                seen_sort.add(s)
                sort.append(s)
    if filters:
        out.append(f"\n{ansi.bold}Filters:{ansi.reset}\n")
        kinds = []
        for f in filters:
            k = f.get("type", "")
            if k == "enum":
                k = f"enum (see {f.get('enumName')})"
            elif k == "objectId":
                k = f"id<{display_name(f.get('objectName', ''))}>"
            kinds.append(k)
        nw = max(len(f.get("field", "")) for f in filters)
        kw = max(len(k) for k in kinds)
        for f, k in zip(filters, kinds):
            field = f.get("field", "")
            out.append(f"    {ansi.cyan}{field}{ansi.reset}{' ' * (nw - len(field))}  {k.ljust(kw)}  "
                       f"{f.get('label', '')}\n")
    if sort:
        out.append(f"\n{ansi.bold}Sort by:{ansi.reset}\n    "
                   + ", ".join(f"{ansi.cyan}{s}{ansi.reset}" for s in sort) + "\n")
    return "".join(out)


def describe_enum(schema: Schema, name: str, ansi: Ansi) -> str:
    variants = schema.enums.get(name) or []
    out = [f"{ansi.bold}{name}{ansi.reset}  {ansi.dim}(enum){ansi.reset}\n\n", f"{ansi.bold}  Variants:{ansi.reset}\n"]
    width = max((len(v.get("name", "")) for v in variants), default=0)
    for v in variants:
        color = ansi.named(v["color"]) if v.get("color") else ansi.cyan
        vname = v.get("name", "")
        out.append(f"    {color}{vname}{ansi.reset}{' ' * (width - len(vname))}  {v.get('label', '')}\n")
        for line in (v.get("explanation") or "").splitlines():
            out.append(f"        {line}\n")
    return "".join(out)
