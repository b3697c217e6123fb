"""The JMAP protocol engine (RFC 8620 §3): envelope, dispatch, result references, errors.

Methods register themselves in METHODS with the capability they belong to; the engine knows
nothing of what they do. Every data type added later (mail, calendars, contacts) plugs in the
same way.
"""
from __future__ import annotations

import copy
import functools
import logging
import zlib
from dataclasses import dataclass, field
from typing import Callable

from django.db import OperationalError, transaction

from accounts.models import Account
from registry import ids
from stalwart_site import dbretry, untrusted
from telemetry.metrics import jmap_call

log = logging.getLogger(__name__)

CORE = "urn:ietf:params:jmap:core"
STALWART = "urn:stalwart:jmap"
# Every capability the reference knows; a request may name any of them in `using`.
KNOWN_CAPABILITIES = (
    CORE, "urn:ietf:params:jmap:mail", "urn:ietf:params:jmap:calendars", "urn:ietf:params:jmap:calendars:parse",
    "urn:ietf:params:jmap:contacts", "urn:ietf:params:jmap:contacts:parse", "urn:ietf:params:jmap:filenode",
    "urn:ietf:params:jmap:principals", "urn:ietf:params:jmap:principals:availability",
    "urn:ietf:params:jmap:principals:owner", "urn:ietf:params:jmap:submission",
    "urn:ietf:params:jmap:vacationresponse", "urn:ietf:params:jmap:sieve", "urn:ietf:params:jmap:blob",
    "urn:ietf:params:jmap:quota", "urn:ietf:params:jmap:emailpush", "urn:ietf:params:jmap:websocket",
    "urn:ietf:params:jmap:mail:share", "urn:ietf:params:jmap:webpush-vapid", STALWART,
)
MAX_REFERENCE_DEPTH = 5


class RequestError(Exception):
    """A request-level error (RFC 8620 §3.6.1), answered as problem+json."""

    def __init__(self, type: str, detail: str, status: int = 400, **extra):
        super().__init__(detail)
        self.type, self.detail, self.status, self.extra = type, detail, status, extra


class MethodError(Exception):
    """A method-level error (RFC 8620 §3.6.2): the call's response is ["error", {...}, id]."""

    def __init__(self, type: str, description: str = ""):
        super().__init__(description)
        self.type, self.description = type, description

    def to_json(self) -> dict:
        out = {"type": self.type}
        if self.description:
            out["description"] = self.description
        return out


def invalid_arguments(description: str) -> MethodError:
    return MethodError("invalidArguments", description)


def set_arguments(args: dict) -> tuple[dict, dict, list]:
    """The create, update and destroy arguments of any /set (RFC 8620 §5.3), checked for shape."""
    create, update, destroy = args.get("create"), args.get("update"), args.get("destroy")
    if create is not None and not isinstance(create, dict):
        raise invalid_arguments('"create" must be an object.')
    if update is not None and not isinstance(update, dict):
        raise invalid_arguments('"update" must be an object.')
    if destroy is not None and not (isinstance(destroy, list) and all(isinstance(d, str) for d in destroy)):
        raise invalid_arguments('"destroy" must be an array of ids.')
    return create or {}, update or {}, destroy or []


def check_set_size(ctx, create: dict, update: dict, destroy: list) -> None:
    if len(create) + len(update) + len(destroy) > ctx.limits.set_max_objects:
        raise MethodError("requestTooLarge", f"At most {ctx.limits.set_max_objects} objects may be set at once.")


@dataclass
class Method:
    name: str
    fn: Callable
    # The capability `using` must name; a tuple when any one of several will do.
    capability: str | tuple[str, ...]
    # Methods that always act on the caller's own data may omit accountId.
    account_optional: bool = True
    # Whether the call runs in a transaction of its own. Only methods that touch no data may
    # go without: on SQLite every transaction takes the database's write lock.
    transactional: bool = True


METHODS: dict[str, Method] = {}


def method(name: str, capability: str | tuple[str, ...] = CORE, account_optional: bool = True,
           transactional: bool = True):
    def register(fn):
        METHODS[name] = Method(name, fn, capability, account_optional, transactional)
        return fn

    return register


@dataclass
class Context:
    """What a method may know about the request it serves."""

    principal: object
    limits: object
    using: list[str]
    created_ids: dict[str, str] = field(default_factory=dict)
    account_id: str = ""
    may_hold_nul: bool = False
    # Implicit calls a method asks for, answered right after it under the same call id
    # (RFC 8621 §7.5: EmailSubmission/set's onSuccessUpdateEmail is an implicit Email/set).
    implicit_calls: list[tuple[str, dict]] = field(default_factory=list)

    def require(self, permission: str) -> None:
        if not self.principal.has(permission):
            raise MethodError("forbidden", "You are not authorized to perform this action")

    def then_call(self, name: str, args: dict) -> None:
        """Have the engine run `name` with `args` after this call, its response following
        this call's under the same call id."""
        self.implicit_calls.append((name, args))

    def resolve_creation_id(self, value: str) -> str | None:
        """'#cid' -> the id created for cid in this request (or given in createdIds)."""
        return self.created_ids.get(value[1:]) if value.startswith("#") else value


# --- parsing --------------------------------------------------------------------------------
# The reference's JSON parser refuses documents nested deeper than this (serde_json's limit).
MAX_NESTING = untrusted.MAX_DEPTH


class Request(dict):
    """The parsed envelope; may_hold_nul says whether method arguments need the NUL check."""

    may_hold_nul = False


def parse(body: bytes, limits) -> Request:
    if len(body) > limits.max_request_size:
        raise RequestError("urn:ietf:params:jmap:error:limit", "The request is larger than the server accepts.",
                           limit="maxSizeRequest")
    try:
        request = untrusted.loads(body, max_depth=MAX_NESTING, allow_nul=True)
    except untrusted.UntrustedJSONError as exc:
        if exc.reason == "depth":
            raise RequestError("urn:ietf:params:jmap:error:notJSON",
                               f"The request body is nested more than {MAX_NESTING} levels deep.") from None
        raise RequestError("urn:ietf:params:jmap:error:notJSON", f"The request body is not I-JSON: {exc}") from None
    return check(request, limits, untrusted.may_hold_nul(body))


def check(request, limits, may_hold_nul: bool) -> Request:
    """A parsed request envelope checked for shape and limits (HTTP's body, or the Request of a
    WebSocket message without its @type and id); RequestError when it is not one."""
    if not isinstance(request, dict):
        raise RequestError("urn:ietf:params:jmap:error:notRequest", "The request must be a JSON object.")
    using, calls = request.get("using"), request.get("methodCalls")
    if not isinstance(using, list) or not all(isinstance(u, str) for u in using):
        raise RequestError("urn:ietf:params:jmap:error:notRequest", '"using" must be an array of strings.')
    if not isinstance(calls, list):
        raise RequestError("urn:ietf:params:jmap:error:notRequest", '"methodCalls" must be an array.')
    unknown = [u for u in using if u not in KNOWN_CAPABILITIES]
    if unknown:
        raise RequestError("urn:ietf:params:jmap:error:unknownCapability",
                           f"Unknown capability: {unknown[0]}.")
    if len(calls) > limits.max_method_calls:
        raise RequestError("urn:ietf:params:jmap:error:limit",
                           f"The request exceeds the maximum of {limits.max_method_calls} method calls.",
                           limit="maxCallsInRequest")
    for i, call in enumerate(calls):
        if not (isinstance(call, list) and len(call) == 3 and isinstance(call[0], str)
                and isinstance(call[1], dict) and isinstance(call[2], str)):
            raise RequestError("urn:ietf:params:jmap:error:notRequest",
                               f"methodCalls[{i}] must be [name, arguments object, call id].")
    created = request.get("createdIds")
    if created is not None and not (isinstance(created, dict)
                                    and all(isinstance(k, str) and isinstance(v, str) for k, v in created.items())):
        raise RequestError("urn:ietf:params:jmap:error:notRequest", '"createdIds" must map strings to ids.')
    request = Request(request)
    request.may_hold_nul = may_hold_nul
    return request


# --- result references (RFC 8620 §3.7) ------------------------------------------------------
def _pointer(value, path: str):
    if path == "":
        return value
    if not path.startswith("/"):
        raise MethodError("invalidResultReference", f"Invalid JSON pointer {path!r}.")
    parts = [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]
    return _walk(value, parts, path)


def _walk(value, parts, path):
    if not parts:
        return value
    head, rest = parts[0], parts[1:]
    if head == "*" and isinstance(value, list):
        out = []
        for item in value:
            got = _walk(item, rest, path)
            out.extend(got) if isinstance(got, list) else out.append(got)
        return out
    if isinstance(value, dict) and head in value:
        return _walk(value[head], rest, path)
    if isinstance(value, list) and head.isdigit() and int(head) < len(value):
        return _walk(value[int(head)], rest, path)
    raise MethodError("invalidResultReference", f"Path {path} does not exist in the referenced result.")


def resolve_references(args: dict, responses: list) -> dict:
    out = {}
    for key, value in args.items():
        if not key.startswith("#"):
            continue
        name = key[1:]
        if name in args:
            raise invalid_arguments(f"Both {name} and #{name} are given.")
        if not (isinstance(value, dict) and isinstance(value.get("resultOf"), str)
                and isinstance(value.get("name"), str) and isinstance(value.get("path"), str)):
            raise MethodError("invalidResultReference", f"#{name} must be a ResultReference object.")
        for resp_name, resp_args, resp_id in responses:
            if resp_id == value["resultOf"] and resp_name == value["name"]:
                out[name] = _pointer(resp_args, value["path"])
                break
        else:
            raise MethodError("invalidResultReference",
                              f"Result reference to {value['resultOf']}#{value['name']} not found.")
    if not out:
        return args
    return {**{k: v for k, v in args.items() if not k.startswith("#")}, **out}


# --- dispatch -------------------------------------------------------------------------------
def run(request: dict, principal, limits) -> dict:
    # The method table is built on first use, once every app has declared its objects (oauth's
    # come after jmapapi's); and methods builds on this module, so it is reached at call time.
    from .methods import install

    install()
    using = request["using"]
    ctx = Context(principal=principal, limits=limits, using=using,
                  created_ids=dict(request.get("createdIds") or {}), account_id=ids.encode(principal.account_id),
                  may_hold_nul=getattr(request, "may_hold_nul", True))
    responses: list = []
    for name, args, call_id in request["methodCalls"]:
        produced = _call(ctx, name, args, call_id, responses)
        responses.extend(produced)
        jmap_call(name, produced[0])
    out = {"methodResponses": responses, "sessionState": session_state(principal)}
    if "createdIds" in request:
        out["createdIds"] = ctx.created_ids
    return out


def _call(ctx: Context, name: str, args: dict, call_id: str, responses: list, *, implicit: bool = False) -> list:
    entry = METHODS.get(name.replace("\\/", "/"))
    if entry is None:
        return [["error", {"type": "unknownMethod", "description": f"Unknown method {name}."}, call_id]]
    needed = entry.capability if isinstance(entry.capability, tuple) else (entry.capability,)
    # An implicit call is part of the method that asked for it, whose capability was checked.
    if not implicit and STALWART not in needed and not any(c in ctx.using for c in needed):
        return [["error", {"type": "unknownMethod", "description":
                           f"Method {name} requires capability {' or '.join(needed)} which is not present in the "
                           '"using" property.'}, call_id]]
    try:
        args = resolve_references(args, responses)
        if ctx.may_hold_nul:
            # PostgreSQL refuses NUL in text: refused here, once, before any method sees it.
            path = untrusted.find_nul(args)
            if path is not None:
                raise invalid_arguments(f"The argument at {untrusted.printable_path(path)} holds a NUL character "
                                        "(U+0000), which is not accepted.")
        account_id = args.get("accountId")
        if account_id is None:
            if not entry.account_optional:
                raise invalid_arguments('The "accountId" property is required.')
        elif not isinstance(account_id, str) or ids.decode(account_id) is None:
            raise MethodError("accountNotFound", "The account id is not valid.")
        elif account_id != ctx.account_id and not (ctx.principal.has("impersonate")
                                                   and _account_exists(ids.decode(account_id))):
            raise MethodError("accountNotFound", f"Account {account_id} does not exist or is not yours.")
        result = _run(ctx, entry, args)
    except MethodError as exc:
        ctx.implicit_calls.clear()
        return [["error", exc.to_json(), call_id]]
    except Exception:  # noqa: BLE001 - a bug must cost one call, not the request
        log.exception("JMAP method %s failed", name)
        ctx.implicit_calls.clear()
        return [["error", {"type": "serverFail", "description": "The server failed to process this call."}, call_id]]
    out = [[entry.name, result, call_id]]
    implicit_calls, ctx.implicit_calls = ctx.implicit_calls, []
    for implicit_name, implicit_args in implicit_calls:
        out.extend(_call(ctx, implicit_name, implicit_args, call_id, [*responses, *out], implicit=True))
    return out


def _run(ctx: Context, entry: Method, args: dict):
    """The method in its own transaction; run again, from a fresh copy of its arguments, when
    PostgreSQL rolled the transaction back to break a deadlock with another request (two
    Email/set calls locking the same mailboxes in opposite orders): both requests succeed, one
    a few milliseconds later. Still failing after the last attempt, the call answers
    serverUnavailable (RFC 8620 §3.6.2: try again later), not serverFail."""
    if not entry.transactional:
        return entry.fn(ctx, args)
    if not dbretry.possible():  # SQLite: no copy of the arguments for a retry that cannot come
        with transaction.atomic():
            return entry.fn(ctx, args)
    for attempt in dbretry.attempts():
        created_ids = dict(ctx.created_ids)
        try:
            with transaction.atomic():
                return entry.fn(ctx, copy.deepcopy(args))
        except OperationalError as exc:
            ctx.created_ids.clear()
            ctx.created_ids.update(created_ids)
            ctx.implicit_calls.clear()
            if attempt.again(exc):
                log.info("JMAP method %s: transaction rolled back by the database (%s), running it again",
                         entry.name, getattr(exc.__cause__, "sqlstate", "?"))
                continue
            if dbretry.transient(exc):
                raise MethodError("serverUnavailable", "The server is busy; try again later.") from None
            raise
    raise AssertionError("unreachable: the last attempt returns or raises")


def _account_exists(pk: int) -> bool:
    return Account.objects.filter(pk=pk).exists()


def session_state(principal) -> str:
    """Changes when what the session document shows changes (the account and its permissions)."""
    permissions = principal.permissions
    if not isinstance(permissions, frozenset):
        permissions = frozenset(permissions)
    # Keyed by the set's identity: cached verdicts share one set per list of permissions
    # (accounts.http_auth), and an lru_cache keyed by the set itself compared the ~660 names of
    # an administrator's set with the first one it saw, another object, on every request.
    key = (principal.account_id, principal.name, id(permissions))
    hit = _states.get(key)
    if hit is not None and hit[0] is permissions:
        return hit[1]
    if len(_states) >= 1024:
        _states.clear()
    state = _session_state(principal.account_id, principal.name, permissions)
    _states[key] = (permissions, state)  # the set is held, so its id is not reused meanwhile
    return state


_states: dict[tuple[int, str, int], tuple[frozenset[str], str]] = {}


@functools.lru_cache(maxsize=1024)
def _session_state(account_id: int, name: str, permissions: frozenset[str]) -> str:
    # Sorting an administrator's ~660 permissions is most of the cost: done once per set.
    basis = f"{account_id}:{name}:{','.join(sorted(permissions))}"
    return f"{zlib.crc32(basis.encode()):08x}"


@method("Core/echo", transactional=False)
def core_echo(ctx: Context, args: dict) -> dict:
    ctx.require("jmapCoreEcho")
    return args
