"""describe, get, query, create, update and delete (cli.md §5.1–§5.6)."""
from __future__ import annotations

from .base import Ctx
from .errors import CliError
from .inputs import CREATE, UPDATE, build_input, parse_ids
from .render import (
    Ansi,
    DisplayCache,
    ObjectRenderer,
    compact,
    describe_all,
    describe_enum,
    describe_object,
    render_inline,
    render_set_error,
    tidy_cell,
    visible_width,
)
from .schema import Schema, display_name, forbid_slash_form, kind
from .transport import check_response

PAGE_SIZE = 10


def object_id(schema, canonical: str, raw: str | None) -> str:
    if schema.is_singleton(canonical):
        if raw in (None, "singleton"):
            return "singleton"
        raise CliError("singleton id must be 'singleton'")
    if not raw:
        raise CliError(f"{display_name(canonical)} requires an id")
    return raw


def split_list(raw: str | None) -> list[str] | None:
    if raw is None:
        return None
    return [part.strip() for part in raw.split(",") if part.strip()]


# --- describe ---------------------------------------------------------------------------------
def describe(ctx: Ctx, name: str | None) -> None:
    schema = ctx.schema
    if name is None:
        ctx.write(describe_all(schema, ctx.ansi))
        return
    canonical = schema.resolve(name, views_as_not_found=True)
    if canonical is not None:
        ctx.write(describe_object(schema, canonical, ctx.ansi))
        return
    enum_name = schema.resolve_enum(name)
    if enum_name is not None:
        ctx.write(describe_enum(schema, enum_name, ctx.ansi))
        return
    embedded = schema.embedded_type(name)
    if embedded is not None:
        ctx.write(describe_object(schema, embedded, ctx.ansi))
        return
    raise CliError(f"unknown object: {name.strip()}")


# --- get --------------------------------------------------------------------------------------
def get(ctx: Ctx, name: str, raw_id: str | None, fields: str | None, as_json: bool) -> None:
    forbid_slash_form(name)
    schema = ctx.schema
    canonical = schema.require(name)
    oid = object_id(schema, canonical, raw_id)
    properties = schema.canonical_fields(canonical, split_list(fields)) if fields is not None else None
    result = ctx.client.call(f"{canonical}/get", {"ids": [oid], "properties": properties})
    items = result.get("list")
    if not isinstance(items, list):
        raise CliError("unexpected server response: missing 'list' in get response")
    if not items:
        raise CliError(f"{display_name(canonical)} {oid} not found")
    obj = items[0]
    if not isinstance(obj, dict):
        raise CliError("unexpected server response: object is not a JSON object")
    if as_json:
        ctx.write(compact(obj) + "\n")
        return
    ctx.write(render_object(ctx, canonical, obj))


def render_object(ctx: Ctx, canonical: str, obj: dict, reveal: bool = False) -> str:
    cache = DisplayCache()
    cache.populate(ctx.client, ctx.schema, ctx.schema.properties_for(canonical, obj), [obj])
    return ObjectRenderer(ctx.schema, cache, ctx.ansi, reveal).top(canonical, obj)


# --- query ------------------------------------------------------------------------------------
OPERATORS = ((">=", "IsGreaterThanOrEqual"), ("<=", "IsLessThanOrEqual"), (">", "IsGreaterThan"),
             ("<", "IsLessThan"), ("=", ""))


def parse_where(text: str) -> tuple[str, str, str, str]:
    for symbol, suffix in OPERATORS:
        i = text.find(symbol)
        if i > 0:
            return text[:i].strip(), symbol, suffix, text[i + len(symbol):]
    raise CliError(f"invalid --where `{text}`: expected field=value (or field>=value, <=, >, <)")


def coerce_where(raw: str, ftype):
    k = kind(ftype) if ftype is not None else None
    if k == "boolean":
        if raw.lower() in ("true", "yes", "1"):
            return True
        if raw.lower() in ("false", "no", "0"):
            return False
        raise CliError(f"expected boolean, got `{raw}`")
    if k == "number":
        try:
            return float(raw) if ftype.get("format") == "float" else int(raw)
        except ValueError:
            raise CliError(f"expected {'number' if ftype.get('format') == 'float' else 'integer'}, "
                           f"got `{raw}`") from None
    return raw


def build_filter(props: dict, wheres: list[str]) -> dict:
    out: dict = {}
    for clause in wheres:
        key, symbol, suffix, value = parse_where(clause)
        found = Schema.find_field(props, key)
        if symbol != "=" and found is not None and kind(found[1].get("type")) not in ("number", "utcDateTime"):
            raise CliError(f"operator `{symbol}` is only allowed on number or datetime fields")
        name, ftype = (found[0], found[1].get("type")) if found else (key, None)
        out[name + suffix] = coerce_where(value, ftype)
    return out


class Pager:
    """Anchor-based paging: the first page counts, the next ones start after the last id."""

    def __init__(self, filt: dict | None, limit: int):
        self.args = {"filter": filt, "limit": limit, "calculateTotal": True}
        if filt is None:
            del self.args["filter"]

    def advance(self, last_id: str) -> None:
        self.args.pop("calculateTotal", None)
        self.args["anchor"] = last_id
        self.args["anchorOffset"] = 1


def query_ids(client, canonical: str, pager: Pager) -> list[str]:
    result = client.call(f"{canonical}/query", dict(pager.args))
    return [i for i in result.get("ids") or [] if isinstance(i, str)]


def query_rows(client, canonical: str, pager: Pager, properties: list[str] | None) -> list[dict]:
    qname, gname = f"{canonical}/query", f"{canonical}/get"
    calls = [[qname, dict(pager.args), "q"],
             [gname, {"#ids": {"resultOf": "q", "name": qname, "path": "/ids"}, "properties": properties}, "g"]]
    responses, _ = client.call_many(calls)
    if len(responses) != 2:
        raise CliError(f"unexpected server response: expected 2 responses, got {len(responses)}")
    check_response(responses[0], qname)
    result = check_response(responses[1], gname)
    items = result.get("list")
    if not isinstance(items, list):
        raise CliError("unexpected server response: get missing 'list'")
    return [i for i in items if isinstance(i, dict)]


def iterate_rows(client, canonical, filt, properties):
    """Every object matching the filter, page by page."""
    pager = Pager(filt, client.max_get)
    while True:
        rows = query_rows(client, canonical, pager, properties)
        if not rows:
            return
        yield rows
        last = rows[-1].get("id")
        if len(rows) < client.max_get or not isinstance(last, str):
            return
        pager.advance(last)


def iterate_ids(client, canonical, filt):
    pager = Pager(filt, client.max_get)
    while True:
        page = query_ids(client, canonical, pager)
        if not page:
            return
        yield page
        if len(page) < client.max_get:
            return
        pager.advance(page[-1])


def query(ctx: Ctx, name: str, wheres: list[str], fields: str | None, as_json: bool) -> None:
    forbid_slash_form(name)
    schema = ctx.schema
    canonical = schema.require(name)
    if schema.is_singleton(canonical):
        raise CliError(f"{display_name(canonical)} is a singleton and does not support query")
    props = schema.properties(canonical)
    filt = build_filter(props, wheres or [])
    columns = _columns(schema, canonical, props, split_list(fields) if fields is not None else None)
    client = ctx.client
    if as_json:
        # cli.md §5.3: records with --fields, otherwise one JSON string id per line.
        if fields is None:
            for page in iterate_ids(client, canonical, filt):
                ctx.write("".join(compact(i) + "\n" for i in page))
        else:
            for rows in iterate_rows(client, canonical, filt, [c[0] for c in columns]):
                ctx.write("".join(compact(r) + "\n" for r in rows))
        return
    shown = 0
    if columns is None:
        for page in iterate_ids(client, canonical, filt):
            for i, oid in enumerate(page):
                ctx.write(oid + "\n")
                shown += 1
                if ctx.interactive and shown % PAGE_SIZE == 0 and not (len(page) < client.max_get
                                                                        and i == len(page) - 1):
                    if not _more(ctx):
                        return
        return
    cache = DisplayCache()
    for rows in iterate_rows(client, canonical, filt, [c[0] for c in columns]):
        cache.populate(client, schema, props, rows)
        cells = [[tidy_cell(_cell(schema, row, col, cache, ctx.ansi)) for col in columns] for row in rows]
        widths = [max([len(col[1])] + [visible_width(r[i]) for r in cells]) for i, col in enumerate(columns)]
        header = ctx.ansi.bold + "  ".join(col[1].ljust(w) for col, w in zip(columns, widths)).rstrip() + ctx.ansi.reset
        last_page = len(rows) < client.max_get
        ctx.write(header + "\n")
        for idx, row in enumerate(cells):
            line = "  ".join(c + " " * (w - visible_width(c)) for c, w in zip(row, widths))
            ctx.write(line.rstrip() + "\n")
            shown += 1
            if ctx.interactive and shown % PAGE_SIZE == 0 and not (last_page and idx == len(cells) - 1):
                if not _more(ctx):
                    return
                ctx.write(header + "\n")


def _more(ctx: Ctx) -> bool:
    ctx.out.flush()
    ctx.err.write("Show more? [Y/n] ")
    ctx.err.flush()
    answer = ctx.stdin.readline()
    return answer.strip().lower() not in ("n", "no")


def _columns(schema, canonical, props, user_fields):
    """(name, label, type) per column; None when only ids are to be printed."""
    if user_fields is not None:
        out = []
        for name in schema.canonical_fields(canonical, user_fields):
            ftype = props[name].get("type") if name in props else None
            out.append((name, schema.field_label(canonical, name) or name, ftype))
        return out
    entry = schema.list_for(canonical)
    if entry is None:
        return None
    out = [("id", "Id", None)]
    for col in entry.get("columns") or []:
        if col.get("name") == "id":
            continue
        field = props.get(col.get("name"))
        out.append((col["name"], col.get("label") or col["name"], field.get("type") if field else None))
    return out


def _cell(schema, row, col, cache, ansi) -> str:
    name, _, ftype = col
    if name not in row:
        return ""
    value = row[name]
    if ftype is None:
        return value if isinstance(value, str) else compact(value)
    return render_inline(schema, value, ftype, cache, ansi)


# --- create / update / delete -----------------------------------------------------------------
def create(ctx: Ctx, name: str, fields: list[str], json_text, file, stdin: bool) -> None:
    schema = ctx.schema
    canonical, variant = schema.create_target(name)
    props = schema.properties(canonical, variant)
    body = build_input(schema, props, fields or [], json_text, file, stdin, ctx.stdin, CREATE)
    if variant is not None:
        if "@type" in body:
            if body["@type"] != variant:
                ctx.warn("--field `@type` overrides the Object/Variant shorthand")
        else:
            body = {"@type": variant, **body}
    result = ctx.client.call(f"{canonical}/set", {"create": {"n0": body}})
    failure = (result.get("notCreated") or {}).get("n0")
    if failure is not None:
        ctx.note(render_set_error(failure, ctx.err_ansi))
        raise CliError("create failed")
    created = (result.get("created") or {}).get("n0")
    if not isinstance(created, dict) or not isinstance(created.get("id"), str):
        raise CliError("unexpected server response: set response missing created[n0]")
    a = ctx.ansi
    ctx.write(f"{a.green}Created{a.reset} {display_name(canonical)} {a.cyan}{created['id']}{a.reset}\n")
    extras = {k: v for k, v in created.items() if k != "id"}
    if extras:
        ctx.write("\n")
        if "@type" in body and "@type" not in extras and schema.variants(canonical) is not None:
            extras = {"@type": body["@type"], **extras}
        # Generated secrets are shown this once, in clear.
        ctx.write(render_object(ctx, canonical, extras, reveal=True))


def update(ctx: Ctx, name: str, raw_id: str | None, fields: list[str], json_text, file, stdin: bool) -> None:
    forbid_slash_form(name)
    schema = ctx.schema
    canonical = schema.require(name)
    oid = object_id(schema, canonical, raw_id)
    patch = build_input(schema, schema.properties(canonical), fields or [], json_text, file, stdin, ctx.stdin,
                        UPDATE)
    if not patch:
        raise CliError("no fields to update")
    result = ctx.client.call(f"{canonical}/set", {"update": {oid: patch}})
    failure = (result.get("notUpdated") or {}).get(oid)
    if failure is not None:
        ctx.note(render_set_error(failure, ctx.err_ansi))
        raise CliError("update failed")
    updated = result.get("updated") or {}
    if oid not in updated:
        raise CliError(f"{display_name(canonical)}: server did not acknowledge update for id `{oid}` "
                       "(the id may not exist)")
    a = ctx.ansi
    ctx.write(f"{a.green}Updated{a.reset} {display_name(canonical)} {a.cyan}{oid}{a.reset}\n")
    extras = updated[oid]
    if isinstance(extras, dict) and extras:
        ctx.write("\n" + "".join(f"  {k}: {compact(v)}\n" for k, v in extras.items()))


def delete(ctx: Ctx, name: str, ids: str | None, stdin: bool) -> None:
    forbid_slash_form(name)
    schema = ctx.schema
    canonical = schema.require(name)
    if schema.is_singleton(canonical):
        raise CliError(f"{display_name(canonical)} is a singleton and cannot be deleted")
    if ids is not None and stdin:
        raise CliError("--ids and --stdin are mutually exclusive")
    if ids is not None:
        wanted = split_list(ids)
    elif stdin:
        wanted = parse_ids(ctx.stdin.read())
    else:
        raise CliError("either --ids or --stdin is required")
    if not wanted:
        raise CliError("no ids provided")
    client, a, plain = ctx.client, ctx.ansi, Ansi(False)
    deleted = failed = 0
    for start in range(0, len(wanted), client.max_set):
        chunk = wanted[start:start + client.max_set]
        result = client.call(f"{canonical}/set", {"destroy": chunk})
        destroyed = set(result.get("destroyed") or [])
        errors = result.get("notDestroyed") or {}
        for oid in chunk:
            if oid in destroyed:
                ctx.write(f"{a.green}{oid}{a.reset} deleted\n")
                deleted += 1
            elif oid in errors:
                block = render_set_error(errors[oid], plain).replace("\n", "\n  ")
                ctx.write(f"{a.red}{oid}{a.reset} failed: {block}\n")
                failed += 1
            else:
                ctx.write(f"{a.red}{oid}{a.reset} failed: no response from server\n")
                failed += 1
    ctx.write(f"{deleted} deleted, {failed} failed\n")
    if failed:
        raise CliError("one or more deletions failed")
