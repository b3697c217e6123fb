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


def pointer_segments(key: str) -> list[str]:
    """The segments of a JSON-pointer path as JMAP patches write it (RFC 8620 §5.3, without the
    leading slash): `a/b/0`, where `~1` stands for `/` and `~0` for `~` (RFC 6901)."""
    return [part.replace("~1", "/").replace("~0", "~") for part in key.split("/")]


def pointer_path(segments: list[str]) -> str:
    return "/".join(part.replace("~", "~0").replace("/", "~1") for part in segments)


def resolve_key(props: dict, key: str) -> tuple[list[str], dict | None]:
    """The path's segments with the first canonicalised (case-insensitively, like field names
    everywhere), and the property's schema type when the path names the property itself."""
    if key.lower() == "@type":
        return ["@type"], None
    segments = pointer_segments(key)
    found = Schema.find_field(props, segments[0])
    if found is None:
        raise unknown_field(segments[0])
    segments[0] = found[0]
    return segments, (found[1].get("type") if len(segments) == 1 else None)


def fields_to_map(props: dict, entries: list[str], mode: str) -> dict:
    """--field entries as a create body (paths build nested objects) or as a PatchObject (paths
    are its keys, which the server applies as JMAP patches)."""
    out: dict = {}
    for raw in entries:
        key, value = split_kv(raw)
        segments, ftype = resolve_key(props, key)
        if len(segments) == 1:
            canon = segments[0]
            parsed = coerce(canon, value, ftype, mode, typed=ftype is not None or canon == "@type")
        else:
            canon = pointer_path(segments)
            parsed = json_or_string(canon, value)
        if mode == UPDATE:
            if canon in out:
                raise CliError(f"duplicate --field key `{canon}`")
            out[canon] = parsed
        else:
            _place(out, segments, parsed, key)
    return out


def _place(body: dict, segments: list[str], value, key: str) -> None:
    """Put `value` at `segments` inside the create body, making the objects on the way."""
    node = body
    for depth, part in enumerate(segments[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise CliError(f"--field `{key}` conflicts with the value given for "
                           f"`{pointer_path(segments[:depth + 1])}`")
        node = child
    last = segments[-1]
    if last in node:
        raise CliError(f"duplicate --field key `{pointer_path(segments)}`")
    node[last] = value


def json_or_string(key: str, raw: str):
    """A value under a path: JSON where it parses as JSON (numbers, true, null, "text", objects),
    the text itself otherwise."""
    text = raw.strip()
    if text.startswith(("{", "[")):
        try:
            return loads(text)
        except ValueError as exc:
            raise CliError(f"invalid JSON in --field value for `{key}`: {exc}") from None
    try:
        value = loads(text)
    except ValueError:
        return raw
    if isinstance(value, float) and not math.isfinite(value):
        return raw  # NaN and Infinity are not JSON, whatever Python's parser accepts
    return value


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
    """The value of a property named as a whole, by its schema type (loosely when it has none)."""
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
