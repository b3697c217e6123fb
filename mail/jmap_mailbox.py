"""Mailbox/get, changes, query, queryChanges, set (RFC 8621 §2)."""
from __future__ import annotations

from django.db import IntegrityError, transaction

from jmapapi.engine import Context, MethodError, method
from jmapapi.journal_methods import changes as journal_changes
from jmapapi.journal_methods import query_changes_method
from journal import services as journal
from registry import ids
from stalwart_site.sqlparams import in_slices

from . import jmap_common as c
from . import store
from .models import Email, Mailbox, Membership

PROPERTIES = ("id", "name", "parentId", "role", "sortOrder", "totalEmails", "unreadEmails", "totalThreads",
              "unreadThreads", "myRights", "isSubscribed")
COUNTS = ("totalEmails", "unreadEmails", "totalThreads", "unreadThreads")
# The counters the store keeps on the row (store.counting): a Mailbox/get counts nothing.
COUNT_COLUMNS = dict(store.COUNTS)
SETTABLE = ("name", "parentId", "role", "sortOrder", "isSubscribed")
EDITABLE_COLUMNS = ("name", "parent", "role", "sort_order", "is_subscribed")
# The owner of an account may do everything with its mailboxes (RFC 8621 §2 MailboxRights).
OWNER_RIGHTS = {"mayReadItems": True, "mayAddItems": True, "mayRemoveItems": True, "maySetSeen": True,
                "maySetKeywords": True, "mayCreateChild": True, "mayRename": True, "mayDelete": True,
                "maySubmit": True}


def _json(mb: Mailbox, props) -> dict:
    out = {}
    for p in props:
        if p == "id":
            out[p] = ids.encode(mb.pk)
        elif p == "name":
            out[p] = mb.name
        elif p == "parentId":
            out[p] = ids.encode(mb.parent_id) if mb.parent_id else None
        elif p == "role":
            out[p] = mb.role
        elif p == "sortOrder":
            out[p] = mb.sort_order
        elif p == "isSubscribed":
            out[p] = mb.is_subscribed
        elif p == "myRights":
            out[p] = dict(OWNER_RIGHTS)
        else:
            out[p] = getattr(mb, COUNT_COLUMNS[p])
    return out


@method("Mailbox/get", c.MAIL, account_optional=False, transactional=False)
def mailbox_get(ctx: Context, args: dict) -> dict:
    ctx.require("jmapMailboxGet")
    pk = c.account(ctx, args)
    wanted = c.id_list(args, "ids", ctx.limits.get_max_results)
    props = c.properties(args, PROPERTIES, PROPERTIES)
    state = journal.state(pk, store.MAILBOX)
    rows = Mailbox.objects.filter(account_id=pk).order_by("pk")
    not_found = []
    if wanted is not None:
        asked = c.decode_ids(ctx, wanted)
        rows = rows.filter(pk__in=[v for v in asked.values() if v is not None])
    rows = list(rows)
    by_pk = {m.pk: m for m in rows}
    if wanted is None:
        listed = [_json(m, props) for m in rows]
    else:
        listed = []
        for value, mpk in asked.items():
            if mpk in by_pk:
                listed.append(_json(by_pk[mpk], props))
            else:
                not_found.append(value)
    return {"accountId": ids.encode(pk), "state": state, "list": listed, "notFound": not_found}


@method("Mailbox/changes", c.MAIL, account_optional=False, transactional=False)
def mailbox_changes(ctx: Context, args: dict) -> dict:
    ctx.require("jmapMailboxChanges")
    # RFC 8621 §2.2: null says any property may have changed (the journal keeps no property list).
    return {**journal_changes(ctx, args, store.MAILBOX), "updatedProperties": None}


# --- query --------------------------------------------------------------------------------
FILTERS = {"parentId", "name", "role", "hasAnyRole", "isSubscribed"}


def _leaf(cond: dict):
    unknown = set(cond) - FILTERS
    if unknown:
        raise MethodError("unsupportedFilter", f"Unknown filter {sorted(unknown)[0][:64]}.")
    checks = []
    if "parentId" in cond:
        value = cond["parentId"]
        if value is not None and not isinstance(value, str):
            raise MethodError("unsupportedFilter", "parentId must be an id or null.")
        parent = ids.decode(value) if value is not None else None
        checks.append(lambda m, parent=parent: m.parent_id == parent)
    if "name" in cond:
        if not isinstance(cond["name"], str):
            raise MethodError("unsupportedFilter", "name must be a string.")
        needle = cond["name"].casefold()
        checks.append(lambda m: needle in m.name.casefold())
    if "role" in cond:
        role = cond["role"]
        if role is not None and not isinstance(role, str):
            raise MethodError("unsupportedFilter", "role must be a string or null.")
        checks.append(lambda m: m.role == role)
    if "hasAnyRole" in cond:
        if not isinstance(cond["hasAnyRole"], bool):
            raise MethodError("unsupportedFilter", "hasAnyRole must be a boolean.")
        checks.append(lambda m, want=cond["hasAnyRole"]: (m.role is not None) == want)
    if "isSubscribed" in cond:
        if not isinstance(cond["isSubscribed"], bool):
            raise MethodError("unsupportedFilter", "isSubscribed must be a boolean.")
        checks.append(lambda m, want=cond["isSubscribed"]: m.is_subscribed == want)
    return lambda m: all(check(m) for check in checks)


def _sorted(mailboxes, comparators):
    out = list(mailboxes)
    out.sort(key=lambda m: m.pk)
    for comp in reversed(comparators):
        key = (lambda m: m.sort_order) if comp["property"] == "sortOrder" else (lambda m: m.name.casefold())
        out.sort(key=key, reverse=not comp.get("isAscending", True))
    return out


def query_ids(ctx: Context, args: dict) -> list[str]:
    pk = c.account(ctx, args)
    filt = args.get("filter")
    tree = c.walk_filter(filt, _leaf) if filt is not None else None
    comparators = c.sort_list(args, ("sortOrder", "name"))
    as_tree, filter_as_tree = c.boolean(args, "sortAsTree"), c.boolean(args, "filterAsTree")
    everything = list(Mailbox.objects.filter(account_id=pk))
    by_pk = {m.pk: m for m in everything}
    matches = {m.pk for m in everything if tree is None or c.evaluate(tree, m)}
    if filter_as_tree:
        # RFC 8621 §2.3: a mailbox matches only if its parents all match too.
        def chain_ok(m):
            seen = set()
            while m is not None and m.pk not in seen:
                if m.pk not in matches:
                    return False
                seen.add(m.pk)
                m = by_pk.get(m.parent_id)
            return True
        matches = {pk for pk in matches if chain_ok(by_pk[pk])}
    ordered = _sorted([m for m in everything if m.pk in matches], comparators)
    if as_tree:
        children: dict = {}
        for m in _sorted(everything, comparators):
            children.setdefault(m.parent_id, []).append(m)
        tree_order, stack = [], list(reversed(children.get(None, [])))
        while stack:
            m = stack.pop()
            tree_order.append(m)
            stack.extend(reversed(children.get(m.pk, [])))
        ordered = [m for m in tree_order if m.pk in matches]
    return [ids.encode(m.pk) for m in ordered]


@method("Mailbox/query", c.MAIL, account_optional=False, transactional=False)
def mailbox_query(ctx: Context, args: dict) -> dict:
    ctx.require("jmapMailboxQuery")
    pk = c.account(ctx, args)
    state = journal.state(pk, store.MAILBOX)
    found = query_ids(ctx, args)
    return c.query_result(ctx, args, pk, state, found)


c.guarded(query_changes_method("Mailbox/queryChanges", store.MAILBOX, c.MAIL, results=query_ids),
          "jmapMailboxQueryChanges")


# --- set ----------------------------------------------------------------------------------
def _refuse(type: str, description: str, *properties) -> store.StoreError:
    return store.StoreError(type, description, list(properties) or None)


def _apply(ctx: Context, pk: int, mb: Mailbox, values: dict, created_here: dict) -> None:
    if not isinstance(values, dict):
        raise _refuse("invalidArguments", "A mailbox must be an object.")
    for key in values:
        if key not in SETTABLE:
            raise _refuse("invalidProperties",
                          f"{key[:64]} is set by the server." if key in PROPERTIES else f"Unknown property {key[:64]}.",
                          key[:64])
    if "name" in values:
        name = values["name"]
        if (not isinstance(name, str) or not name.strip() or len(name) > c.MAX_MAILBOX_NAME
                or any(ord(ch) < 0x20 or ord(ch) == 0x7f for ch in name)):
            raise _refuse("invalidProperties", f"The name must be 1 to {c.MAX_MAILBOX_NAME} printable characters.",
                          "name")
        mb.name = name
    if "parentId" in values:
        parent = values["parentId"]
        if parent is None:
            mb.parent_id = None
        else:
            resolved = ctx.resolve_creation_id(parent) if isinstance(parent, str) else None
            ppk = ids.decode(resolved) if resolved else None
            if ppk is None or not Mailbox.objects.filter(account_id=pk, pk=ppk).exists():
                raise _refuse("invalidProperties", "The parent mailbox does not exist.", "parentId")
            # A cycle: the new parent may not be the mailbox itself or one of its descendants.
            node, depth, seen = ppk, 1, set()
            while node is not None:
                if mb.pk is not None and node == mb.pk:
                    raise _refuse("invalidProperties", "A mailbox cannot be its own ancestor.", "parentId")
                if node in seen:
                    break
                seen.add(node)
                depth += 1
                node = Mailbox.objects.filter(pk=node).values_list("parent_id", flat=True).first()
            if depth > c.MAX_MAILBOX_DEPTH:
                raise _refuse("invalidProperties", f"Mailboxes nest at most {c.MAX_MAILBOX_DEPTH} deep.", "parentId")
            mb.parent_id = ppk
    if "role" in values:
        role = values["role"]
        if role is not None and (not isinstance(role, str) or role not in Mailbox.ROLES):
            raise _refuse("invalidProperties", "Unknown role.", "role")
        if role is not None and Mailbox.objects.filter(account_id=pk, role=role).exclude(pk=mb.pk).exists():
            raise _refuse("invalidProperties", f"Another mailbox has the role {role}.", "role")
        mb.role = role
    if "sortOrder" in values:
        value = values["sortOrder"]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**31:
            raise _refuse("invalidProperties", "sortOrder must be an unsigned integer.", "sortOrder")
        mb.sort_order = value
    if "isSubscribed" in values:
        if not isinstance(values["isSubscribed"], bool):
            raise _refuse("invalidProperties", "isSubscribed must be a boolean.", "isSubscribed")
        mb.is_subscribed = values["isSubscribed"]


def _save(mb: Mailbox) -> None:
    try:
        with transaction.atomic():
            # An update writes only what a client sets: the counters are the store's (a
            # concurrent import may have moved them since this row was read).
            mb.save(update_fields=None if mb._state.adding else EDITABLE_COLUMNS)
    except IntegrityError:
        raise _refuse("invalidProperties", "A sibling mailbox has this name.", "name") from None


def _destroy(pk: int, mb: Mailbox, remove_emails: bool, touched: store.Touched) -> None:
    if Mailbox.objects.filter(parent_id=mb.pk).exists():
        raise _refuse("mailboxHasChild", "The mailbox has child mailboxes.")
    members = Membership.objects.filter(mailbox=mb)
    if members.exists():
        if not remove_emails:
            raise _refuse("mailboxHasEmail", "The mailbox holds emails.")
        email_pks = list(members.values_list("email_id", flat=True))
        # Emails only in this mailbox are destroyed; the others just leave it (RFC 8621 §2.5).
        elsewhere = set()
        for some in in_slices(email_pks):
            elsewhere.update(Membership.objects.filter(email_id__in=some).exclude(mailbox=mb)
                             .values_list("email_id", flat=True))
        only_here = []
        for some in in_slices(sorted(set(email_pks) - elsewhere)):
            only_here.extend(Email.objects.filter(pk__in=some))
        store.destroy_emails(pk, only_here, touched)
        touched.emails["updated"].extend(ids.encode(e) for e in elsewhere)
        members.delete()
    touched.mailboxes["destroyed"].append(ids.encode(mb.pk))
    mb.delete()


@method("Mailbox/set", c.MAIL, account_optional=False)
def mailbox_set(ctx: Context, args: dict) -> dict:
    pk, create, update, destroy, out = c.begin_set(ctx, args, store.MAILBOX)
    old_state = out["oldState"]
    remove_emails = c.boolean(args, "onDestroyRemoveEmails")
    touched = store.Touched()
    for cid, values in create.items():
        try:
            with transaction.atomic():
                mb = Mailbox(account_id=pk, name="", is_subscribed=False)
                if isinstance(values, dict) and "name" not in values:
                    raise _refuse("invalidProperties", "A mailbox needs a name.", "name")
                _apply(ctx, pk, mb, values, {})
                _save(mb)
        except store.StoreError as exc:
            out["notCreated"][cid] = exc.to_json()
            continue
        new_id = ids.encode(mb.pk)
        ctx.created_ids[cid] = new_id
        touched.mailboxes["created"].append(new_id)
        out["created"][cid] = {"id": new_id, **_json(mb, ("myRights", *COUNTS))}
    for mid, values in update.items():
        mpk = ids.decode(ctx.resolve_creation_id(mid) or "")
        mb = Mailbox.objects.filter(account_id=pk, pk=mpk).first() if mpk is not None else None
        if mb is None:
            out["notUpdated"][mid] = {"type": "notFound", "description": "No such mailbox."}
            continue
        try:
            with transaction.atomic():
                _apply(ctx, pk, mb, values, {})
                _save(mb)
        except store.StoreError as exc:
            out["notUpdated"][mid] = exc.to_json()
            continue
        touched.mailboxes["updated"].append(ids.encode(mb.pk))
        out["updated"][mid] = None
    for mid in destroy:
        mpk = ids.decode(ctx.resolve_creation_id(mid) or "")
        mb = Mailbox.objects.filter(account_id=pk, pk=mpk).first() if mpk is not None else None
        if mb is None:
            out["notDestroyed"][mid] = {"type": "notFound", "description": "No such mailbox."}
            continue
        local = store.Touched()
        try:
            with transaction.atomic():
                _destroy(pk, mb, remove_emails, local)
        except store.StoreError as exc:
            out["notDestroyed"][mid] = exc.to_json()
            continue
        for name in ("emails", "threads", "mailboxes"):
            for kind, listed in getattr(local, name).items():
                getattr(touched, name)[kind].extend(listed)
        out["destroyed"].append(mid)
    states = touched.record(pk)
    out["newState"] = states.get(store.MAILBOX, old_state)
    for key in ("created", "updated", "notCreated", "notUpdated", "notDestroyed"):
        if not out[key]:
            out[key] = None
    if not out["destroyed"]:
        out["destroyed"] = None
    return out


