"""apply: NDJSON plans of upsert, reconcile, create, update and destroy operations (cli.md §5.7, §6).

A plan runs in three passes: every destroy in reverse plan order; then upserts, reconciles,
creates and updates in plan order; then the deletions that reconciles collected, in reverse plan
order. Client ids (`#name`) become server ids as objects are created or matched; the known pairs
travel in each request's createdIds, so the server resolves the references.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .base import Ctx
from .errors import CliError, loads, unknown_field
from .inputs import read_text_file
from .render import Ansi, compact, render_set_error
from .schema import Schema, display_name, is_secret, kind, ref_target
from .transport import check_response
from .verbs import iterate_rows

KINDS = ("upsert", "reconcile", "create", "update", "destroy")
KEYS = {
    "upsert": {"@type", "object", "value", "matchOn", "scope"},
    "reconcile": {"@type", "object", "value", "matchOn", "scope"},
    "create": {"@type", "object", "value"},
    "update": {"@type", "object", "id", "value"},
    "destroy": {"@type", "object", "value"},
}
PAST = {"destroy": "destroyed", "update": "updated", "create": "created", "upsert": "upserted",
        "reconcile": "reconciled"}
SCALARS = ("string", "number", "boolean", "enum", "utcDateTime")


@dataclass
class Op:
    index: int
    kind: str
    canonical: str
    value: object = None
    id: str | None = None
    match_on: object = None  # list of property names, "*", or None
    scope: dict | None = None
    bodies: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return display_name(self.canonical)

    @property
    def number(self) -> int:
        return self.index + 1


@dataclass
class Plan:
    ops: list[Op]

    def count(self, kind_: str) -> int:
        return sum(1 for op in self.ops if op.kind == kind_)

    def objects(self, kind_: str) -> int:
        return sum(len(op.bodies) for op in self.ops if op.kind == kind_)


# --- parsing and plan-time validation ---------------------------------------------------------
def parse_ndjson(text: str) -> list[dict]:
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            record = loads(line)
        except ValueError as exc:
            raise CliError(f"invalid plan NDJSON on line {lineno}: {exc}") from None

        def bad(message):
            return CliError(f"invalid plan NDJSON on line {lineno}: {message}")

        if not isinstance(record, dict):
            raise bad("expected a JSON object with `@type` and `object`")
        op_kind = record.get("@type")
        if op_kind is None:
            raise bad("missing field `@type`")
        if op_kind not in KINDS:
            raise bad(f"unknown variant `{op_kind}`, expected one of " + ", ".join(f"`{k}`" for k in KINDS))
        for key in record:
            if key not in KEYS[op_kind]:
                raise bad(f"unknown field `{key}`")
        if not isinstance(record.get("object"), str):
            raise bad("missing field `object`" if "object" not in record else "`object` must be a string")
        out.append(record)
    return out


def _bodies(op: Op, value, allow_empty: bool) -> dict:
    if not isinstance(value, dict):
        raise CliError(f"{op.kind} operation #{op.number} needs a `value` map of client id to object")
    if not value and not allow_empty:
        raise CliError(f"{op.kind} operation #{op.number} has an empty `value` map (no objects to {op.kind})")
    out: dict = {}
    for key, body in value.items():
        cid = key[1:] if key.startswith("#") else key
        if not cid:
            raise CliError(f"{op.kind} operation #{op.number} has an empty client id")
        if cid in out:
            raise CliError(f"{op.kind} operation #{op.number} has duplicate id `{cid}`")
        if not isinstance(body, dict):
            raise CliError(f"{op.kind} operation #{op.number}: the value of `{cid}` must be a JSON object")
        out[cid] = dict(body)
    return out


def resolve_plan(schema: Schema, records: list[dict]) -> Plan:
    ops: list[Op] = []
    defined: set[str] = set()  # client ids of the ops seen so far
    for index, record in enumerate(records):
        forbidden = record["object"]
        if "/" in forbidden:
            raise CliError(f"operation #{index + 1}: the Object/Variant syntax is only valid for `create`")
        canonical = schema.require(forbidden)
        op = Op(index=index, kind=record["@type"], canonical=canonical, value=record.get("value"))
        singleton = schema.is_singleton(canonical)
        if op.kind in ("destroy", "upsert", "reconcile") and singleton:
            raise CliError(f"cannot {op.kind} singleton `{op.name}` (operation #{op.number})")
        if op.kind == "create":
            op.bodies = _bodies(op, op.value, allow_empty=False)
        elif op.kind == "update":
            raw_id = record.get("id")
            if singleton:
                if raw_id not in (None, "singleton"):
                    raise CliError(f"singleton id must be 'singleton' (operation #{op.number})")
                op.id = "singleton"
            else:
                if not isinstance(raw_id, str) or not raw_id:
                    raise CliError(f"{op.name} requires an id (operation #{op.number})")
                if raw_id.startswith("#") and raw_id[1:] not in defined:
                    raise CliError(f"{op.name}: update references unknown created id `{raw_id}` "
                                   "(no matching create operation in this plan)")
                op.id = raw_id
            if not isinstance(op.value, dict):
                raise CliError(f"update operation #{op.number}: `value` must be a JSON object (a PatchObject)")
        elif op.kind == "destroy":
            if op.value is not None and not isinstance(op.value, dict):
                raise CliError(f"destroy operation #{op.number}: `value` must be a JSON filter object")
            op.value = op.value or None
        else:
            _resolve_upsert(schema, op, record, defined)
        defined.update(op.bodies)
        ops.append(op)
    return Plan(ops)


def _resolve_upsert(schema: Schema, op: Op, record: dict, defined: set) -> None:
    props = schema.properties(op.canonical)
    op.bodies = _bodies(op, op.value, allow_empty=op.kind == "reconcile")
    match_on = record.get("matchOn")
    if match_on is not None:
        if match_on == "*":
            op.match_on = "*"
        elif (isinstance(match_on, list) and match_on and all(isinstance(m, str) and m for m in match_on)):
            op.match_on = [_prop_name(props, m) for m in match_on]
        else:
            raise CliError(f'`matchOn` must be a non-empty list of property names or "*" (operation #{op.number})')
    if op.kind == "reconcile" and op.match_on is None and schema.label_property(op.canonical) is None:
        raise CliError(f"reconcile operation #{op.number} on {op.name} needs a match key: give `matchOn`, "
                       'or `"matchOn":"*"` to match by value')
    scope = record.get("scope")
    if scope is not None:
        if not isinstance(scope, dict):
            raise CliError(f"`scope` must be a flat object of property values (operation #{op.number})")
        op.scope = {}
        for key, value in scope.items():
            name = _prop_name(props, key)
            if value is None:
                raise CliError(f"scope value for `{name}` must not be null (operation #{op.number})")
            if isinstance(value, (dict, list)):
                raise CliError(f"scope value for `{name}` must be a plain value (operation #{op.number})")
            if name != "@type" and props[name].get("update") == "serverSet":
                raise CliError(f"scope on server-set property `{name}` is not allowed (operation #{op.number})")
            if name == "@type" and value not in _variant_names(schema, op.canonical, props):
                raise CliError(f"unknown variant '{value}' for object {op.name} (operation #{op.number})")
            if isinstance(value, str) and value.startswith("#") and value[1:] not in defined:
                raise CliError(f"scope of operation #{op.number} references `{value}`, which no earlier "
                               "operation defines")
            op.scope[name] = value
        for cid, body in op.bodies.items():
            for name, value in op.scope.items():
                if name not in body:
                    body[name] = value
                elif body[name] != value:
                    raise CliError(f"{op.kind} operation #{op.number}: `{cid}` contradicts the scope on `{name}`")
    for cid, body in op.bodies.items():
        for name in match_keys(schema, op, body) or []:
            value = body.get(name)
            ftype = (props.get(name) or {}).get("type")
            if kind(ftype) == "objectId" and isinstance(value, str) and value.startswith("#") \
                    and value[1:] not in defined:
                raise CliError(f"{op.kind} operation #{op.number}: match key `{name}` of `{cid}` references "
                               f"unknown id `{value}` (define it in an earlier operation)")


def _prop_name(props: dict, raw: str) -> str:
    if raw.lower() == "@type":
        return "@type"
    found = Schema.find_field(props, raw)
    if found is None:
        raise unknown_field(raw)
    return found[0]


def _variant_names(schema: Schema, canonical: str, props: dict) -> list:
    variants = schema.variants(canonical)
    if variants is not None:
        return [v.get("name") for v in variants]
    ftype = (props.get("@type") or {}).get("type")
    if kind(ftype) == "enum":
        return [v.get("name") for v in schema.enums.get(ftype.get("enumName")) or []]
    return []


def match_keys(schema: Schema, op: Op, body: dict) -> list[str] | None:
    """The properties a body is matched on; None means by value (every scalar field)."""
    if isinstance(op.match_on, list):
        return op.match_on
    if op.match_on == "*":
        return None
    label = schema.label_property(op.canonical)
    return [label] if label else None


# --- running ----------------------------------------------------------------------------------
def collect_refs(value, out: set) -> None:
    if isinstance(value, str):
        if value.startswith("#") and len(value) > 1:
            out.add(value[1:])
    elif isinstance(value, list):
        for v in value:
            collect_refs(v, out)
    elif isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and k.startswith("#") and len(k) > 1:
                out.add(k[1:])
            collect_refs(v, out)


class Reporter:
    def __init__(self, ctx: Ctx, quiet: bool, as_json: bool, progress: bool):
        self.ctx, self.quiet, self.json, self.progress = ctx, quiet, as_json, progress
        self.a = ctx.err_ansi

    def header(self, plan: Plan) -> None:
        if self.quiet:
            return
        objects = plan.objects("create") + plan.objects("upsert") + plan.objects("reconcile")
        self.ctx.note(f"{self.a.bold}Plan:{self.a.reset} {plan.count('destroy')} destroy, {plan.count('update')} "
                      f"update, {plan.count('create')} create, {plan.count('upsert')} upsert, "
                      f"{plan.count('reconcile')} reconcile ({objects} objects)")

    def batch(self, text: str) -> None:
        if self.progress and not self.quiet:
            self.ctx.note(f"{self.a.dim}·{self.a.reset} {text}")

    def ok(self, op: Op, count: int) -> None:
        if self.json:
            self.ctx.write(compact({"op": op.kind, "object": op.name, "index": op.index, "count": count,
                                    "status": "ok"}) + "\n")
        elif not self.quiet:
            self.ctx.note(f"{self.a.green}✓{self.a.reset} {PAST[op.kind]} {op.name} ({count})")

    def cleanup(self, op: Op, count: int) -> None:
        if self.json:
            self.ctx.write(compact({"op": op.kind, "stage": "cleanup", "object": op.name, "index": op.index,
                                    "destroyed": count, "status": "ok"}) + "\n")
        elif not self.quiet and count:
            self.ctx.note(f"{self.a.green}✓{self.a.reset} reconcile removed {op.name} ({count})")

    def failed(self, op: Op, error: CliError, stage: str | None = None) -> None:
        if self.json:
            record = {"op": op.kind, **({"stage": stage} if stage else {}), "object": op.name, "index": op.index,
                      "status": "error", "error": str(error)}
            self.ctx.write(compact(record) + "\n")
            return
        what = f"{op.kind} cleanup" if stage else op.kind
        self.ctx.note(f"{self.a.red}✗{self.a.reset} {what} {op.name}: {error}")

    def summary(self, plan: Plan, done: dict) -> None:
        if self.json:
            self.ctx.write(compact({"op": "summary", "plan": {
                "destroys": plan.count("destroy"), "updates": plan.count("update"), "creates": plan.count("create"),
                "create_objects": plan.objects("create"), "upserts": plan.count("upsert"),
                "upsert_objects": plan.objects("upsert"), "reconciles": plan.count("reconcile"),
                "reconcile_objects": plan.objects("reconcile")}, "done": done}) + "\n")
            return
        self.ctx.note(f"{self.a.bold}Done:{self.a.reset} {done['destroyed']} destroyed, {done['updated']} updated, "
                      f"{done['created']} created ({done['failed']} failed)")


class Runner:
    def __init__(self, ctx: Ctx, plan: Plan, reporter: Reporter):
        self.ctx, self.plan, self.reporter = ctx, plan, reporter
        self.client = ctx.client
        self.schema = ctx.schema
        self.created_ids: dict[str, str] = {}
        self.touched: set[tuple[str, str]] = set()
        self.destroyed: set[tuple[str, str]] = set()
        self.pending: dict[int, list[str]] = {}
        self.done = {"destroyed": 0, "updated": 0, "created": 0, "failed": 0}

    # --- helpers ------------------------------------------------------------------------------
    def annotate(self, server_id: str) -> str | None:
        for cid, sid in self.created_ids.items():
            if sid == server_id:
                return cid
        return None

    def block(self, err) -> str:
        return render_set_error(err, Ansi(False), self.annotate).replace("\n", " | ")

    def send_set(self, canonical: str, args: dict, refs_from) -> dict:
        refs: set = set()
        collect_refs(refs_from, refs)
        in_request = set((args.get("create") or {}).keys())
        known = {r: self.created_ids[r] for r in sorted(refs) if r in self.created_ids and r not in in_request}
        method = f"{canonical}/set"
        responses, created = self.client.call_many([[method, args, "c0"]], known or None)
        if len(responses) != 1:
            raise CliError(f"unexpected server response: expected 1 method response, got {len(responses)}")
        result = check_response(responses[0], method)
        if isinstance(created, dict):
            self.created_ids.update(created)
        return result

    def query_ids(self, canonical: str, filt) -> list[str]:
        limit, out, anchor = self.client.max_get, [], None
        while True:
            args = {"filter": filt} if filt is not None else {}
            args["limit"] = limit
            if anchor is not None:
                args.update(anchor=anchor, anchorOffset=1)
            ids = [i for i in self.client.call(f"{canonical}/query", args).get("ids") or [] if isinstance(i, str)]
            out.extend(ids)
            if len(ids) < limit or not ids:
                return out
            anchor = ids[-1]

    def fetch_all(self, canonical: str) -> list[dict]:
        out: list[dict] = []
        for rows in iterate_rows(self.client, canonical, {}, None):
            out.extend(rows)
        return out

    def destroy_ids(self, op: Op, ids: list[str], label: str = "destroying") -> int:
        size = self.client.max_set
        batches = (len(ids) + size - 1) // size
        count = 0
        for n, start in enumerate(range(0, len(ids), size), 1):
            chunk = ids[start:start + size]
            self.reporter.batch(f"{label} {op.name} batch {n}/{batches} ({len(chunk)} ids)")
            result = self.send_set(op.canonical, {"destroy": chunk}, None)
            for oid in result.get("destroyed") or []:
                self.destroyed.add((op.canonical, oid))
                count += 1
            failures = result.get("notDestroyed") or {}
            if failures:
                bad_id, err = next(iter(failures.items()))
                self.done["destroyed"] += count
                raise CliError(f"{op.name}: destroy failed for id {bad_id}: {self.block(err)}")
        self.done["destroyed"] += count
        return count

    def create_bodies(self, op: Op, bodies: dict) -> int:
        items = list(bodies.items())
        size = self.client.max_set
        batches = (len(items) + size - 1) // size
        count = 0
        for n, start in enumerate(range(0, len(items), size), 1):
            chunk = dict(items[start:start + size])
            self.reporter.batch(f"creating {op.name} batch {n}/{batches} ({len(chunk)} objects)")
            result = self.send_set(op.canonical, {"create": chunk}, chunk)
            for cid, created in (result.get("created") or {}).items():
                if isinstance(created, dict) and isinstance(created.get("id"), str):
                    self.created_ids[cid] = created["id"]
                    self.touched.add((op.canonical, created["id"]))
                    count += 1
            failures = result.get("notCreated") or {}
            if failures:
                bad, err = next(iter(failures.items()))
                self.done["created"] += count
                raise CliError(f"{op.name}: create failed for `{bad}` (operation #{op.number}): {self.block(err)}")
        self.done["created"] += count
        return count

    def update_ids(self, op: Op, patches: dict) -> int:
        items = list(patches.items())
        size = self.client.max_set
        batches = (len(items) + size - 1) // size
        count = 0
        for n, start in enumerate(range(0, len(items), size), 1):
            chunk = dict(items[start:start + size])
            if batches > 1:
                self.reporter.batch(f"updating {op.name} batch {n}/{batches} ({len(chunk)} objects)")
            result = self.send_set(op.canonical, {"update": chunk}, chunk)
            failures = result.get("notUpdated") or {}
            if failures:
                bad, err = next(iter(failures.items()))
                self.done["updated"] += count
                raise CliError(f"{op.name}: update failed for id {bad}: {self.block(err)}")
            updated = result.get("updated") or {}
            for oid in chunk:
                if oid not in updated:
                    self.done["updated"] += count
                    raise CliError(f"{op.name}: server returned no `updated` entry for id `{oid}` "
                                   "(the id may not exist)")
                self.touched.add((op.canonical, oid))
                count += 1
        self.done["updated"] += count
        return count

    # --- the operations -----------------------------------------------------------------------
    def run_destroy(self, op: Op) -> int:
        return self.destroy_ids(op, self.query_ids(op.canonical, op.value))

    def run_create(self, op: Op) -> int:
        return self.create_bodies(op, op.bodies)

    def run_update(self, op: Op) -> int:
        oid = op.id
        if oid.startswith("#"):
            if oid[1:] not in self.created_ids:
                raise CliError(f"{op.name}: update references unknown created id `{oid}` "
                               "(no matching create operation in this plan)")
            oid = self.created_ids[oid[1:]]
        return self.update_ids(op, {oid: op.value})

    def _resolve(self, ftype, value):
        """`#ref` values of reference-typed properties, as server ids (for matching)."""
        k = kind(ftype)
        if k == "objectId" and isinstance(value, str) and value.startswith("#"):
            if value[1:] not in self.created_ids:
                raise CliError(f"unknown plan reference `{value}`")
            return self.created_ids[value[1:]]
        if k == "set" and ref_target(ftype.get("class")) and isinstance(value, dict):
            return {self._resolve({"type": "objectId"}, key) if key.startswith("#") else key: v
                    for key, v in value.items()}
        return value

    def run_upsert(self, op: Op) -> int:
        schema = self.schema
        props = schema.properties(op.canonical)
        existing = self.fetch_all(op.canonical)
        if op.scope:
            scope = {k: self._resolve((props.get(k) or {}).get("type"), v) for k, v in op.scope.items()}
            existing = [o for o in existing if all(o.get(k) == v for k, v in scope.items())]
        creates, patches, matched = {}, {}, set()
        warned = False
        for cid, body in op.bodies.items():
            keys = match_keys(schema, op, body)
            variant_props = schema.properties(op.canonical, body.get("@type")) if "@type" in body else props
            if keys is None:
                if op.kind == "upsert" and op.match_on is None and not warned:
                    self.ctx.warn(f"upsert {op.name} (operation #{op.number}) has no match key; matching by value, "
                                  "which does not converge")
                    warned = True
                keys = [n for n, f in variant_props.items()
                        if kind(f.get("type")) in SCALARS and not is_secret(f.get("type"))
                        and f.get("update") != "serverSet"]
            else:
                missing = [k for k in keys if k not in body]
                if missing:
                    raise CliError(f"{op.name}: `{cid}` lacks the match key `{missing[0]}` (operation #{op.number})")
            wanted = {k: self._resolve((props.get(k) or {}).get("type"), body.get(k)) for k in keys}
            candidates = [o for o in existing
                          if ("@type" not in body or "@type" not in o or o.get("@type") == body["@type"])
                          and all(o.get(k) == v for k, v in wanted.items())]
            if len(candidates) > 1:
                raise CliError(f"{op.name}: `{cid}` matches {len(candidates)} existing objects on "
                               f"{', '.join(keys) or 'value'} (ambiguous) (operation #{op.number})")
            if not candidates:
                creates[cid] = body
                continue
            oid = candidates[0]["id"]
            self.created_ids[cid] = oid
            matched.add(oid)
            patch = {k: v for k, v in body.items()
                     if k != "id" and (k not in props or props[k].get("update") not in ("serverSet", "immutable"))
                     and not (k == "@type" and schema.variants(op.canonical) is not None)}
            patches[oid] = patch
        count = 0
        if creates:
            count += self.create_bodies(op, creates)
        if patches:
            count += self.update_ids(op, patches)
        if op.kind == "reconcile":
            self.pending[op.index] = [o["id"] for o in existing if o["id"] not in matched]
        return count

    def cleanup(self, op: Op) -> int:
        ids = [i for i in self.pending.get(op.index, [])
               if (op.canonical, i) not in self.touched and (op.canonical, i) not in self.destroyed]
        return self.destroy_ids(op, ids, "removing") if ids else 0

    def execute(self, continue_on_error: bool) -> None:
        ops = self.plan.ops
        steps = [(op, self.run_destroy, None) for op in reversed(ops) if op.kind == "destroy"]
        runners = {"create": self.run_create, "update": self.run_update, "upsert": self.run_upsert,
                   "reconcile": self.run_upsert}
        steps += [(op, runners[op.kind], None) for op in ops if op.kind != "destroy"]
        steps += [(op, self.cleanup, "cleanup") for op in reversed(ops) if op.kind == "reconcile"]
        for op, fn, stage in steps:
            if stage == "cleanup" and op.index not in self.pending:
                continue  # the reconcile itself failed
            try:
                count = fn(op)
            except CliError as exc:
                self.done["failed"] += 1
                self.reporter.failed(op, exc, stage)
                if not continue_on_error:
                    self.reporter.summary(self.plan, self.done)
                    raise
                continue
            if stage:
                self.reporter.cleanup(op, count)
            else:
                self.reporter.ok(op, len(op.bodies) if op.kind in ("upsert", "reconcile") else count)
        self.reporter.summary(self.plan, self.done)
        if self.done["failed"]:
            raise CliError(f"apply completed with {self.done['failed']} failed operation(s)")


def apply(ctx: Ctx, file: str | None, stdin: bool, dry_run: bool, continue_on_error: bool, quiet: bool,
          as_json: bool, progress: bool) -> None:
    if file is not None and stdin:
        raise CliError("--file and --stdin are mutually exclusive")
    if file is not None:
        text = read_text_file(file)
    elif stdin:
        text = ctx.stdin.read()
    else:
        raise CliError("no plan provided; pass --file <path> or --stdin")
    records = parse_ndjson(text)
    plan = resolve_plan(ctx.schema, records)
    reporter = Reporter(ctx, quiet, as_json, progress)
    reporter.header(plan)
    if dry_run:
        if not quiet:
            ctx.note("(dry run: no changes will be made)")
        return
    Runner(ctx, plan, reporter).execute(continue_on_error)
