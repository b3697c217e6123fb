"""snapshot: the selected objects as an apply plan (cli.md §5.8).

One upsert per type (and per variant), parents first, then one update per singleton. Server ids
become deterministic client ids (`<type>-<id>`) and every reference becomes `#<type>-<id>`, so the
plan re-applies idempotently, on the same server or another.
"""
from __future__ import annotations

from dataclasses import dataclass

from .base import Ctx
from .errors import CliError
from .plan import collect_refs
from .render import compact
from .schema import Schema, display_name, is_secret, kind, ref_target
from .verbs import iterate_rows, split_list


@dataclass(frozen=True)
class Shard:
    canonical: str
    variant: str | None = None

    @property
    def label(self) -> str:
        name = display_name(self.canonical)
        return f"{name}/{self.variant}" if self.variant else name


def prefix_for(name: str) -> str:
    return display_name(name).split("/", 1)[0].lower()


def client_id(name: str, server_id: str) -> str:
    return f"{prefix_for(name)}-{server_id}"


def _split_view(schema: Schema, name: str) -> tuple[str, str | None]:
    entry = schema.objects.get(name) or {}
    if entry.get("type") == "view":
        parent = entry.get("objectName") or name.split("/", 1)[0]
        return parent, name.split("/", 1)[1] if "/" in name else None
    if "/" in name:
        base, variant = name.split("/", 1)
        return base, variant
    return name, None


class Walker:
    """The object types a schema's fields refer to, per top-level field."""

    def __init__(self, schema: Schema):
        self.schema = schema

    def field_refs(self, ftype, visited: set) -> set[str]:
        out: set[str] = set()
        k = kind(ftype)
        if k == "objectId":
            out.add(ftype.get("objectName"))
        elif k == "set":
            target = ref_target(ftype.get("class"))
            if target:
                out.add(target)
        elif k == "map":
            target = ref_target(ftype.get("keyClass"))
            if target:
                out.add(target)
            value = ftype.get("valueClass")
            if kind(value) == "object":
                out |= self.embedded_refs(value.get("objectName"), visited)
        elif k in ("object", "objectList"):
            out |= self.embedded_refs(ftype.get("objectName"), visited)
        return {_split_view(self.schema, name)[0] for name in out if name}

    def embedded_refs(self, name: str, visited: set) -> set[str]:
        if not name or name in visited:
            return set()
        visited.add(name)
        out: set[str] = set()
        for schema_name in self.schema.schema_names(name) if name in self.schema.schemas else []:
            for field in ((self.schema.fields.get(schema_name) or {}).get("properties") or {}).values():
                out |= self.field_refs(field.get("type"), visited)
        return out

    def refs_by_field(self, props: dict) -> dict[str, set[str]]:
        return {name: self.field_refs(field.get("type"), set()) for name, field in props.items()}


def _deferrable(field: dict) -> bool:
    ftype = field.get("type")
    return kind(ftype) != "objectId" or bool(ftype.get("nullable"))


def order_shards(schema: Schema, shards: list[Shard]) -> tuple[list[Shard], dict[Shard, list[str]]]:
    """Parents first; a cycle is broken by deferring (to a later update) the field that closes it."""
    walker = Walker(schema)
    selected = {s.canonical for s in shards}
    edges: dict[Shard, dict[str, set[str]]] = {}
    for shard in shards:
        props = schema.properties(shard.canonical, shard.variant)
        edges[shard] = {f: {t for t in targets if t in selected and t != shard.canonical}
                        for f, targets in walker.refs_by_field(props).items()}
    deferred: dict[Shard, list[str]] = {}
    while True:
        order, remaining = [], list(shards)
        while remaining:
            done = {s.canonical for s in order}
            ready = next((s for s in remaining
                          if all(t in done or all(x.canonical != t for x in remaining)
                                 for targets in edges[s].values() for t in targets)), None)
            if ready is None:
                break
            order.append(ready)
            remaining.remove(ready)
        if not remaining:
            return order, deferred
        cyclic = {s.canonical for s in remaining}
        choice = None
        for shard in sorted(remaining, key=lambda s: s.label):
            props = schema.properties(shard.canonical, shard.variant)
            for fname in sorted(edges[shard]):
                if edges[shard][fname] & cyclic and _deferrable(props.get(fname) or {}):
                    choice = (shard, fname)
                    break
            if choice:
                break
        if choice is None:
            raise CliError("cannot snapshot: cyclic dependency between the selected types ("
                           + ", ".join(s.label for s in remaining) + ")")
        shard, fname = choice
        edges[shard][fname] = set()
        deferred.setdefault(shard, []).append(fname)


class Transformer:
    def __init__(self, schema: Schema, allow: set[str], include_secrets: bool):
        self.schema, self.allow, self.include_secrets = schema, allow, include_secrets

    def obj(self, props: dict, value: dict) -> dict:
        out = {}
        if "@type" in value:
            out["@type"] = value["@type"]
        for name, field in props.items():
            if name == "@type" or name not in value or field.get("update") == "serverSet":
                continue
            if field.get("exported") is False:
                # What the server cannot give back (credentials: their secrets read as ****).
                continue
            if is_secret(field.get("type")) and not self.include_secrets:
                continue
            keep, v = self.value(field.get("type"), value[name])
            if keep:
                out[name] = v
        return out

    def _ref(self, target: str, server_id):
        return f"#{client_id(target, server_id)}" if isinstance(server_id, str) else server_id

    def value(self, ftype, value) -> tuple[bool, object]:
        if value is None:
            return True, None
        k = kind(ftype)
        if k == "objectId":
            target = ftype.get("objectName")
            if _split_view(self.schema, target)[0] in self.allow:
                return False, None
            return True, self._ref(target, value)
        if k == "set":
            target = ref_target(ftype.get("class"))
            if target and isinstance(value, dict):
                if _split_view(self.schema, target)[0] in self.allow:
                    return False, None
                return True, {self._ref(target, key): v for key, v in value.items()}
            return True, value
        if k == "map" and isinstance(value, dict):
            target = ref_target(ftype.get("keyClass"))
            if target and _split_view(self.schema, target)[0] in self.allow:
                return False, None
            vclass = ftype.get("valueClass")
            out = {}
            for key, v in value.items():
                if kind(vclass) == "object":
                    keep, v = self.embedded(vclass.get("objectName"), v)
                    if not keep:
                        continue
                out[self._ref(target, key) if target else key] = v
            return True, out
        if k == "object":
            return self.embedded(ftype.get("objectName"), value)
        if k == "objectList" and isinstance(value, dict):
            out = {}
            for key, item in value.items():
                keep, item = self.embedded(ftype.get("objectName"), item)
                if keep:
                    out[key] = item
            return True, out
        return True, value

    def embedded(self, name: str, value) -> tuple[bool, object]:
        if not isinstance(value, dict) or name not in self.schema.schemas:
            # An embedded type the schema does not describe travels as it is.
            return True, value
        variants = self.schema.variants(name)
        if variants is not None:
            variant = next((v for v in variants if v.get("name") == value.get("@type")), None)
            if variant is None or not variant.get("schemaName"):
                return False, None  # marker-only variants carry nothing to restore
        props = self.schema.properties_for(name, value)
        return True, self.obj(props or {}, value)


def _self_order(objs: list[dict], bodies: dict[str, dict], prefix: str) -> list[dict]:
    """Within one type, objects referenced by others of the same type come first (stable)."""
    ids = {o["id"] for o in objs}
    deps = {}
    for o in objs:
        refs: set = set()
        collect_refs(bodies[o["id"]], refs)
        deps[o["id"]] = {r[len(prefix) + 1:] for r in refs if r.startswith(prefix + "-")} & ids - {o["id"]}
    out, placed, remaining = [], set(), list(objs)
    while remaining:
        ready = next((o for o in remaining if deps[o["id"]] <= placed), remaining[0])
        out.append(ready)
        placed.add(ready["id"])
        remaining.remove(ready)
    return out


def snapshot(ctx: Ctx, names: list[str], output: str | None, include_secrets: bool, allow_unresolved: str | None,
             quiet: bool) -> None:
    schema = ctx.schema
    selection: list[str] = []
    for raw in names:
        if "/" in raw:
            raise CliError(f"snapshot cannot select variants individually ({raw}); use the bare object name")
        canonical = schema.require(raw)
        if canonical not in selection:
            selection.append(canonical)
    allow = {schema.require(raw) for raw in split_list(allow_unresolved) or []}
    walker = Walker(schema)
    for canonical in selection:
        props = schema.properties(canonical)
        for fname, targets in walker.refs_by_field(props).items():
            for target in sorted(targets):
                if target != canonical and target not in selection and target not in allow:
                    name, other = display_name(canonical), display_name(target)
                    raise CliError(f"{name} references {other} but {other} is not in the snapshot selection; "
                                   f"add it or use --allow-unresolved {other}")
    shards, singletons = [], []
    for canonical in selection:
        if schema.is_singleton(canonical):
            singletons.append(canonical)
            continue
        variants = schema.variants(canonical)
        shards.extend([Shard(canonical, v.get("name")) for v in variants] if variants is not None
                      else [Shard(canonical)])
    shards, deferred = order_shards(schema, shards)

    def note(text):
        if not quiet:
            ctx.note(text)

    note(f"snapshot: {len(shards)} upserts, {len(singletons)} singletons")
    if not output:
        _emit(ctx, schema, ctx.out, shards, deferred, singletons, Transformer(schema, allow, include_secrets), note)
    else:
        # A directory, a full disk, a file we may not write: an error line, not a traceback.
        try:
            with open(output, "w", encoding="utf-8") as sink:
                _emit(ctx, schema, sink, shards, deferred, singletons, Transformer(schema, allow, include_secrets),
                      note)
        except OSError as exc:
            raise CliError(f"cannot write {output}: {exc.strerror or exc}") from None
    note("snapshot complete")


def _emit(ctx, schema, sink, shards, deferred, singletons, transformer, note):
    fetched: dict[str, list[dict]] = {}
    later: list[str] = []
    for shard in shards:
        if shard.canonical not in fetched:
            note(f"  fetching {display_name(shard.canonical)}...")
            rows = [r for page in iterate_rows(ctx.client, shard.canonical, {}, None) for r in page]
            fetched[shard.canonical] = rows
            note(f"    {len(rows)} fetched")
        objs = [o for o in fetched[shard.canonical] if isinstance(o.get("id"), str)
                and (shard.variant is None or o.get("@type") == shard.variant)]
        props = schema.properties(shard.canonical, shard.variant)
        held_back = deferred.get(shard, [])
        bodies = {}
        for o in objs:
            body = transformer.obj(props, o)
            if shard.variant is not None:
                body = {"@type": o.get("@type"), **{k: v for k, v in body.items() if k != "@type"}}
            for fname in held_back:
                if body.get(fname) not in (None, {}, []):
                    later.append(compact({"@type": "update", "object": display_name(shard.canonical),
                                          "id": "#" + client_id(shard.canonical, o["id"]),
                                          "value": {fname: body[fname]}}))
                body.pop(fname, None)
            bodies[o["id"]] = body
        note(f"    {shard.label}: {len(objs)}")
        if not objs:
            continue
        ordered = _self_order(objs, bodies, prefix_for(shard.canonical))
        record = {"@type": "upsert", "object": display_name(shard.canonical)}
        label = schema.label_property(shard.canonical)
        if label:
            record["matchOn"] = [label]
        else:
            ctx.warn(f"{shard.label} has no label property; its upsert has no matchOn and will match by value")
        record["value"] = {client_id(shard.canonical, o["id"]): bodies[o["id"]] for o in ordered}
        sink.write(compact(record) + "\n")
        sink.flush()
    for line in later:
        sink.write(line + "\n")
    for canonical in singletons:
        note(f"  fetching singleton {display_name(canonical)}...")
        result = ctx.client.call(f"{canonical}/get", {"ids": ["singleton"], "properties": None})
        items = result.get("list") or []
        if not items or not isinstance(items[0], dict):
            raise CliError(f"singleton {display_name(canonical)} returned no value")
        body = transformer.obj(schema.properties(canonical), items[0])
        sink.write(compact({"@type": "update", "object": display_name(canonical), "value": body}) + "\n")
        sink.flush()
