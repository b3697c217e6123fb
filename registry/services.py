"""The one place where declared objects change.

Every face (admin pages, JMAP, manage.py) calls these functions, which validate, write in one
transaction, record an audit event per changed property, bump the type's state and let the
declaration drop what it cached.
"""
from __future__ import annotations

import contextlib
import contextvars

from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import F

from . import context, memo
from . import declaration as decl_mod
from . import ids
from .errors import (
    Forbidden,
    InvalidForeignKey,
    InvalidProperties,
    NotFound,
    ObjectIsLinked,
    PrimaryKeyViolation,
    SingletonError,
    from_validation_error,
)
from .models import AuditEvent, ChangeLog, ObjectState


def actor_label(actor) -> str:
    if actor is None:
        return "system"
    if isinstance(actor, str):
        return actor
    return getattr(actor, "audit_name", None) or str(actor)


# --- tenant confinement ---------------------------------------------------------------------
def actor_tenant(actor) -> int | None:
    """The tenant an actor is confined to, or None for the system and administrators outside any tenant."""
    if actor is None or isinstance(actor, str):
        return None
    if getattr(actor, "recovery", False) or getattr(actor, "is_recovery_admin", False):
        return None
    return getattr(actor, "tenant_id", None)


def reach_error(decl, actor, op: str = "Get") -> Forbidden | None:
    """Why a tenant-confined actor may not use `op` on this type at all, or None if it may."""
    if actor_tenant(actor) is None:
        return None
    if decl.tenant_scope == decl_mod.SYSTEM:
        return Forbidden(f"{decl.name} is a system-wide object, out of the reach of a tenant's administrators.")
    if decl.tenant_scope == decl_mod.TENANT_SELF and op != "Get":
        return Forbidden("Tenants are managed by administrators outside any tenant.")
    return None


def require_reach(decl, actor, op: str = "Get") -> None:
    error = reach_error(decl, actor, op)
    if error is not None:
        raise error


def scope(decl, actor, qs):
    """`qs` narrowed to the objects `actor` may see: all of them, or those of its tenant."""
    tenant = actor_tenant(actor)
    if tenant is None:
        return qs
    if decl.tenant_scope == decl_mod.SYSTEM:
        return qs.none()
    if decl.tenant_scope == decl_mod.TENANT_SELF:
        return qs.filter(pk=tenant)
    return qs.filter(**{decl.tenant_scope: tenant})


def tenant_of(decl, obj) -> int | None:
    """The tenant an object belongs to (None: the system's)."""
    if decl.tenant_scope == decl_mod.SYSTEM:
        return None
    if decl.tenant_scope == decl_mod.TENANT_SELF:
        return obj.pk
    *path, last = decl.tenant_scope.split("__")
    for part in path:
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return getattr(obj, f"{last}_id", None)


def _place_in_tenant(decl, actor, obj, action: str) -> None:
    """What a tenant-confined actor creates is placed in its tenant."""
    tenant = actor_tenant(actor)
    if tenant is not None and decl.tenant_scope == "tenant" and action == "create" and obj.tenant_id is None:
        obj.tenant_id = tenant


def _keep_in_tenant(decl, actor, obj, action: str, values: dict) -> None:
    """A tenant-confined actor's objects stay in its tenant; only the system moves them.

    Runs after the references were checked, so another tenant's id has already answered
    invalidForeignKey, like an id that does not exist; what is left is "no tenant".
    """
    tenant = actor_tenant(actor)
    if tenant is None or decl.tenant_scope != "tenant":
        return
    if action == "update" and "tenant" not in values:
        return
    if obj.tenant_id != tenant:
        raise Forbidden(f"{decl.public_name('tenant')} can only be changed by administrators outside any tenant.",
                        properties=[decl.public_name("tenant")])


# --- states ---------------------------------------------------------------------------------
def bump_state(*names: str) -> int:
    """Advance the states of `names`; return the new state of the last one.

    Call it inside the transaction of the change: the row stays locked until the commit, so
    states are handed out in commit order.
    """
    state = 0
    seen = _bumps.get()
    for name in names:
        updated = ObjectState.objects.filter(name=name).update(state=F("state") + 1)
        if not updated:
            try:
                with transaction.atomic():
                    ObjectState.objects.create(name=name, state=1)
            except IntegrityError:
                ObjectState.objects.filter(name=name).update(state=F("state") + 1)
        state = ObjectState.objects.filter(name=name).values_list("state", flat=True).first()
        context.moved(name)
        memo.changed()
        if seen is not None:
            seen.setdefault(name, set()).add(state)
    return state


_bumps: contextvars.ContextVar[dict[str, set[int]] | None] = contextvars.ContextVar("registry_bumps", default=None)


@contextlib.contextmanager
def tracking_states():
    """Collect, per type, the states that the changes made in this block moved to.

    This is how a JMAP /set checks ifInState without a lock taken in an order of its own (the
    state row would be locked before the object rows, where every other writer locks them
    after, and PostgreSQL would break the resulting deadlocks by failing one writer): the
    states the block moved its type to must be exactly those after the expected one, so that
    no other writer's change came in between. A bump rolled back with a savepoint hands its
    number out again, so the set may hold numbers beyond the final state; they do no harm.
    """
    token = _bumps.set({})
    try:
        yield _bumps.get()
    finally:
        _bumps.reset(token)


def current(model, known: dict[str, int] | None = None):
    """A settings singleton as it is now, kept in the worker under its state (one read per change).

    `known` may carry the states already read for this request; otherwise the request
    context's are used, or the state is read here. The object is shared: read it, never change
    it (a change goes through update()).
    """
    name = model._declaration.name
    state = (known or {}).get(name)
    if state is None:
        state = context.states(name)[name]
    return memo.get(("singleton", name), state, model.load)


def touch(decl_name: str, object_id: str, kind: str = "updated", tenant_id: int | None = None) -> int:
    """Record that an object was created, updated or destroyed outside the generic mutations
    (its state and change log)."""
    state = bump_state(decl_name)
    ChangeLog.objects.create(object_type=decl_name, state=state, object_id=object_id, kind=kind,
                             tenant_id=tenant_id)
    return state


def touch_many(decl_name: str, objects, kind: str = "updated") -> int:
    """touch() for several objects of one type at once, [(object_id, tenant_id)]: one state
    step and one insert whatever their number."""
    state = bump_state(decl_name)
    ChangeLog.objects.bulk_create([ChangeLog(object_type=decl_name, state=state, object_id=object_id,
                                             kind=kind, tenant_id=tenant_id) for object_id, tenant_id in objects])
    return state


def states(*names: str) -> dict[str, int]:
    """The current states of `names` (0 for a type never changed), read now from the database."""
    return context.read(*names)


def state_token(*names: str) -> str:
    s = states(*names)
    return ".".join(str(s[n]) for n in names)


# --- snapshots and audit --------------------------------------------------------------------
def snapshot(decl: decl_mod.ObjectType, obj, values: dict | None = None) -> dict:
    """The object's properties as the audit log shows them. With `values` (an update's), the
    many-to-many properties it does not change are left out: each costs a query, and what an
    update leaves alone needs no audit row."""
    return {p.name: p.to_json(decl_mod.read_value(obj, p)) for p in decl.props
            if values is None or not p.is_m2m or p.attname in values}


def _audit(actor, decl, obj_id, action, before: dict, after: dict, changed_secrets=()) -> None:
    label = actor_label(actor)
    rows = []
    for prop in decl.props:
        old, new = before.get(prop.name), after.get(prop.name)
        if action == "update" and old == new and prop.name not in changed_secrets:
            continue
        if action != "update" and (old if action == "destroy" else new) in (None, [], {}, ""):
            continue
        rows.append(
            AuditEvent(
                actor=label, object_type=decl.name, object_id=str(obj_id), action=action,
                field=prop.name, old_value=old, new_value=new,
            )
        )
    if not rows:
        rows.append(AuditEvent(actor=label, object_type=decl.name, object_id=str(obj_id), action=action))
    AuditEvent.objects.bulk_create(rows)


def record(actor, decl, obj, action: str, before: dict, after: dict, changed_secrets=()) -> None:
    """Audit + state bump + cache hooks for a change made by a specialised service."""
    object_id = decl.object_id(obj)
    _audit(actor, decl, object_id, action, before, after, changed_secrets)
    state = bump_state(decl.name)
    kind = {"create": "created", "update": "updated", "destroy": "destroyed"}[action]
    ChangeLog.objects.create(object_type=decl.name, state=state, object_id=object_id, kind=kind,
                             tenant_id=tenant_of(decl, obj))
    if decl.on_change:
        transaction.on_commit(lambda: decl.on_change(obj))


# --- validation -----------------------------------------------------------------------------
def _reachable(model, actor):
    """The objects of `model` that `actor` may refer to: another tenant's do not exist for it."""
    related = decl_mod.for_model(model)
    return scope(related, actor, model.objects.all()) if related is not None else model.objects.all()


def _check_foreign_keys(decl, obj, m2m: dict, actor=None, changed=None) -> None:
    for attname, pks in m2m.items():
        prop = decl.prop_for_field(attname)
        model = prop.field.related_model
        found = set(_reachable(model, actor).filter(pk__in=pks).values_list("pk", flat=True))
        missing = [i for i in pks if i not in found]
        # The field's limit_choices_to holds here too, not only in the admin's choices: a user
        # listed in memberGroupIds was accepted over JMAP and manage.py.
        allowed = prop.field.get_limit_choices_to()
        if not missing and allowed:
            fit = set(model.objects.filter(pk__in=found).complex_filter(allowed).values_list("pk", flat=True))
            wrong = [i for i in pks if i not in fit]
            if wrong:
                raise InvalidForeignKey(
                    f"{model.__name__} {ids.encode(wrong[0])} cannot be listed in {prop.name}", properties=[prop.name],
                    objectId={"object": _type_name(model), "id": ids.encode(wrong[0])},
                )
        if missing:
            raise InvalidForeignKey(
                f"{model.__name__} {ids.encode(missing[0])} does not exist", properties=[prop.name],
                objectId={"object": _type_name(model), "id": ids.encode(missing[0])},
            )
    for prop in decl.props:
        # An update checks only what it changes: a reference set by the system stays valid.
        if prop.is_fk and (changed is None or prop.attname in changed):
            value = getattr(obj, prop.field.attname)
            model = prop.field.related_model
            if value is not None and not _reachable(model, actor).filter(pk=value).exists():
                raise InvalidForeignKey(
                    f"{model.__name__} {ids.encode(value)} does not exist", properties=[prop.name],
                    objectId={"object": _type_name(model), "id": ids.encode(value)},
                )


def _type_name(model) -> str:
    d = decl_mod.for_model(model)
    return d.name if d else model.__name__


def validate(decl, obj, m2m: dict, actor=None, changed=None) -> None:
    """Run field validators, model.clean() and the declaration's own checks; raise SetError."""
    _check_foreign_keys(decl, obj, m2m, actor, changed)
    exclude = [f.name for f in obj._meta.get_fields() if f.many_to_many]
    try:
        obj.full_clean(exclude=exclude, validate_unique=False)
        if decl.validate:
            decl.validate(obj, m2m)
    except ValidationError as exc:
        raise from_validation_error(exc, decl.public_name, obj) from None
    _check_unique(decl, obj, actor)


def _check_unique(decl, obj, actor=None) -> None:
    try:
        obj.validate_unique()
        obj.validate_constraints()
    except ValidationError as exc:
        existing = None
        fields = list(getattr(exc, "error_dict", {}).keys())
        props = [decl.public_name(f) for f in fields if f != "__all__"] or [p.name for p in decl.props[:1]]
        unique_sets = [f for f in fields if f != "__all__"]
        if unique_sets:
            # The clash itself cannot be hidden (names are unique server-wide), but another
            # tenant's object is not named by id.
            existing = scope(decl, actor, type(obj).objects.all()).exclude(pk=obj.pk).filter(
                **{f: getattr(obj, obj._meta.get_field(f).attname) for f in unique_sets}
            ).first()
        raise PrimaryKeyViolation(
            " ".join(exc.messages), properties=props,
            objectId={"object": decl.name, "id": ids.encode(existing.pk)} if existing else None,
        ) from None


def _split(decl, values: dict) -> tuple[dict, dict]:
    scalars, m2m = {}, {}
    for attname, value in values.items():
        prop = decl.prop_for_field(attname)
        if prop is None:
            raise ValueError(f"{decl.name} has no public field {attname}")
        (m2m if prop.is_m2m else scalars)[attname] = value
    return scalars, m2m


# --- mutations ------------------------------------------------------------------------------
def load(decl, pk=None, *, lock=False, actor=None):
    model = decl.model
    qs = scope(decl, actor, model.objects.select_for_update() if lock else model.objects.all())
    if decl.singleton:
        model.load()
        try:
            return qs.get(pk=model.SINGLETON_PK)
        except model.DoesNotExist:
            raise NotFound(f"{decl.name} not found") from None
    try:
        return qs.get(pk=pk)
    except (model.DoesNotExist, ValueError, TypeError):
        # The public id, never the row number behind it.
        shown = ids.encode(pk) if isinstance(pk, int) and not isinstance(pk, bool) and pk >= 0 else "with this id"
        raise NotFound(f"{decl.name} {shown} not found") from None


def _secret_values(decl, obj) -> dict:
    return {p.name: decl_mod.read_value(obj, p) for p in decl.props if p.secret}


def _write(decl, obj, values: dict, actor, action: str, before: dict, extra_save=None):
    """Apply, validate, save, authorise and record one change, inside the caller's transaction."""
    # Secrets read "****" in snapshots: compare the stored values to see whether one changed.
    require_reach(decl, actor, "Create" if action == "create" else "Update")
    if action == "update" and decl.guard:
        decl.guard(actor, obj, action, set(values))
    secrets_before = _secret_values(decl, obj) if action == "update" else {}
    if decl.multi:
        _enter_variant(decl, obj, values, action)
    scalars, m2m = _split(decl, values)
    for attname, value in scalars.items():
        prop = decl.prop_for_field(attname)
        if action == "update" and attname in decl.create_only and value != getattr(obj, attname):
            raise InvalidProperties(f"{prop.name} cannot be changed once the object exists.", properties=[prop.name])
        setattr(obj, prop.field.attname if prop.is_fk else attname, value)
    _place_in_tenant(decl, actor, obj, action)
    validate(decl, obj, m2m, actor, set(values) if action == "update" else None)
    _keep_in_tenant(decl, actor, obj, action, values)
    try:
        # A savepoint: validate() saw no duplicate, but a writer in another transaction may
        # commit the same unique value before our insert lands; the database then refuses it,
        # and the caller's transaction must stay usable to report that as a SetError.
        with transaction.atomic():
            obj.save()
            for attname, pks in m2m.items():
                getattr(obj, attname).set(pks)
    except IntegrityError:
        _check_unique(decl, obj, actor)  # now sees the other writer's row and names it
        _check_foreign_keys(decl, obj, m2m, actor)  # or a referenced object went away meanwhile
        raise PrimaryKeyViolation("The change conflicts with one made at the same time; read the object and retry.") from None
    if extra_save:
        extra_save(obj)
    if decl.authorize:
        decl.authorize(actor, obj, set(values) if action == "update" else None)
    after = snapshot(decl, obj, values if action == "update" else None)
    secrets_after = _secret_values(decl, obj) if action == "update" else {}
    changed_secrets = {name for name, value in secrets_after.items() if value != secrets_before.get(name)}
    if action == "create" or after != before or changed_secrets:
        # An update that changes nothing leaves no audit event and keeps the state.
        record(actor, decl, obj, action, before, after, changed_secrets)
    return obj


def _enter_variant(decl, obj, values: dict, action: str) -> None:
    """A multi-variant object takes only its variant's fields. Switching variant on an update
    has the reference's create semantics: the new variant starts from its defaults (and the old
    one's values, secrets included, are not kept), then takes the values given."""
    old = getattr(obj, decl.variant_field)
    new = values.get(decl.variant_field, old)
    if new not in decl.variants:
        return  # not a stored value of the field: full_clean() refuses it with the field's name
    for attname in values:
        if not decl.in_variant(attname, new):
            name = decl.json_name(attname)
            raise InvalidProperties(f"{name} is not a property of the {decl.variant_json(new)} variant of {decl.name}.",
                                    properties=[name])
    if action == "update" and new != old:
        for f in obj._meta.concrete_fields:
            if decl.is_variant_field(f.name) and f.name not in values:
                setattr(obj, f.attname, f.get_default())


def update(decl, pk, values: dict, actor, *, extra_save=None, instance=None):
    """Apply `values` (model field name -> Python value) to one object.

    `instance` is the object as the caller already locked and read it in the current
    transaction (the JMAP /set reads it to apply its patch), so it is not read twice.
    """
    with transaction.atomic():
        obj = instance if instance is not None else load(decl, pk, lock=True, actor=actor)
        return _write(decl, obj, values, actor, "update", snapshot(decl, obj, values), extra_save)


def create(decl, values: dict, actor, *, instance=None, extra_save=None):
    if decl.singleton:
        raise SingletonError("Singletons cannot be created or destroyed.")
    with transaction.atomic():
        obj = instance if instance is not None else decl.model()
        return _write(decl, obj, values, actor, "create", {}, extra_save)


def linked_objects(obj, limit: int = 10, actor=None) -> list[dict]:
    """Objects that refer to obj through a foreign key or many-to-many relation.

    For a tenant-confined actor, other tenants' referring objects still count but are not named.

    Owned parts (credentials, aliases: foreign keys with CASCADE) are not links; they go with
    their owner. Hidden relations (related_name="+") count too.
    """
    out = []
    for rel in obj._meta.get_fields(include_hidden=True):
        if not (rel.auto_created and not rel.concrete and (rel.one_to_many or rel.many_to_many)):
            continue
        # A SET_NULL reference is cleared with the object (a mirrored account forgets its
        # directory), so it is no more a link than an owned part is.
        if rel.one_to_many and rel.on_delete in (models.CASCADE, models.SET_NULL):
            continue
        related = rel.related_model._default_manager.filter(**{rel.field.name: obj})
        if rel.related_model is type(obj):
            related = related.exclude(pk=obj.pk)
        tenant = actor_tenant(actor)
        for item in related[:limit]:
            item_decl = decl_mod.for_model(type(item))
            name = item_decl.name if item_decl else type(item).__name__
            if tenant is not None and (item_decl is None or tenant_of(item_decl, item) != tenant):
                out.append({"object": name, "id": None})
                continue
            out.append({"object": name, "id": item_decl.object_id(item) if item_decl else ids.encode(item.pk)})
    return out[:limit]


def authorize_destroy(decl, actor, obj) -> None:
    """Raise the SetError that would refuse destroying `obj`, before anything is touched."""
    require_reach(decl, actor, "Destroy")
    if decl.guard:
        decl.guard(actor, obj, "destroy", set())


def destroy(decl, pk, actor):
    if decl.singleton:
        raise SingletonError("Singletons cannot be created or destroyed.")
    with transaction.atomic():
        obj = load(decl, pk, lock=True, actor=actor)
        authorize_destroy(decl, actor, obj)
        linked = linked_objects(obj, actor=actor)
        if linked:
            raise ObjectIsLinked(
                f"{decl.name} {ids.encode(pk)} is still referenced",
                objectId={"object": decl.name, "id": ids.encode(pk)},
                linkedObjects=linked,
            )
        before = snapshot(decl, obj)
        obj_id = obj.pk
        obj.delete()
        obj.pk = obj_id
        record(actor, decl, obj, "destroy", before, {})
    return obj


def audit_event(actor, object_type: str, object_id, action: str, field: str = "", old=None, new=None) -> None:
    """Record a change made outside the generic mutations (credentials, bans)."""
    AuditEvent.objects.create(
        actor=actor_label(actor), object_type=object_type, object_id=str(object_id), action=action,
        field=field, old_value=old, new_value=new,
    )


def audit_events(actor, object_type: str, events) -> None:
    """audit_event() for several objects in one insert: [(object_id, action, field, old, new)]."""
    label = actor_label(actor)
    AuditEvent.objects.bulk_create([
        AuditEvent(actor=label, object_type=object_type, object_id=str(object_id), action=action,
                   field=field, old_value=old, new_value=new)
        for object_id, action, field, old, new in events])
