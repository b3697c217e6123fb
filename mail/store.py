"""The mail store's services: every write to mailboxes, emails and threads goes through here,
in the caller's transaction, with its journal entries (Email, Mailbox, Thread) in the same one.

It knows no protocol: the JMAP face (mail.jmap_mailbox, mail.jmap_email) translates arguments
and refusals; LMTP and `deliver` will call `import_raw()`. Messages are parsed once, here.
"""
from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from blobs import services as blobs
from fulltext import services as ft
from journal import services as journal
from registry import ids
from stalwart_site.inserts import Insert
from stalwart_site.sqlparams import in_slices

from . import headers as h
from . import mime
from . import search as search_seam
from .models import Email, Keyword, Mailbox, Membership, Thread, ThreadKey

EMAIL, MAILBOX, THREAD = "Email", "Mailbox", "Thread"
OWNER = "email"  # the blob store's owner kind of a message's raw octets
# The role mailboxes every account gets, in the order a client lists them.
ROLE_MAILBOXES = (("inbox", "Inbox"), ("drafts", "Drafts"), ("sent", "Sent Items"), ("archive", "Archive"),
                  ("junk", "Junk Mail"), ("trash", "Deleted Items"))
MAX_KEYWORD_LENGTH = 255
MAX_HEADER_SEARCH = 1000  # characters of each header value the header filter sees
# RFC 8621 §4.1.1: a keyword is an IMAP atom (RFC 3501 §9) of printable ASCII without these.
_KEYWORD_FORBIDDEN = set('(){]%*"\\')


class StoreError(Exception):
    """A refusal, shaped as the JMAP SetError it is answered with."""

    def __init__(self, type: str, description: str, properties: list[str] | None = None):
        super().__init__(description)
        self.type, self.description, self.properties = type, description, properties

    def to_json(self) -> dict:
        out = {"type": self.type, "description": self.description}
        if self.properties:
            out["properties"] = self.properties
        return out


# --- journal ------------------------------------------------------------------------------
@dataclass
class Touched:
    """What one write changed, journaled at the end of it in two queries."""

    emails: dict = field(default_factory=lambda: {"created": [], "updated": [], "destroyed": []})
    threads: dict = field(default_factory=lambda: {"created": [], "updated": [], "destroyed": []})
    mailboxes: dict = field(default_factory=lambda: {"created": [], "updated": [], "destroyed": []})

    def record(self, account_id: int) -> dict[str, str]:
        changes = {}
        for type, bucket in ((EMAIL, self.emails), (THREAD, self.threads), (MAILBOX, self.mailboxes)):
            created = list(dict.fromkeys(bucket["created"]))
            destroyed = [i for i in dict.fromkeys(bucket["destroyed"]) if i not in created]
            updated = [i for i in dict.fromkeys(bucket["updated"]) if i not in created and i not in destroyed]
            created = [i for i in created if i not in bucket["destroyed"]]
            if created or updated or destroyed:
                changes[type] = journal.Change(created=created, updated=updated, destroyed=destroyed)
        return journal.record_many(account_id, changes) if changes else {}


# --- mailboxes ------------------------------------------------------------------------------
def create_role_mailboxes(account_id: int) -> None:
    """The role mailboxes of a new account. Not journaled: they exist at the account's first
    Mailbox state ("0"), so a client's first Mailbox/get sees them and /changes owes nothing."""
    Mailbox.objects.bulk_create([Mailbox(account_id=account_id, name=name, role=role, sort_order=i)
                                 for i, (role, name) in enumerate(ROLE_MAILBOXES)])


COUNTS = (("totalEmails", "total_emails"), ("unreadEmails", "unread_emails"), ("totalThreads", "total_threads"),
          ("unreadThreads", "unread_threads"))


def _unread():
    return ~Exists(Keyword.objects.filter(email=OuterRef("email_id"), keyword="$seen"))


def mailbox_counts(account_id: int, mailbox_pks: list[int]) -> dict[int, dict]:
    """totalEmails, unreadEmails, totalThreads, unreadThreads per mailbox (RFC 8621 §2) counted
    from the rows, two grouped queries for any number of mailboxes: the recount that the stored
    counters (`Mailbox.total_emails`, …) must always equal, and `recount()` writes."""
    base = Membership.objects.filter(mailbox_id__in=mailbox_pks, mailbox__account_id=account_id)
    out = {pk: {"totalEmails": 0, "unreadEmails": 0, "totalThreads": 0, "unreadThreads": 0} for pk in mailbox_pks}
    for row in base.values("mailbox_id").annotate(
            total=Count("email_id"), threads=Count("email__thread_id", distinct=True)):
        out[row["mailbox_id"]].update(totalEmails=row["total"], totalThreads=row["threads"])
    for row in base.filter(_unread()).values("mailbox_id").annotate(
            total=Count("email_id"), threads=Count("email__thread_id", distinct=True)):
        out[row["mailbox_id"]].update(unreadEmails=row["total"], unreadThreads=row["threads"])
    return out


def recount(account_id: int, mailbox_pks: list[int] | None = None) -> None:
    """Set the stored counters from a recount (bulk loads, repairs): three queries and one
    UPDATE per mailbox."""
    if mailbox_pks is None:
        mailbox_pks = list(Mailbox.objects.filter(account_id=account_id).values_list("pk", flat=True))
    for pk, counts in mailbox_counts(account_id, mailbox_pks).items():
        Mailbox.objects.filter(pk=pk).update(**{column: counts[name] for name, column in COUNTS})


def _pair_counts(mailbox_pks, thread_pks) -> dict[tuple[int, int], tuple[int, int]]:
    """{(mailbox, thread): (emails, unread emails)} of the given mailboxes and threads."""
    out = {}
    for threads in in_slices(sorted(set(thread_pks))):
        rows = (Membership.objects.filter(mailbox_id__in=mailbox_pks, email__thread_id__in=threads)
                .values("mailbox_id", "email__thread_id")
                .annotate(n=Count("email_id"), unread=Count("email_id", filter=Q(_unread())))
                .order_by())
        for row in rows:
            out[(row["mailbox_id"], row["email__thread_id"])] = (row["n"], row["unread"])
    return out


class counting:
    """Keeps the stored counters of `mailbox_pks` right across a write that may move emails of
    `thread_pks` in or out of them, or change whether they are read.

        with counting(mailbox_pks, thread_pks):
            ...  # the write

    Only the (mailbox, thread) pairs named are counted, before and after (one grouped query
    each), and the difference is added to each mailbox's counters in one UPDATE: the cost is
    the write's, never the mailbox's size. The mailbox rows are locked first (in pk order) so
    that two concurrent writes to one mailbox count one after the other. Every mailbox an email
    of the write enters or leaves, and every thread it belongs to before or after, must be
    named (a thread merge names both threads)."""

    def __init__(self, mailbox_pks, thread_pks):
        self.mailboxes = sorted(set(mailbox_pks))
        self.threads = sorted(set(thread_pks))

    def __enter__(self):
        if self.mailboxes and self.threads:
            if transaction.get_connection().in_atomic_block:  # outside one there is nothing to hold
                list(Mailbox.objects.select_for_update().filter(pk__in=self.mailboxes).order_by("pk")
                     .values_list("pk", flat=True))
            self.before = _pair_counts(self.mailboxes, self.threads)
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None or not (self.mailboxes and self.threads):
            return False
        after = _pair_counts(self.mailboxes, self.threads)
        deltas: dict[int, list[int]] = {}
        for key in set(self.before) | set(after):
            b_emails, b_unread = self.before.get(key, (0, 0))
            a_emails, a_unread = after.get(key, (0, 0))
            d = deltas.setdefault(key[0], [0, 0, 0, 0])
            d[0] += a_emails - b_emails
            d[1] += a_unread - b_unread
            d[2] += (a_emails > 0) - (b_emails > 0)
            d[3] += (a_unread > 0) - (b_unread > 0)
        for pk, d in sorted(deltas.items()):
            if any(d):
                Mailbox.objects.filter(pk=pk).update(**{column: F(column) + delta
                                                        for (_, column), delta in zip(COUNTS, d) if delta})
        return False


def _count_new_email(account_id: int, mailbox_pks, thread_id: int, *, new_thread: bool, unread: bool) -> list[int]:
    """Lock, check and count the mailboxes a new email enters, in pk order (each writer's lock
    order): StoreError if one is not the account's. Its change of the counters is known (+1
    email, +1 unread unless $seen, +1 thread if the thread had no email there, +1 unread thread
    if it had no unread one there): one UPDATE per mailbox, which is also its lock and its
    check, and for a thread that existed before this write one read of the thread's "before"
    under those locks, and an UPDATE more where the thread's counts move. Call it before the
    email's memberships are written."""
    pks = sorted(set(mailbox_pks))
    if not pks:
        raise StoreError("invalidProperties", "An email must be in at least one mailbox.", ["mailboxIds"])
    add = _counter_update_sql()
    with connection.cursor() as cursor:
        for pk in pks:
            cursor.execute(add, [1, int(unread), int(new_thread), int(new_thread and unread), pk, account_id])
            if cursor.rowcount != 1:
                raise StoreError("invalidProperties", "A mailbox of mailboxIds does not exist.", ["mailboxIds"])
        if not new_thread:
            cursor.execute(_thread_pairs_sql(len(pks)), ["$seen", *pks, thread_id])
            before = {mailbox: (emails, unread_emails) for mailbox, emails, unread_emails in cursor.fetchall()}
            for pk in pks:
                b_emails, b_unread = before.get(pk, (0, 0))
                threads, unread_threads = int(b_emails == 0), int(unread and b_unread == 0)
                if threads or unread_threads:
                    cursor.execute(add, [0, 0, threads, unread_threads, pk, account_id])
    return pks


# The statements of a new email's counters, as text: the ORM's compilation of them cost more
# than their run, while the writer holds the mailbox's lock (SQLite: the database's).
@functools.cache
def _counter_sql(vendor: str, what: str, size: int = 0) -> str:
    qn = connection.ops.quote_name
    if what == "update":
        sets = ", ".join(f"{qn(c)} = {qn(c)} + %s" for _, c in COUNTS)
        return f"UPDATE {qn(Mailbox._meta.db_table)} SET {sets} WHERE {qn('id')} = %s AND {qn('account_id')} = %s"
    # (mailbox, emails, unread emails) of one thread in the given mailboxes; at most one
    # Keyword row per email and keyword (unique), so the join counts each email once.
    return (f"SELECT m.{qn('mailbox_id')}, COUNT(*), SUM(CASE WHEN k.{qn('id')} IS NULL THEN 1 ELSE 0 END) "
            f"FROM {qn(Membership._meta.db_table)} m JOIN {qn(Email._meta.db_table)} e ON e.{qn('id')} = m.{qn('email_id')} "
            f"LEFT JOIN {qn(Keyword._meta.db_table)} k ON k.{qn('email_id')} = m.{qn('email_id')} AND k.{qn('keyword')} = %s "
            f"WHERE m.{qn('mailbox_id')} IN ({', '.join(['%s'] * size)}) AND e.{qn('thread_id')} = %s "
            f"GROUP BY m.{qn('mailbox_id')}")


def _counter_update_sql() -> str:
    return _counter_sql(connection.vendor, "update")


def _thread_pairs_sql(size: int) -> str:
    return _counter_sql(connection.vendor, "pairs", size)


# --- keywords -------------------------------------------------------------------------------
def valid_keyword(keyword) -> bool:
    return (isinstance(keyword, str) and 0 < len(keyword) <= MAX_KEYWORD_LENGTH
            and all(0x21 <= ord(c) <= 0x7e and c not in _KEYWORD_FORBIDDEN for c in keyword))


def normalise_keywords(value) -> dict[str, bool]:
    """A Keywords object (`{"$seen": true}`) checked and lower-cased; ValueError otherwise."""
    if not isinstance(value, dict):
        raise ValueError("keywords must be an object")
    out = {}
    for key, flag in value.items():
        if not valid_keyword(key) or flag is not True:
            raise ValueError(f"invalid keyword {key[:64]!r}" if isinstance(key, str) else "invalid keyword")
        out[key.lower()] = True
    return out


# The parsed properties Email/get answers from `Email.summary` without `meta` (all but the
# headers and the body structure).
LIST_PROPS = ("messageId", "inReplyTo", "references", "sender", "from", "to", "cc", "bcc", "replyTo", "subject",
              "sentAt", "hasAttachment", "preview")


def summary_of(parsed: dict) -> dict:
    return {p: parsed[p] for p in LIST_PROPS}


# --- emails ---------------------------------------------------------------------------------
def _thread_digests(parsed: dict) -> list[str]:
    subject = parsed.get("threadSubject") or ""
    return [hashlib.sha1(f"{key}\0{subject}".encode("utf-8", "surrogatepass")).hexdigest()
            for key in parsed.get("threadIds") or ()]


def _assign_thread(account_id: int, parsed: dict, touched: Touched, digests: list[str] | None = None) -> tuple[int, bool]:
    """RFC 5322 threading as the keys mail.mime computed: the thread of any earlier message that
    shares a message id (Message-ID, In-Reply-To, References) and the base subject; else a new one.

    A message whose keys lead to several threads (a reply that references two conversations
    threaded apart until now) bridges them: they merge into the oldest, whose emails, keys and
    id survive; the others are destroyed and their emails updated (their threadId moved).
    Returns the thread and whether it was created now."""
    digests = _thread_digests(parsed) if digests is None else digests
    found = _threads_of_keys(account_id, digests)
    if not found:
        ((target,),) = _THREAD_ROW.run([(account_id,)])
        touched.threads["created"].append(ids.encode(target))
    else:
        target = min(found)
        touched.threads["updated"].append(ids.encode(target))
        others = sorted(found - {target})
        if others:
            moved = list(Email.objects.filter(account_id=account_id, thread_id__in=others)
                         .values_list("pk", flat=True))
            # A mailbox holding emails of two merged threads now holds one thread: its thread
            # counters change although no email enters or leaves it.
            shared = (Membership.objects.filter(email__account_id=account_id, email__thread_id__in=found)
                      .values_list("mailbox_id", flat=True).distinct())
            with counting(list(shared), sorted(found)):
                Email.objects.filter(pk__in=moved).update(thread_id=target)
            ThreadKey.objects.filter(account_id=account_id, thread_id__in=others).update(thread_id=target)
            Thread.objects.filter(account_id=account_id, pk__in=others).delete()
            touched.threads["destroyed"].extend(ids.encode(pk) for pk in others)
            touched.emails["updated"].extend(ids.encode(pk) for pk in moved)
    _THREAD_KEY_ROWS.run([(account_id, d, target) for d in digests])
    return target, not found


_THREAD_ROW = Insert(Thread, ["account"], returning=["id"])
_THREAD_KEY_ROWS = Insert(ThreadKey, ["account", "digest", "thread"], conflict=["account", "digest"])


def _threads_of_keys(account_id: int, digests: list[str]) -> set[int]:
    qn = connection.ops.quote_name
    found = set()
    with connection.cursor() as cursor:
        for some in in_slices(digests):
            cursor.execute(f"SELECT DISTINCT {qn('thread_id')} FROM {qn(ThreadKey._meta.db_table)} "
                           f"WHERE {qn('account_id')} = %s AND {qn('digest')} IN ({', '.join(['%s'] * len(some))})",
                           [account_id, *some])
            found.update(row[0] for row in cursor.fetchall())
    return found


def _parse_utc(value: str | None):
    return parse_datetime(value) if value else None


def _check_mailboxes(account_id: int, mailbox_pks) -> list[int]:
    pks = sorted(set(mailbox_pks))
    if not pks:
        raise StoreError("invalidProperties", "An email must be in at least one mailbox.", ["mailboxIds"])
    found = set(Mailbox.objects.filter(account_id=account_id, pk__in=pks).values_list("pk", flat=True))
    if len(found) < len(pks):
        raise StoreError("invalidProperties", "A mailbox of mailboxIds does not exist.", ["mailboxIds"])
    return pks


@dataclass(frozen=True)
class Prepared:
    """What `store_message` derives from the octets alone: the parse, the full-text index's
    document (its words split), the header lines for the `header` filter and the threading
    keys."""
    parsed: dict
    fulltext: ft.Prepared
    search: dict
    digests: list


def prepare(raw: bytes) -> Prepared:
    """The CPU work of filing a message, which needs no database: a caller that holds a write
    transaction around `store_message` (delivery) does it first, so that the lock is held for
    the writes alone (on SQLite one writer at a time: a second LMTP worker would wait the
    whole parse)."""
    parsed = mime.parse(raw).as_dict()
    text = parsed.pop("search")
    # The header filter (RFC 8621 §4.4.1 `header`) matches "name: value" lines, one per field;
    # the text filters go to the full-text index (mail.search), which keeps the rest.
    search = {"headers": "".join(f"\n{f['name'].lower()}: {h.unfold(f['value'])[:MAX_HEADER_SEARCH]}"
                                  for f in parsed["headers"])}
    return Prepared(parsed, ft.prepare(text), search, _thread_digests(parsed))


_EMAIL_COLUMNS = ("account", "blob_id", "thread", "meta", "summary", "keywords", "received_at", "sent_at", "size",
                  "sort_from", "sort_to", "sort_subject", "has_attachment", "message_id", "search")
_EMAIL_ROW = Insert(Email, _EMAIL_COLUMNS, returning=["id"])
_MEMBERSHIP_ROWS = Insert(Membership, ["mailbox", "email", "received_at"])
_KEYWORD_ROWS = Insert(Keyword, ["email", "keyword"])


def store_message(account_id: int, raw: bytes, *, mailbox_pks, keywords: dict | None = None,
                  received_at: datetime | None = None, blob_id: str | None = None,
                  touched: Touched | None = None, savepoint: bool = True,
                  prepared: Prepared | None = None, staged: blobs.Staged | None = None,
                  unlimited: bool = False) -> Email:
    """Parse `raw` once and file it: the email row, its blob hold, memberships, keywords, thread,
    and (unless the caller journals a larger write through `touched`) the journal entries.

    `blob_id` names a blob the account holds already (an upload being imported); otherwise the
    octets are filed in the blob store under the account's quota (StoreError overQuota): from
    `staged`, the file the caller wrote before its transaction (`blobs.staging`), or from a
    file written here. `unlimited`: the caller read before its transaction that the account
    has no disk quota (`blobs.attach`). `savepoint=False` for a caller whose transaction fails
    as a whole when one message does (delivery): two statements fewer per message.
    """
    if blob_id or staged is not None:
        return _store_message(account_id, raw, mailbox_pks, keywords, received_at, blob_id, touched, savepoint,
                              prepared, staged, unlimited)
    with blobs.staging(raw) as staged:
        return _store_message(account_id, raw, mailbox_pks, keywords, received_at, blob_id, touched, savepoint,
                              prepared, staged, unlimited)


def _store_message(account_id, raw, mailbox_pks, keywords, received_at, blob_id, touched, savepoint, prepared,
                   staged, unlimited) -> Email:
    own = touched is None
    touched = touched or Touched()
    received_at = received_at or timezone.now()
    keywords = keywords or {}
    prepared = prepared or prepare(raw)
    # A copy: the returned row keeps this dict, and a caller may file the same preparation twice.
    parsed = dict(prepared.parsed)
    unread = "$seen" not in keywords
    email = Email(account_id=account_id, blob_id=blob_id or blobs.jmap_id(account_id, staged.digest), meta=parsed,
                  summary=summary_of(parsed), keywords=keywords, received_at=received_at,
                  sent_at=_parse_utc(parsed["sentAtUtc"]), size=parsed["size"], sort_from=parsed["sortFrom"][:255],
                  sort_to=parsed["sortTo"][:255], sort_subject=parsed["sortSubject"][:255],
                  has_attachment=parsed["hasAttachment"],
                  message_id=(parsed["messageId"] or [None])[0] and parsed["messageId"][0][:255],
                  search=prepared.search)
    with transaction.atomic(savepoint=savepoint):
        email.thread_id, new_thread = _assign_thread(account_id, parsed, touched, prepared.digests)
        ((email.pk,),) = _EMAIL_ROW.run([[getattr(email, Email._meta.get_field(name).attname)
                                          for name in _EMAIL_COLUMNS]])
        email._state.adding, email._state.db = False, connection.alias
        try:
            if blob_id:
                blobs.hold(account_id, blob_id, OWNER, str(email.pk))
            else:
                blobs.attach(account_id, staged, OWNER, str(email.pk), unlimited=unlimited)
        except blobs.OverQuota as exc:
            raise StoreError("overQuota", str(exc)) from None
        except blobs.NotFound:
            raise StoreError("blobNotFound", f"Blob {blob_id} not found.") from None
        ft.add(account_id, search_seam.KIND, email.pk, prepared.fulltext)
        # The mailboxes last (on PostgreSQL their row locks are held from here to the commit,
        # and a second writer to the same inbox waits that long), before their memberships.
        pks = _count_new_email(account_id, mailbox_pks, email.thread_id, new_thread=new_thread, unread=unread)
        _MEMBERSHIP_ROWS.run([(pk, email.pk, received_at) for pk in pks])
        _KEYWORD_ROWS.run([(email.pk, k) for k in keywords])
        touched.emails["created"].append(ids.encode(email.pk))
        touched.mailboxes["updated"].extend(ids.encode(pk) for pk in pks)
        if own:
            touched.record(account_id)
    return email


def import_raw(account_id: int, raw: bytes, mailbox_pks, keywords=None, received_at=None) -> Email:
    """Deliver octets (LMTP, `deliver`, the benchmark's generator)."""
    return store_message(account_id, raw, mailbox_pks=mailbox_pks, keywords=keywords, received_at=received_at)


def import_blob(account_id: int, blob_id: str, mailbox_pks, keywords=None, received_at=None,
                touched: Touched | None = None) -> Email:
    """Email/import: a blob the account holds (an upload) becomes an email."""
    view = blobs.resolve(account_id, [blob_id]).get(blob_id)
    if view is None:
        raise StoreError("blobNotFound", f"Blob {blob_id} not found.")
    raw = blobs.read(view.blob)
    return store_message(account_id, raw, mailbox_pks=mailbox_pks, keywords=keywords, received_at=received_at,
                         blob_id=blob_id, touched=touched)


def raw_message(email: Email, view=None) -> bytes:
    view = view or blobs.resolve(email.account_id, [email.blob_id]).get(email.blob_id)
    if view is None:
        raise blobs.NotFound(f"The message of email {email.pk} is gone.")
    return blobs.read(view.blob)


def update_email(account_id: int, email: Email, *, keywords: dict | None = None, mailbox_pks=None,
                 touched: Touched) -> None:
    """Replace the keywords and/or the mailboxes of one email (a patch is resolved by the caller)."""
    changed = False
    pks = _check_mailboxes(account_id, mailbox_pks) if mailbox_pks is not None else None
    seen_moves = keywords is not None and "$seen" in set(email.keywords) ^ set(keywords)
    current = None
    if seen_moves or pks is not None:
        current = set(Membership.objects.filter(email=email).values_list("mailbox_id", flat=True))
    with counting((current or set()) | set(pks or ()), [email.thread_id] if current is not None else []):
        if keywords is not None and keywords != email.keywords:
            old = set(email.keywords)
            Keyword.objects.filter(email=email, keyword__in=old - set(keywords)).delete()
            Keyword.objects.bulk_create([Keyword(email=email, keyword=k) for k in set(keywords) - old])
            email.keywords = keywords
            Email.objects.filter(pk=email.pk).update(keywords=keywords)
            changed = True
            if seen_moves:
                touched.mailboxes["updated"].extend(ids.encode(pk) for pk in current)
        if pks is not None:
            gone, new = current - set(pks), set(pks) - current
            if gone or new:
                Membership.objects.filter(email=email, mailbox_id__in=gone).delete()
                Membership.objects.bulk_create([Membership(mailbox_id=pk, email=email,
                                                           received_at=email.received_at) for pk in new])
                touched.mailboxes["updated"].extend(ids.encode(pk) for pk in gone | new)
                changed = True
    if changed:
        # The thread's emailIds did not move: a Thread change would only wake clients for nothing.
        touched.emails["updated"].append(ids.encode(email.pk))


def destroy_emails(account_id: int, emails: list[Email], touched: Touched) -> None:
    """Destroy emails: their rows, memberships, keywords, blob holds; a thread left empty goes."""
    if not emails:
        return
    pks = [e.pk for e in emails]
    thread_pks = {e.thread_id for e in emails}
    mailbox_pks = set()
    for some in in_slices(pks):
        mailbox_pks.update(Membership.objects.filter(email_id__in=some).values_list("mailbox_id", flat=True).distinct())
    touched.mailboxes["updated"].extend(ids.encode(pk) for pk in mailbox_pks)
    # One batch, not a release per email: a few statements whatever the number destroyed.
    blobs.release_owners(account_id, OWNER, pks)
    with counting(mailbox_pks, thread_pks):
        for some in in_slices(pks):
            Email.objects.filter(pk__in=some).delete()
    ft.delete(account_id, search_seam.KIND, pks)
    touched.emails["destroyed"].extend(ids.encode(pk) for pk in pks)
    alive = set()
    for some in in_slices(thread_pks):
        alive.update(Email.objects.filter(thread_id__in=some).values_list("thread_id", flat=True).distinct())
    dead = thread_pks - alive
    for some in in_slices(dead):
        Thread.objects.filter(pk__in=some).delete()  # its keys go with it (CASCADE)
    touched.threads["destroyed"].extend(ids.encode(pk) for pk in dead)
    touched.threads["updated"].extend(ids.encode(pk) for pk in alive)


def new_message_id(domain: str) -> str:
    return f"{secrets.token_hex(12)}@{domain}"



# --- body parts as blobs --------------------------------------------------------------------
PART_BLOB_PREFIX = "m_"


def part_blob_id(email_pk: int, part_id: str) -> str:
    """A body part's blobId (RFC 8621 §4.1.4): derived from the email and the part, never stored."""
    return f"{PART_BLOB_PREFIX}{ids.encode(email_pk)}_{part_id}"


def part_content(account_id: int, blob_id: str) -> bytes | None:
    """The transfer-decoded octets of a body part named by its derived blobId, if the account
    holds the email; None for any other id."""
    if not isinstance(blob_id, str) or not blob_id.startswith(PART_BLOB_PREFIX) or len(blob_id) > 64:
        return None
    email_id, _, part_id = blob_id[len(PART_BLOB_PREFIX):].partition("_")
    email_pk = ids.decode(email_id)
    if email_pk is None or not part_id.isdigit():
        return None
    email = Email.objects.filter(account_id=account_id, pk=email_pk).only("blob_id", "meta", "account_id").first()
    part = mime.parts_by_id(email.meta["bodyStructure"]).get(part_id) if email is not None else None
    if part is None:
        return None
    return mime.decoded_content(raw_message(email), part)
