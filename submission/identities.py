"""Identities (RFC 8621 §6): the service every face uses. Authorization is decided here: an
identity belongs to one account and is reached only through it, and its address must be one the
account may send as (`addresses`), checked again at every submission (`senders`)."""
from __future__ import annotations

from django.db import IntegrityError, transaction

from accounts.models import Account
from journal import services as journal
from registry import ids
from registry.errors import Forbidden, InvalidPatch, InvalidProperties, NotFound, SetError

from . import addresses
from .models import Identity

TYPE = "Identity"
MAX_NAME = 255
MAX_SIGNATURE = 65_536
MAX_ADDRESS_LIST = 100
# Properties a client may write; `id` and `mayDelete` are the server's.
WRITABLE = {"name": "name", "email": "email", "replyTo": "reply_to", "bcc": "bcc",
            "textSignature": "text_signature", "htmlSignature": "html_signature"}
PROPERTIES = ("id", "name", "email", "replyTo", "bcc", "textSignature", "htmlSignature", "mayDelete")


class ForbiddenFrom(SetError):
    """RFC 8621 §6.3 and §7.5: the account may not send as this address."""

    type = "forbiddenFrom"


def to_json(identity: Identity) -> dict:
    return {"id": ids.encode(identity.pk), "name": identity.name, "email": identity.email,
            "replyTo": identity.reply_to, "bcc": identity.bcc, "textSignature": identity.text_signature,
            "htmlSignature": identity.html_signature, "mayDelete": not identity.is_default}


def ensure_default(account_id: int) -> None:
    """Give the account its identity for its own address, the first time anything reads them.

    Two first reads racing both try; the partial unique index lets one win and the other finds
    it. The identity is journalled like any other creation, so a client's /changes sees it."""
    if Identity.objects.filter(account_id=account_id, is_default=True).exists():
        return
    account = Account.objects.filter(pk=account_id).first()
    if account is None:
        return
    try:
        with transaction.atomic():
            identity = Identity.objects.create(account=account, name=account.description or account.name,
                                               email=account.email_address, is_default=True)
            journal.record(account.pk, TYPE, created=[ids.encode(identity.pk)])
    except IntegrityError:
        pass


def visible(account_id: int):
    """The account's identities: the one queryset every read starts from."""
    return Identity.objects.filter(account_id=account_id)


def load(account_id: int, identity_id) -> Identity:
    """The account's identity `identity_id`, locked for a write; another account's is notFound."""
    pk = ids.decode(identity_id)
    identity = None if pk is None else visible(account_id).select_for_update().filter(pk=pk).first()
    if identity is None:
        raise NotFound(f"Identity {identity_id} not found.")
    return identity


# --- values ---------------------------------------------------------------------------------
def _text(prop: str, value, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidProperties(f'"{prop}" must be a string of at most {limit} characters.', properties=[prop])
    return value


def _address_list(prop: str, value):
    """null or a list of EmailAddress objects (RFC 8621 §4.1.2.3): {"name": String|null, "email": String}."""
    if value is None:
        return None
    bad = InvalidProperties(f'"{prop}" must be null or a list of at most {MAX_ADDRESS_LIST} '
                            '{"name", "email"} objects with valid addresses.', properties=[prop])
    if not isinstance(value, list) or len(value) > MAX_ADDRESS_LIST:
        raise bad
    out = []
    for item in value:
        if not isinstance(item, dict) or set(item) - {"name", "email"} or not addresses.is_address(item.get("email")):
            raise bad
        name = item.get("name")
        if name is not None and (not isinstance(name, str) or len(name) > MAX_NAME):
            raise bad
        out.append({"name": name, "email": item["email"]})
    return out


def _clean(prop: str, value):
    if prop == "name":
        return _text(prop, value, MAX_NAME)
    if prop in ("textSignature", "htmlSignature"):
        return _text(prop, value, MAX_SIGNATURE)
    if prop in ("replyTo", "bcc"):
        return _address_list(prop, value)
    raise AssertionError(prop)


def _check_properties(values: dict, *, current: Identity | None) -> None:
    for prop in values:
        if prop in WRITABLE:
            continue
        if current is not None and prop == "id" and values[prop] == ids.encode(current.pk):
            continue
        # A server-set value given as the server would set it is accepted (clients such as jmapc
        # send their whole object back); any other value is the client's mistake.
        if prop == "mayDelete" and values[prop] is (current is None or not current.is_default):
            continue
        reason = "is set by the server" if prop in ("id", "mayDelete") else "is not an Identity property"
        raise InvalidProperties(f'"{prop}" {reason}.', properties=[prop])


# --- writes ---------------------------------------------------------------------------------
def create(account: Account, values: dict) -> Identity:
    """Create an identity from a JMAP object; raises a SetError. Journals it."""
    if not isinstance(values, dict):
        raise InvalidProperties("An Identity must be an object.")
    _check_properties(values, current=None)
    email = values.get("email")
    if not isinstance(email, str) or not email:
        raise InvalidProperties('"email" is required and must be an address.', properties=["email"])
    if email.rpartition("@")[0] != addresses.WILDCARD and not addresses.is_address(email):
        raise InvalidProperties('"email" is not a valid address.', properties=["email"])
    if not addresses.may_use_identity_email(account, email):
        raise ForbiddenFrom(f"You are not allowed to send as {email}.")
    fields = {WRITABLE[prop]: _clean(prop, value) for prop, value in values.items()
              if prop in WRITABLE and prop != "email"}
    identity = Identity.objects.create(account=account, email=email, **fields)
    journal.record(account.pk, TYPE, created=[ids.encode(identity.pk)])
    return identity


def update(account_id: int, identity_id, patch: dict) -> Identity:
    """Apply a patch of top-level properties; `email` cannot change (RFC 8621 §6: immutable)."""
    if not isinstance(patch, dict):
        raise InvalidPatch("A patch must be an object.")
    identity = load(account_id, identity_id)
    # Paths into a property ("replyTo/0/name") are not taken: each property is written whole.
    nested = sorted(p for p in patch if "/" in p)
    if nested:
        raise InvalidProperties(f'"{nested[0]}": write the whole property, not a path into it.',
                                properties=[nested[0]])
    _check_properties(patch, current=identity)
    if "email" in patch and patch["email"] != identity.email:
        raise InvalidProperties('"email" cannot be changed: create another identity.', properties=["email"])
    changed = []
    for prop, value in patch.items():
        if prop in WRITABLE and prop != "email":
            setattr(identity, WRITABLE[prop], _clean(prop, value))
            changed.append(WRITABLE[prop])
    if changed:
        identity.save(update_fields=changed)
    # Journalled even when nothing changed, so that each update a client is told of moves the
    # state by one (the /set's ifInState check counts on it).
    journal.record(account_id, TYPE, updated=[ids.encode(identity.pk)])
    return identity


def destroy(account_id: int, identity_id) -> None:
    identity = load(account_id, identity_id)
    if identity.is_default:
        raise Forbidden("The identity of the account's own address cannot be destroyed (mayDelete is false).")
    object_id = ids.encode(identity.pk)
    identity.delete()
    journal.record(account_id, TYPE, destroyed=[object_id])

