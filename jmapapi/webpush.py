"""JMAP push over Web Push (RFC 8620 §7.2 delivered as RFC 8030): what a process does after its
commits, for the push subscriptions of the accounts it changed.

- The journal tells this process, after each commit it made (`journal.notify.listen`), which
  states of which account moved. Nothing happens in the request: the change is queued and a
  thread of this module's own (`Dispatcher`) takes it from there. Only the process that
  committed a change hears of it, so each change is pushed once whatever the number of workers
  and nodes; there is no claim to take.
- An account without a verified subscription costs nothing: each worker keeps the set of accounts
  that have one, under a registry state that every verification and removal moves
  (`subscribed_accounts`), and a change of another account is dropped before it is queued.
- Changes of one account within WEBPUSH_THROTTLE_MS are coalesced into one StateChange; each
  verified, unexpired subscription of the account gets the types it asked for and may read.
- A message is POSTed (`stalwart_site.egress`: https only, public addresses only, no redirect
  followed), encrypted with RFC 8291 (aes128gcm, `http_ece`) when the subscription has keys,
  with a VAPID token (RFC 8292, `jwcrypto`, ES256) when a key is configured.
- A failed attempt (network, TLS, 3xx, 5xx, 408, 429) is retried after WEBPUSH_RETRY_WAIT_MS,
  doubled each time; after WEBPUSH_MAX_ATTEMPTS the subscription is removed. 404 and 410 (the
  push service forgot the subscription) and any other 4xx remove it at once.

Pending retries live in the process's memory: a process that stops loses them (the next change
of the account sends a newer StateChange anyway).
"""
from __future__ import annotations

import atexit
import base64
import functools
import heapq
import itertools
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import urllib3
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from journal import notify
from registry import context, ids, memo
from registry import services as registry_services
from stalwart_site import egress

from .models import PushSubscription

log = logging.getLogger(__name__)

VAPID_CAPABILITY = "urn:ietf:params:jmap:webpush-vapid"
# RFC 8292 §2: the token must expire within 24 hours; a fresh one is made for each request.
VAPID_LIFETIME = 12 * 3600


# --- base64url and keys -----------------------------------------------------------------------
def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """Strict base64url, padding optional; ValueError otherwise."""
    if not isinstance(text, str) or not text.isascii() or any(c in text for c in "+/ \t\r\n"):
        raise ValueError("not base64url")
    stripped = text.rstrip("=")
    return base64.b64decode(stripped + "=" * (-len(stripped) % 4), altchars=b"-_", validate=True)


def check_keys(p256dh: str, auth: str) -> None:
    """RFC 8291 §3: p256dh is an uncompressed P-256 point, auth 16 octets. ValueError otherwise."""
    point = b64url_decode(p256dh)
    if len(point) != 65 or point[0] != 4:
        raise ValueError("p256dh must be an uncompressed P-256 public key (65 octets).")
    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)  # ValueError when off the curve
    if len(b64url_decode(auth)) != 16:
        raise ValueError("auth must be 16 octets.")


def encrypt(payload: bytes, p256dh: str, auth: str) -> bytes:
    """The RFC 8291 aes128gcm body of `payload` for the subscription's keys."""
    # why: http_ece (and its cryptography backend) is loaded only by processes that push.
    import http_ece

    ephemeral = ec.generate_private_key(ec.SECP256R1())
    return http_ece.encrypt(payload, private_key=ephemeral, dh=b64url_decode(p256dh),
                            auth_secret=b64url_decode(auth), version="aes128gcm")


# --- VAPID ------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def vapid_key():
    """The configured VAPID private key (cryptography), or None. A key that cannot be read is
    logged and ignored: the server then pushes without VAPID, as without a key."""
    pem = settings.WEBPUSH_VAPID_KEY.replace("\\n", "\n")
    source = "WEBPUSH_VAPID_KEY"
    if not pem and settings.WEBPUSH_VAPID_KEY_FILE:
        source = settings.WEBPUSH_VAPID_KEY_FILE
        try:
            pem = Path(settings.WEBPUSH_VAPID_KEY_FILE).read_text()
        except OSError as exc:
            log.error("webpush: cannot read the VAPID key file %s (%s)", source, exc.__class__.__name__)
            return None
    if not pem:
        return None
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        log.error("webpush: the VAPID key in %s is not an unencrypted PEM private key", source)
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        log.error("webpush: the VAPID key in %s is not a P-256 key", source)
        return None
    return key


def application_server_key() -> str | None:
    """The VAPID public key as the session advertises it (base64url, uncompressed point)."""
    key = vapid_key()
    if key is None:
        return None
    return b64url(key.public_key().public_bytes(serialization.Encoding.X962,
                                                serialization.PublicFormat.UncompressedPoint))


def contact() -> str:
    if settings.WEBPUSH_CONTACT:
        return settings.WEBPUSH_CONTACT
    host = urlsplit(settings.PUBLIC_URL).hostname or settings.STALWART_DEFAULT_DOMAIN
    return f"mailto:postmaster@{host}"


def vapid_header(origin: str) -> str | None:
    """`Authorization: vapid t=…, k=…` (RFC 8292 §3) for a push service's origin, or None."""
    key = vapid_key()
    if key is None:
        return None
    # why: jwcrypto is loaded only when a token is signed.
    from jwcrypto import jwk, jwt

    token = jwt.JWT(header={"typ": "JWT", "alg": "ES256"},
                    claims={"aud": origin, "exp": int(time.time()) + VAPID_LIFETIME, "sub": contact()})
    token.make_signed_token(jwk.JWK.from_pyca(key))
    return f"vapid t={token.serialize()}, k={application_server_key()}"


# --- one message ------------------------------------------------------------------------------
SENT, RETRY, DROP = "sent", "retry", "drop"


def send(url: str, p256dh: str, auth: str, message: dict) -> str:
    """POST one message to a subscription's URL: SENT, RETRY (try again later) or DROP (the
    subscription is of no use any more)."""
    try:
        target = egress.resolve(url)
    except egress.Refused as exc:
        # A name that now resolves to a private address, or no longer resolves: tried again,
        # and removed with the other failures if it stays so.
        log.info("webpush: not sending to %s: %s", _origin_of(url), exc)
        return RETRY
    body = json.dumps(message, separators=(",", ":")).encode()
    headers = {"TTL": str(settings.WEBPUSH_TTL), "Content-Type": "application/json"}
    if p256dh and auth:
        body = encrypt(body, p256dh, auth)
        headers = {"TTL": str(settings.WEBPUSH_TTL), "Content-Type": "application/octet-stream",
                   "Content-Encoding": "aes128gcm"}
    authorization = vapid_header(target.origin)
    if authorization:
        headers["Authorization"] = authorization
    try:
        status = egress.post(target, body, headers, settings.WEBPUSH_TIMEOUT)
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        log.info("webpush: %s unreachable (%s)", target.origin, exc.__class__.__name__)
        return RETRY
    if 200 <= status < 300:
        return SENT
    if status in (408, 425, 429) or status >= 500 or 300 <= status < 400:
        log.info("webpush: %s answered %d", target.origin, status)
        return RETRY
    log.info("webpush: %s answered %d; the subscription is removed", target.origin, status)
    return DROP


def _origin_of(url: str) -> str:
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname}"
    except ValueError:
        return "?"


# --- the dispatcher ---------------------------------------------------------------------------
class Dispatcher:
    """This process's queue of pushes: one scheduling thread, a few sending threads."""

    def __init__(self, senders: int = 4):
        self._cond = threading.Condition()
        self._pending: dict[int, dict[str, int]] = {}   # account -> merged states not yet sent
        self._due: dict[int, float] = {}                 # account -> when its pending states go
        self._last: dict[int, float] = {}                # account -> when its last StateChange went
        self._jobs: list = []                             # heap of (due, seq, callable)
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._senders = senders
        self._pool: ThreadPoolExecutor | None = None
        self.busy = 0

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            if self._thread is None:
                atexit.register(self.flush)
            self._pool = ThreadPoolExecutor(max_workers=self._senders, thread_name_prefix="webpush")
            self._thread = threading.Thread(target=self._run, name="webpush-dispatch", daemon=True)
            self._thread.start()

    def flush(self) -> None:
        """At exit: push the changes still waiting, in this thread. A short-lived process
        (`manage.py deliver`) would otherwise end before its thread sent them; the sends
        already handed to the pool are finished by the pool's own exit handler."""
        with self._cond:
            batch, self._pending, self._due = self._pending, {}, {}
        for account_id, states in batch.items():
            try:
                deliver_changes(account_id, states)
            except Exception:
                log.exception("webpush: a delivery failed at exit")

    def changed(self, account_id: int, states: dict[str, int]) -> None:
        """journal.notify's listener: queue the account's new states (no I/O here)."""
        with self._cond:
            merged = self._pending.setdefault(account_id, {})
            for type, value in states.items():
                if value > merged.get(type, 0):
                    merged[type] = value
            if account_id not in self._due:
                throttle = max(settings.WEBPUSH_THROTTLE_MS, 0) / 1000
                self._due[account_id] = max(time.monotonic(), self._last.get(account_id, 0.0) + throttle)
            self._start()
            self._cond.notify()

    def later(self, delay: float, job) -> None:
        with self._cond:
            heapq.heappush(self._jobs, (time.monotonic() + delay, next(self._seq), job))
            self._start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                ready = [a for a, due in self._due.items() if due <= now]
                batch = {}
                for account_id in ready:
                    del self._due[account_id]
                    batch[account_id] = self._pending.pop(account_id)
                    self._last[account_id] = now
                jobs = []
                while self._jobs and self._jobs[0][0] <= now:
                    jobs.append(heapq.heappop(self._jobs)[2])
                if not batch and not jobs:
                    next_due = min([*self._due.values(), *(j[0] for j in self._jobs[:1])], default=None)
                    if len(self._last) > 10000:  # forget old throttle marks
                        self._last = {a: t for a, t in self._last.items() if now - t < 60}
                    self._cond.wait(None if next_due is None else max(next_due - now, 0.005))
                    continue
                self.busy += len(batch) + len(jobs)
            try:
                for account_id, states in batch.items():
                    self._pool.submit(self._task, deliver_changes, account_id, states)
                for job in jobs:
                    self._pool.submit(self._task, job)
            except RuntimeError:  # the interpreter is exiting: flush() sends what is pending
                with self._cond:
                    for account_id, states in batch.items():
                        self._pending.setdefault(account_id, {}).update(states)
                return

    def _task(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("webpush: a delivery failed")
        finally:
            # A sending thread holds no database connection between messages.
            connection.close()
            with self._cond:
                self.busy -= 1

    def idle(self) -> bool:
        with self._cond:
            return not self._pending and not self._jobs and self.busy == 0


dispatcher = Dispatcher()


# --- which accounts have subscriptions -------------------------------------------------------
# A registry state that every change to the set of verified subscriptions moves (a verification,
# a destroy, a drop): every worker and process keeps the set below under it and builds it again
# (in its sending thread) when it moved. Every request reads it at its edge with the others, in
# the one query it makes.
STATE = "PushSubscriptionAccounts"
context.needs(STATE)
_MEMO = "webpush.accounts"


def subscriptions_changed() -> None:
    """Move STATE; call it inside the transaction that changes which accounts have a verified
    subscription."""
    registry_services.bump_state(STATE)


def subscribed_accounts() -> frozenset[int]:
    """The accounts with a verified subscription, kept in the worker under STATE (one query each
    time it moves). A superset: a subscription that merely expired stays counted until the next
    change, which costs a needless read of its account's subscriptions, never a missed push."""
    token = context.states(STATE)[STATE]
    return memo.get(_MEMO, token, lambda: frozenset(
        PushSubscription.objects.filter(verified=True).values_list("account_id", flat=True).distinct()))


def changed(account_id: int, states: dict[str, int]) -> None:
    """journal.notify's listener, in the committing thread: it must make no query. In a request
    (HTTP or WebSocket) the edge has read STATE with the others, so while the worker's set is
    current an account outside it is dropped here, before it is queued. Otherwise (no request:
    LMTP, commands; or the set not built under this state yet) the sending thread looks, and
    builds the set (deliver_changes)."""
    ctx = context.current()
    if ctx is not None and STATE in ctx.states:
        known = memo.peek(_MEMO, ctx.states[STATE])
        if known is not None and account_id not in known:
            return
    dispatcher.changed(account_id, states)


def install() -> None:
    notify.listen(changed)


# --- what the sending threads do --------------------------------------------------------------
def state_change(sub, account_key: str, states: dict[str, int]) -> dict | None:
    """The StateChange `sub` gets for these states of its account, or None when it asked for
    none of them (or may read none)."""
    readable = set(sub.readable)
    wanted = {t: str(v) for t, v in sorted(states.items())
              if t in readable and (sub.types is None or t in sub.types)}
    if not wanted:
        return None
    return {"@type": "StateChange", "changed": {account_key: wanted}}


def deliver_changes(account_id: int, states: dict[str, int]) -> None:
    if account_id not in subscribed_accounts():
        return
    now = timezone.now()
    subs = list(PushSubscription.objects.filter(account_id=account_id, verified=True, expires__gt=now)
                .order_by("pk"))
    account_key = ids.encode(account_id)
    for sub in subs:
        message = state_change(sub, account_key, states)
        if message is not None:
            attempt(sub.pk, message, 1)


def verify(sub_id: int) -> None:
    """POST the PushVerification of a new subscription (RFC 8620 §7.2.2)."""
    sub = PushSubscription.objects.filter(pk=sub_id, verified=False).first()
    if sub is None:
        return
    attempt(sub.pk, {"@type": "PushVerification", "pushSubscriptionId": ids.encode(sub.pk),
                     "verificationCode": sub.verification_code}, 1)


def attempt(sub_id: int, message: dict, number: int) -> None:
    """One attempt to send `message` to subscription `sub_id` (read again: it may have been
    destroyed, have expired or changed its URL meanwhile)."""
    sub = PushSubscription.objects.filter(pk=sub_id, expires__gt=timezone.now()).first()
    if sub is None:
        return
    outcome = send(sub.url, sub.p256dh, sub.auth, message)
    if outcome == SENT:
        return
    if outcome == RETRY and number < settings.WEBPUSH_MAX_ATTEMPTS:
        wait = max(settings.WEBPUSH_RETRY_WAIT_MS, 0) / 1000 * 2 ** (number - 1)
        dispatcher.later(wait, functools.partial(attempt, sub_id, message, number + 1))
        return
    log.info("webpush: subscription %s of account %s removed after %d attempt(s)", sub.pk, sub.account_id, number)
    with transaction.atomic():
        PushSubscription.objects.filter(pk=sub.pk).delete()
        subscriptions_changed()
