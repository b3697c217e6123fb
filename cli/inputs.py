"""Input for create and update (cli.md §5.4, §5.5): --field k=v, --json, --file, --stdin; and the
id lists of delete."""
from __future__ import annotations

import math
import re

from .errors import CliError, loads, unknown_field
from .schema import Schema, kind, nullable

CREATE, UPDATE = "create", "update"


def read_sources(fields: list[str], json_text: str | None, file: str | None, stdin: bool, stdin_stream):
    """The one input source given: ("fields", [...]) or ("json", text)."""
    active = sum([bool(fields), json_text is not None, file is not None, bool(stdin)])
    if active == 0:
        raise CliError("no input provided; use --field, --json, --file, or --stdin")
    if active > 1:
        raise CliError("input sources are mutually exclusive: pick one of --field, --json, --file, --stdin")
    if json_text is not None:
        return parse_json_object(json_text)
    if file is not None:
        return parse_json_object(read_text_file(file))
    if stdin:
        return parse_json_object(stdin_stream.read())
    return None


def parse_json_object(text: str) -> dict:
    try:
        value = loads(text.strip())
    except ValueError as exc:
        raise CliError(f"invalid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise CliError("input must be a JSON object")
    return value


def build_input(schema: Schema, props: dict, entries: list[str], json_text, file, stdin, stdin_stream,
                mode: str) -> dict:
    parsed = read_sources(entries, json_text, file, stdin, stdin_stream)
    if parsed is not None:
        return parsed
    return fields_to_map(props, entries, mode)


def split_kv(raw: str) -> tuple[str, str]:
    if raw[:1] in ('"', "'"):
        quote = raw[0]
        close = raw.find(quote, 1)
        if close < 0:
            raise CliError(f"invalid --field `{raw}`: unterminated quoted key")
        key = raw[1:close]
        if not key:
            raise CliError(f"invalid --field `{raw}`: empty quoted key")
        rest = raw[close + 1:]
        if not rest.startswith("="):
            raise CliError(f"invalid --field `{raw}`: expected `=` after quoted key")
        return key, rest[1:]
    key, sep, value = raw.partition("=")
    if not sep or not key:
        raise CliError(f"invalid --field `{raw}`: expected KEY=VALUE")
    return key, value


def resolve_key(props: dict, key: str, mode: str) -> tuple[str, dict | None]:
    if key.lower() == "@type":
        return "@type", None
    if mode == CREATE:
        found = Schema.find_field(props, key)
        if found is None:
            raise unknown_field(key)
        return found[0], found[1].get("type")
    head, sep, rest = key.partition("/")
    found = Schema.find_field(props, head)
    if found is None:
        raise unknown_field(head)
    if sep:
        return f"{found[0]}/{rest}", None
    return found[0], found[1].get("type")


def fields_to_map(props: dict, entries: list[str], mode: str) -> dict:
    out: dict = {}
    for raw in entries:
        key, value = split_kv(raw)
        if mode == CREATE and "/" in key and key.lower() != "@type":
            raise CliError(f"`--field` keys for `create` must be top-level properties (got `{key}`)")
        canon, ftype = resolve_key(props, key, mode)
        if canon in out:
            raise CliError(f"duplicate --field key `{canon}`")
        out[canon] = coerce(canon, value, ftype, mode, typed=ftype is not None or canon == "@type")
    return out


def _int(text: str):
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        return None
    n = int(text)
    return n if -(2 ** 63) <= n < 2 ** 63 else None


def _float(text: str):
    try:
        n = float(text)
    except ValueError:
        return None
    return n if math.isfinite(n) else None


def coerce(key: str, raw: str, ftype, mode: str, typed: bool = True):
    """A --field value as JSON, by the property's schema type (loosely for pointer paths)."""
    if raw.lstrip().startswith(("{", "[")):
        try:
            return loads(raw)
        except ValueError as exc:
            raise CliError(f"invalid JSON in --field value for `{key}`: {exc}") from None
    if raw == "null":
        if mode == UPDATE or ftype is None or nullable(ftype):
            return None
        raise CliError(f"null is not allowed for non-nullable field `{key}` on create")
    if ftype is None:
        if not typed:
            if raw.lower() in ("true", "false"):
                return raw.lower() == "true"
            if _int(raw) is not None:
                return _int(raw)
            if _float(raw) is not None:
                return _float(raw)
        return raw
    k = kind(ftype)
    if k == "boolean":
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        raise CliError(f"invalid value for `{key}`: expected boolean, got `{raw}`")
    if k == "number":
        if ftype.get("format") == "float":
            n = _float(raw)
            if n is None:
                raise CliError(f"invalid value for `{key}`: expected number, got `{raw}`")
            return n
        n = _int(raw)
        if n is None:
            unit = " (milliseconds)" if ftype.get("format") == "duration" else ""
            raise CliError(f"invalid value for `{key}`: expected integer{unit}, got `{raw}`")
        return n
    if k in ("object", "objectList", "set", "map"):
        raise CliError(f"invalid value for `{key}`: the field requires a JSON object/array value "
                       "(wrap in `{...}` or `[...]`)")
    return raw


def parse_ids(raw: str) -> list[str]:
    text = raw.strip()
    if not text:
        return []
    try:
        value = loads(text)
    except ValueError:
        value = None
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise CliError("ids array must contain only strings")
        return value
    return [part for part in text.replace(",", " ").split() if part]


def read_text_file(file: str) -> str:
    """The UTF-8 text of `file`, or CliError naming what is wrong with it."""
    try:
        raw = open(file, "rb").read()
    except OSError as exc:
        raise CliError(f"{file}: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CliError(f"{file}: invalid UTF-8: {exc}") from None
