"""x:T/get, /set, /query and /changes for every declared management object.

Nothing here names an object type: the declaration says what the properties are, how they
encode, which are server-set, and which permission each operation needs. State changes go
through registry.services, like the admin's and manage.py's.
"""
from __future__ import annotations

import contextlib
import copy
import json
import re

from django.db import transaction
from django.db.models import Q

from registry import context, ids, memo
from registry import services as registry
from registry.declaration import ObjectType
from registry.declaration import for_model as decl_for_model
from registry.errors import InvalidPatch, InvalidProperties, NotFound, SetError, SingletonError
from registry.models import ChangeLog

from .engine import Context, MethodError, check_set_size, invalid_arguments, set_arguments

_OPS = {"Create", "Update", "Destroy"}
FILTER_LIMITS = {"maxFilterConditions": 100, "maxFilterDepth": 16}
MAX_SAFE_INT = 2**53 - 1  # the largest JMAP Int (RFC 8620 §1.3)


class WillDestroy(SetError):
    type = "willDestroy"


@contextlib.contextmanager
def _change(moved: dict):
    """One object's change, in a savepoint: the state moves it made are forgotten with it."""
    kept = {name: set(states) for name, states in moved.items()}
    try:
        with transaction.atomic():
            yield
    except SetError:
        moved.clear()
        moved.update(kept)
        raise


def _state(decl) -> str:
    """The type's state as this request knows it (read at its edge, or again once it moved)."""
    return str(context.states(decl.name)[decl.name])


def _as_json(value) -> str:
    return json.dumps(value, sort_keys=True)


def pointer_parts(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")]


def apply_pointer(doc: dict, path: str, value) -> None:
    """Apply one PatchObject entry (RFC 8620 §5.3): set, or with null remove, the value at path."""
    parts = pointer_parts(path)
    target = doc
    for part in parts[:-1]:
        target = target.get(part) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            raise InvalidPatch("Invalid JSON pointer path.", properties=[path])
    if value is None and len(parts) > 1:
        target.pop(parts[-1], None)
    else:
        target[parts[-1]] = value


def _string_list(args, name, allow_null=True):
    value = args.get(name)
    if value is None:
        if not allow_null:
            raise invalid_arguments(f'"{name}" is required.')
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid_arguments(f'"{name}" must be an array of strings.')
    return value


class RegistryMethods:
    """The four methods of one declaration; subclass to specialise one object type."""

    def __init__(self, decl: ObjectType):
        self.decl = decl
        # A singleton's document shows the ids it refers to: it is kept under its own state and
        # those of the types it refers to.
        related = {ref.name for p in decl.props if p.is_fk or p.is_m2m
                   if (ref := decl_for_model(p.field.related_model)) is not None}
        self._doc_states = (decl.name, *sorted(related - {decl.name}))
        if decl.singleton:
            context.needs(*self._doc_states)

    # --- overridable hooks --------------------------------------------------------------
    def queryset(self, ctx: Context):
        return self.decl.model.objects.all()

    def prefetch(self, qs):
        """What encoding the objects of `qs` reads besides their row, fetched in bulk."""
        related = [p.attname for p in self.decl.props if p.is_m2m]
        return qs.prefetch_related(*related) if related else qs

    def encode(self, ctx: Context, obj) -> dict:
        return self.decl.to_json(obj)

    def singleton_doc(self, ctx: Context) -> dict:
        """The singleton's document, encoded once per change (a /get is then one dict lookup).

        Shared by the requests of this worker: read-only.
        """
        states = context.states(*self._doc_states)
        token = tuple(states[name] for name in self._doc_states)
        return memo.get(("jmap-get", self.decl.name), token, lambda: self.encode(ctx, self.decl.model.load()))

    def public_props(self) -> list[str]:
        return ["id", *(p.name for p in self.decl.json_props)]

    def before_create(self, ctx: Context) -> None:
        """Refuse a create (raise a SetError) before any work is spent on it."""

    def do_create(self, ctx: Context, values: dict, body: dict):
        return registry.create(self.decl, values, ctx.principal)

    def do_update(self, ctx: Context, obj, values: dict, patch: dict):
        # obj was locked and read by find(lock=True) in this transaction.
        return registry.update(self.decl, obj.pk, values, ctx.principal, instance=obj)

    def do_destroy(self, ctx: Context, obj):
        registry.destroy(self.decl, obj.pk, ctx.principal)

    def created_extra(self, ctx: Context, obj, body: dict) -> dict:
        """Server-set values returned with a created object (RFC 8620 §5.3)."""
        full = self.encode(ctx, obj)
        return {p.name: full[p.name] for p in self.decl.json_props if p.server_set and p.name in full}

    # --- lookups ------------------------------------------------------------------------
    def visible(self, ctx: Context):
        """The objects the caller may see: another tenant's are not there for it."""
        return registry.scope(self.decl, ctx.principal, self.queryset(ctx))

    def require_reach(self, ctx: Context, op: str) -> None:
        error = registry.reach_error(self.decl, ctx.principal, op)
        if error is not None:
            raise MethodError("forbidden", error.description)

    def find(self, ctx: Context, object_id: str, *, lock: bool = False):
        """The object the caller may see under this id, or None.

        With lock=True (inside a transaction) the row is locked first and then read, so that
        what a patch is applied to is the row as it is now, not as another writer left it
        before committing: a patch computed from a stale copy would write the stale values of
        the properties it did not name back over the other writer's changes.
        """
        if self.decl.singleton:
            if object_id != ids.SINGLETON:
                return None
            lookup = {"pk": self.decl.model.SINGLETON_PK}
        else:
            pk = ids.decode(object_id)
            if pk is None:
                return None
            lookup = {self.decl.id_field: pk}
        if lock:
            # values_list: the lock covers this table's row only, not the rows the handler's
            # queryset joins (PostgreSQL refuses FOR UPDATE on the nullable side of a join).
            list(self.visible(ctx).filter(**lookup).select_for_update(of=("self",)).values_list("pk", flat=True))
        obj = self.visible(ctx).filter(**lookup).first()
        if obj is None and self.decl.singleton:
            # A singleton's row is made with its defaults on first use.
            self.decl.model.load()
            obj = self.visible(ctx).filter(**lookup).first()
        return obj

    def find_many(self, ctx: Context, object_ids) -> dict:
        """Object id -> object for those of `object_ids` that exist, in one query.

        A /get or /set of the largest advertised size must not cost a query per id (500 unknown
        ids took seconds per call). Ids that do not decode cost nothing.
        """
        if self.decl.singleton:
            return {oid: self.find(ctx, oid) for oid in object_ids if oid == ids.SINGLETON}
        by_pk: dict[int, list[str]] = {}
        for object_id in object_ids:
            pk = ids.decode(object_id)
            if pk is not None:
                by_pk.setdefault(pk, []).append(object_id)
        found = {}
        if by_pk:
            qs = self.prefetch(self.visible(ctx).filter(**{f"{self.decl.id_field}__in": list(by_pk)}))
            for obj in qs:
                for object_id in by_pk.get(getattr(obj, self.decl.id_field), ()):
                    found[object_id] = obj
        return found

    # --- /get ---------------------------------------------------------------------------
    def get(self, ctx: Context, args: dict) -> dict:
        ctx.require(self.decl.perm("Get"))
        self.require_reach(ctx, "Get")
        wanted = _string_list(args, "ids")
        props = _string_list(args, "properties")
        if props is not None:
            unknown = [p for p in props if p not in self.public_props()]
            if unknown:
                raise invalid_arguments(f"Unknown properties: {', '.join(unknown[:10])}.")
        limit = ctx.limits.get_max_results
        if wanted is not None and len(wanted) > limit:
            raise MethodError("requestTooLarge", f"At most {limit} ids may be fetched at once.")
        found, not_found = [], []
        if self.decl.singleton:
            docs = []
            for object_id in (dict.fromkeys(wanted) if wanted is not None else [ids.SINGLETON]):
                if (ctx.resolve_creation_id(object_id) or object_id) == ids.SINGLETON:
                    docs.append(self.singleton_doc(ctx))
                else:
                    not_found.append(object_id)
            listed = [{k: v for k, v in doc.items() if props is None or k == "id" or k in props} for doc in docs]
            return {"accountId": ctx.account_id, "state": _state(self.decl), "list": listed, "notFound": not_found}
        if wanted is None:
            found = list(self.prefetch(self.visible(ctx).order_by(self.decl.id_field))[:limit])
        else:
            wanted = list(dict.fromkeys(wanted))
            resolved = {object_id: ctx.resolve_creation_id(object_id) or object_id for object_id in wanted}
            objects = self.find_many(ctx, set(resolved.values()))
            for object_id in wanted:
                obj = objects.get(resolved[object_id])
                (found.append(obj) if obj is not None else not_found.append(object_id))
        listed = []
        for obj in found:
            doc = self.encode(ctx, obj)
            if props is not None:
                doc = {k: v for k, v in doc.items() if k == "id" or k in props}
            listed.append(doc)
        return {"accountId": ctx.account_id, "state": _state(self.decl), "list": listed, "notFound": not_found}

    # --- /set ---------------------------------------------------------------------------
    def _check_set_permissions(self, ctx, create, update, destroy):
        if self.decl.singleton:
            ctx.require(self.decl.perm("Update"))
            self.require_reach(ctx, "Update")
            return
        held = {op for op in _OPS if ctx.principal.has(self.decl.perm(op))}
        if not held:
            raise MethodError("forbidden", "You are not authorized to create, update or destroy objects of this type")
        for op, branch in (("Create", create), ("Update", update), ("Destroy", destroy)):
            if branch and op not in held:
                raise MethodError("forbidden", f"You are not authorized to {op.lower()} objects of this type")
        for op, branch in (("Create", create), ("Update", update), ("Destroy", destroy)):
            if branch:
                self.require_reach(ctx, op)

    def set(self, ctx: Context, args: dict) -> dict:
        create, update, destroy = set_arguments(args)
        self._check_set_permissions(ctx, create, update, destroy)
        if_in_state = args.get("ifInState")
        old_state = _state(self.decl)
        if if_in_state is not None:
            if not isinstance(if_in_state, str):
                raise invalid_arguments('"ifInState" must be a string.')
            if if_in_state != old_state:
                raise MethodError("stateMismatch", "The state does not match ifInState.")
        check_set_size(ctx, create, update, destroy)
        out = {"accountId": ctx.account_id, "oldState": old_state, "newState": None,
               "created": {}, "updated": {}, "destroyed": [], "notCreated": {}, "notUpdated": {}, "notDestroyed": {}}
        created_before = dict(ctx.created_ids)
        with registry.tracking_states() as moved:
            for cid, body in create.items():
                try:
                    self.before_create(ctx)
                    with _change(moved):
                        if self.decl.singleton:
                            raise SingletonError("Singletons cannot be created or destroyed.")
                        if not isinstance(body, dict):
                            raise InvalidProperties("The object must be a JSON object.")
                        body = self._resolve_refs(ctx, body)
                        obj = self.do_create(ctx, self.decode_create(body), body)
                    new_id = self.decl.object_id(obj)
                    ctx.created_ids[cid] = new_id
                    out["created"][cid] = {"id": new_id, **self.created_extra(ctx, obj, body)}
                except SetError as exc:
                    out["notCreated"][cid] = exc.to_json()

            destroying = set(destroy)
            # One query tells which ids exist at all (500 unknown ids cost what one does); each
            # existing one is then locked and read again before its patch is worked out.
            if self.decl.singleton:
                known = dict.fromkeys(oid for oid in update if oid == ids.SINGLETON)  # always there
            else:
                known = self.find_many(ctx, [oid for oid in update if oid not in destroying]) if update else {}
            for object_id, patch in update.items():
                try:
                    if object_id in destroying:
                        raise WillDestroy("The object is destroyed in this request.")
                    if object_id not in known:
                        raise NotFound(f"{self.decl.name} {object_id} not found.")
                    if not isinstance(patch, dict):
                        raise InvalidPatch("The patch must be a JSON object.")
                    with _change(moved):
                        obj = self.find(ctx, object_id, lock=True)
                        if obj is None:
                            raise NotFound(f"{self.decl.name} {object_id} not found.")
                        patch = self._resolve_refs(ctx, patch)
                        values = self.decode_patch(ctx, obj, patch)
                        obj = self.do_update(ctx, obj, values, patch)
                    out["updated"][object_id] = None
                except SetError as exc:
                    out["notUpdated"][object_id] = exc.to_json()

            destroy = list(dict.fromkeys(destroy))  # an id named twice is answered once
            resolved = {object_id: ctx.resolve_creation_id(object_id) or object_id for object_id in destroy}
            targets = self.find_many(ctx, set(resolved.values())) if destroy and not self.decl.singleton else {}
            for object_id in destroy:
                try:
                    if self.decl.singleton:
                        raise SingletonError("Singletons cannot be created or destroyed.")
                    obj = targets.get(resolved[object_id])
                    if obj is None:
                        raise NotFound(f"{self.decl.name} {object_id} not found.")
                    with _change(moved):
                        self.do_destroy(ctx, obj)
                    out["destroyed"].append(object_id)
                except SetError as exc:
                    out["notDestroyed"][object_id] = exc.to_json()

        final = registry.states(self.decl.name)[self.decl.name]  # now, after this call's changes
        ours = {s for s in moved.get(self.decl.name, ()) if s <= final}
        if if_in_state is not None and ours and not set(range(int(if_in_state) + 1, final + 1)) <= ours:
            # Another writer's change landed between the check above and ours (PostgreSQL; on
            # SQLite the method's transaction holds the write lock from its start). Raising
            # rolls back everything this call did, as if the check had failed at once.
            ctx.created_ids.clear()
            ctx.created_ids.update(created_before)
            raise MethodError("stateMismatch", "The state does not match ifInState.")
        if ours and if_in_state is None:
            # The state just before this call's first change, whatever others did before it.
            out["oldState"] = str(min(ours) - 1)
        out["newState"] = str(final)
        for key in ("created", "updated", "notCreated", "notUpdated", "notDestroyed"):
            out[key] = out[key] or None
        out["destroyed"] = out["destroyed"] or None
        return out

    def _resolve_refs(self, ctx: Context, value, depth: int = 0):
        """'#creationId' strings and keys inside a body become the ids created in this request."""
        if depth > 5:
            return value
        if isinstance(value, str) and value.startswith("#") and len(value) > 1:
            resolved = ctx.created_ids.get(value[1:])
            if resolved is None:
                raise NotFound(f'Id reference "{value[1:]}" not found.')
            return resolved
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if k.startswith("#") and len(k) > 1 and depth > 0:
                    k = self._resolve_refs(ctx, k, depth + 1)
                out[k] = self._resolve_refs(ctx, v, depth + 1)
            return out
        if isinstance(value, list):
            return [self._resolve_refs(ctx, v, depth + 1) for v in value]
        return value

    def _prop(self, name: str):
        prop = self.decl.json_prop(name)
        if prop is None:
            raise InvalidProperties(f"Unknown property {name}.", properties=[name])
        return prop

    def decode_create(self, body: dict) -> dict:
        if self.decl.multi:
            at_type = self.decl.public_name(self.decl.variant_field)
            if at_type not in body:
                raise InvalidProperties(f"{at_type} is required: it names the variant of {self.decl.name}.",
                                        properties=[at_type])
        values = {}
        for name, value in body.items():
            if name == "id":
                raise InvalidProperties("The id is set by the server.", properties=["id"])
            prop = self._prop(name)
            if prop.server_set:
                raise InvalidProperties(f"{name} is set by the server.", properties=[name])
            values.update(prop.decode(value))
        return values

    def decode_patch(self, ctx: Context, obj, patch: dict) -> dict:
        """Apply an RFC 8620 PatchObject to the object's JSON and decode what changed."""
        if type(self).encode is RegistryMethods.encode:
            # Only the properties the patch names: encoding the others costs a query for each
            # many-to-many one, for nothing.
            named = {pointer_parts(path)[0] for path in patch if isinstance(path, str) and path}
            current = self.decl.to_json(obj, only=named)
        else:
            current = self.encode(ctx, obj)
        doc = copy.deepcopy(current)
        if self.decl.multi:
            self._check_switch(obj, patch)
        for path, value in patch.items():
            if not isinstance(path, str) or not path:
                raise InvalidPatch("Invalid property path.")
            parts = pointer_parts(path)
            name = parts[0]
            if name == "id":
                if value == current["id"] and len(parts) == 1:
                    continue
                raise InvalidPatch("The id cannot be changed.", properties=["id"])
            prop = self._prop(name)
            if prop.server_set:
                raise InvalidPatch("Cannot modify server set property.", properties=[path])
            apply_pointer(doc, path, value)
        values = {}
        for prop in self.decl.json_props:
            # Compared as JSON: Python's == takes 1 for true and 8.0 for 8, which would let a
            # wrongly typed value pass as "unchanged" instead of being refused.
            if prop.name in doc and _as_json(doc[prop.name]) != _as_json(current.get(prop.name)):
                values.update(prop.decode(doc[prop.name]))
        return values

    def _check_switch(self, obj, patch: dict) -> None:
        """A patch that changes the variant replaces the object with create semantics (the
        reference's rule): it names whole properties only, no path into one."""
        at_type = self.decl.public_name(self.decl.variant_field)
        if at_type not in patch or patch[at_type] == self.decl.variant_json(self.decl.variant_of(obj)):
            return
        for path in patch:
            if isinstance(path, str) and "/" in path:
                raise InvalidPatch(f"A patch that changes {at_type} sets whole properties: send the new variant's "
                                   "values, not paths into them.", properties=[path])

    # --- /query -------------------------------------------------------------------------
    COMPARATORS = {"IsGreaterThan": "gt", "IsGreaterThanOrEqual": "gte", "IsLessThan": "lt",
                   "IsLessThanOrEqual": "lte"}

    # Advertised in the session's urn:stalwart:jmap capability. SQLite refuses an expression
    # tree deeper than 1 000 and an OR of n conditions compiles to a chain n deep, so the count
    # is kept an order of magnitude below that (a `text` condition expands to one OR group per
    # call, nested, not chained); no management client needs more than a few dozen.
    MAX_FILTER_DEPTH = FILTER_LIMITS["maxFilterDepth"]
    MAX_FILTER_CONDITIONS = FILTER_LIMITS["maxFilterConditions"]

    def _check_filter_size(self, filt) -> None:
        """Refuse a filter over the advertised limits before any of it is evaluated."""
        count, stack = 0, [(filt, 0)]
        while stack:
            item, depth = stack.pop()
            if depth > self.MAX_FILTER_DEPTH:
                raise MethodError("unsupportedFilter", f"Filters may nest at most {self.MAX_FILTER_DEPTH} levels "
                                                       "(maxFilterDepth).")
            if not isinstance(item, dict):
                continue
            conditions = item.get("conditions") if "operator" in item else None
            count += 1 if "operator" in item else max(len(item), 1)
            if isinstance(conditions, list):
                stack.extend((c, depth + 1) for c in conditions)
            if count > self.MAX_FILTER_CONDITIONS:
                raise MethodError("unsupportedFilter", f"A filter may have at most {self.MAX_FILTER_CONDITIONS} "
                                                       "conditions and operators (maxFilterConditions).")

    def _condition(self, filt, depth: int = 0) -> Q:
        if not isinstance(filt, dict):
            raise MethodError("unsupportedFilter", "A filter must be an object.")
        if "operator" in filt:
            op, conditions = filt.get("operator"), filt.get("conditions")
            if op not in ("AND", "OR", "NOT") or not isinstance(conditions, list):
                raise MethodError("unsupportedFilter", "Invalid filter operator.")
            parts = [self._condition(c, depth + 1) for c in conditions]
            if op == "AND":
                q = Q()
                for part in parts:
                    q &= part
                return q
            q = Q(pk__in=[])
            for part in parts:
                q |= part
            return ~q if op == "NOT" else q
        q = Q()
        for key, value in filt.items():
            q &= self._one_condition(key, value)
        return q

    def _one_condition(self, key: str, value) -> Q:
        if key == "text":
            if not isinstance(value, str):
                raise MethodError("unsupportedFilter", "Filter on property text is not supported or invalid")
            q = Q(pk__in=[])
            for prop in self.decl.props:
                if (prop.field.get_internal_type() in ("CharField", "TextField") and not prop.field.choices
                        and not prop.secret):
                    q |= Q(**{f"{prop.attname}__icontains": value})
            return q
        lookup = "exact"
        name = key
        for suffix, django_lookup in self.COMPARATORS.items():
            if key.endswith(suffix):
                name, lookup = key[: -len(suffix)], django_lookup
        prop = self.decl.prop(name)
        if prop is None or prop.secret:
            raise MethodError("unsupportedFilter", f"Filter on property {key} is not supported or invalid")
        try:
            if prop.is_m2m:
                pk = ids.decode(value) if isinstance(value, str) else None
                if pk is None:
                    raise InvalidPatch("bad id")
                return Q(**{prop.attname: pk})
            decoded = prop.from_json(value)
        except SetError:
            raise MethodError("unsupportedFilter", f"Filter on property {key} is not supported or invalid") from None
        if prop.is_fk:
            return Q(**{f"{prop.field.attname}__{lookup}" if decoded is not None else f"{prop.field.attname}__isnull":
                        decoded if decoded is not None else True})
        if decoded is None:
            return Q(**{f"{prop.attname}__isnull": True})
        if isinstance(decoded, list):
            raise MethodError("unsupportedFilter", f"Filter on property {key} is not supported or invalid")
        if lookup == "exact" and prop.field.get_internal_type() in ("CharField", "TextField") and not prop.field.choices:
            return Q(**{f"{prop.attname}__iexact": decoded})
        return Q(**{f"{prop.attname}__{lookup}": decoded})

    def query(self, ctx: Context, args: dict) -> dict:
        ctx.require(self.decl.perm("Query"))
        self.require_reach(ctx, "Get")
        qs = self.visible(ctx)
        filt = args.get("filter")
        if filt is not None:
            self._check_filter_size(filt)
            qs = qs.filter(self._condition(filt))
        sort = args.get("sort")
        order = []
        if sort is not None:
            if not isinstance(sort, list):
                raise invalid_arguments('"sort" must be an array.')
            for comparator in sort:
                if not isinstance(comparator, dict) or not isinstance(comparator.get("property"), str):
                    raise invalid_arguments("Each sort comparator needs a property.")
                name = comparator["property"]
                prop = self.decl.prop(name) if name != "id" else None
                if name != "id" and (prop is None or prop.is_m2m or prop.secret
                                     or prop.field.get_internal_type() == "JSONField"):
                    raise MethodError("unsupportedSort", f"Property {name} is not supported for sorting")
                asc = comparator.get("isAscending", True)
                if not isinstance(asc, bool):
                    raise invalid_arguments('"isAscending" must be a boolean.')
                column = self.decl.id_field if name == "id" else (prop.field.attname if prop.is_fk else prop.attname)
                order.append(column if asc else f"-{column}")
        qs = qs.order_by(*order, self.decl.id_field)
        all_ids = [ids.encode(pk) for pk in qs.values_list(self.decl.id_field, flat=True)]
        position = args.get("position", 0)
        anchor, anchor_offset = args.get("anchor"), args.get("anchorOffset", 0)
        limit = args.get("limit")
        # RFC 8620 §1.3: Int and UnsignedInt stop at 2^53-1; a larger position was answered as
        # given, a number no I-JSON client can read.
        for name, value in (("position", position), ("anchorOffset", anchor_offset)):
            if not isinstance(value, int) or isinstance(value, bool) or abs(value) > MAX_SAFE_INT:
                raise invalid_arguments(f'"{name}" must be an integer (Int, at most 2^53-1 either way).')
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or not 0 <= limit <= MAX_SAFE_INT):
            raise invalid_arguments('"limit" must be a non-negative integer.')
        calculate_total = args.get("calculateTotal", False)
        if not isinstance(calculate_total, bool):
            raise invalid_arguments('"calculateTotal" must be a boolean.')
        if anchor is not None:
            if not isinstance(anchor, str):
                raise invalid_arguments('"anchor" must be an id.')
            if anchor not in all_ids:
                raise MethodError("anchorNotFound", "The anchor is not in the results.")
            position = max(0, all_ids.index(anchor) + anchor_offset)
        elif position < 0:
            position = max(0, len(all_ids) + position)
        cap = ctx.limits.query_max_results
        effective = cap if limit is None else min(limit, cap)
        page = all_ids[position:position + effective]
        out = {"accountId": ctx.account_id, "queryState": _state(self.decl), "canCalculateChanges": False,
               "position": position, "ids": page}
        if calculate_total:
            out["total"] = len(all_ids)
        if limit is not None and limit > cap:
            out["limit"] = cap
        return out

    def change_log(self, ctx: Context, log):
        """The change-log rows (registry.ChangeLog) this caller may see."""
        return log

    def change_id(self, log_id: str) -> str:
        """The JMAP id of the object a change-log row names."""
        return log_id

    # --- /changes -----------------------------------------------------------------------
    def changes(self, ctx: Context, args: dict) -> dict:
        ctx.require(self.decl.perm("Get"))
        self.require_reach(ctx, "Get")
        since = args.get("sinceState")
        if not isinstance(since, str):
            raise invalid_arguments('"sinceState" is required.')
        max_changes = args.get("maxChanges")
        if max_changes is not None and (not isinstance(max_changes, int) or isinstance(max_changes, bool)
                                        or max_changes < 1):
            raise invalid_arguments('"maxChanges" must be a positive integer.')
        current = int(_state(self.decl))
        if not re.fullmatch(r"[0-9]{1,18}", since) or int(since) > current:
            raise MethodError("cannotCalculateChanges", "The state is unknown.")
        since_n = int(since)
        cap = min(max_changes or ctx.limits.changes_max_results, ctx.limits.changes_max_results)
        # Rows committed after `current` was read belong to a later answer.
        log = ChangeLog.objects.filter(object_type=self.decl.name, state__gt=since_n, state__lte=current)
        # Every state step writes one row; without the step right after sinceState the log
        # does not reach back that far.
        if since_n < current and not log.filter(state=since_n + 1).exists():
            raise MethodError("cannotCalculateChanges", "The changes since that state are no longer known.")
        tenant = registry.actor_tenant(ctx.principal)
        if tenant is not None:
            # States count every tenant's changes; the ids listed are only the caller's tenant's.
            log = log.filter(tenant_id=tenant)
        rows = self.change_log(ctx, log).order_by("state").values_list("state", "object_id", "kind")
        has_more = False
        new_state = current
        touched: dict[str, list[str]] = {}
        # Read lazily: a client far behind must not make the server load the whole log.
        for state, log_id, kind in rows.iterator(chunk_size=1000):
            object_id = self.change_id(log_id)
            if object_id not in touched and len(touched) >= cap:
                has_more, new_state = True, state - 1
                break
            touched.setdefault(object_id, []).append(kind)
        created, updated, destroyed = [], [], []
        for object_id, kinds in touched.items():
            if kinds[0] == "created":
                if kinds[-1] != "destroyed":
                    created.append(object_id)
            elif kinds[-1] == "destroyed":
                destroyed.append(object_id)
            else:
                updated.append(object_id)
        return {"accountId": ctx.account_id, "oldState": since, "newState": str(new_state),
                "hasMoreChanges": has_more, "created": created, "updated": updated, "destroyed": destroyed}
