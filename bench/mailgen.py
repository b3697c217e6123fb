#!/usr/bin/env python3
"""Fill one account with N realistic messages, fast, for the mail benchmarks (issue 13).

    .venv/bin/python bench/mailgen.py --count 100000 [--name bench] [--seed 13]

Uses the database and blob store of the environment (DATABASE_URL, STALWART_VAR_DIR), as
manage.py does; bench/mail.py runs it against the throw-away database of its server. Creates
the account (with a password), three folders beside the role mailboxes, and N messages, then
prints one JSON line: the login, password, account and mailbox ids, and the three probe words
with the number of messages each is in.

The messages: threads (a third of the messages reply to a recent thread, with In-Reply-To,
References and "Re:"), spread over Inbox, Archive, Sent Items and the folders (a few in two
mailboxes), $seen on most of the older ones, $flagged, $answered and a custom keyword on a
few; bodies of 5 to 3,000 words (log-normal) from a Zipf-distributed vocabulary of 20,000
words, a tenth multipart/alternative with an HTML part, one in twenty with an attachment. Three
probe words are planted: RARE in about one message in 10,000 (at least 3), MIDDLE in 2 %, and
FREQUENT in 40 %.

`bulk_import()` writes exactly the rows `mail.store.import_raw()` writes for the same messages
(the email row with the parse of `mail.mime`, thread and threading keys, blob and its hold,
memberships, keywords, the full-text document, the journal's entries, the mailbox counters),
but per chunk of messages with bulk statements instead of per message: tests/test_mailgen.py
proves the rows equal. The journal gets one change per chunk instead of one per message.
"""
from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import json
import os
import random
import secrets
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stalwart_site.settings")
    import django

    django.setup()

from django.core.files.base import ContentFile  # noqa: E402
from django.db import transaction  # noqa: E402

from blobs import services as blobs  # noqa: E402
from blobs.models import AccountBlob, Blob, Hold  # noqa: E402
from fulltext import services as ft  # noqa: E402
from mail import headers as h  # noqa: E402
from mail import mime, store  # noqa: E402
from mail import search as search_seam  # noqa: E402
from mail.models import Email, Keyword, Mailbox, Membership, Thread, ThreadKey  # noqa: E402
from registry import ids  # noqa: E402

RARE, MIDDLE, FREQUENT = "quetzalfrond", "marmalade", "meeting"
FOLDERS = ("Projects", "Receipts", "Lists")
VOCABULARY = 20_000
SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "be", "do", "fa", "gu", "ha", "ji",
             "pe", "qu", "ri", "so", "tu", "we", "xa", "yo", "zu", "an", "er", "in", "or", "ul"]
PASSWORD = "Tr0ubador-Quartz-Lantern-91"
CHUNK = 500


# --- the messages ---------------------------------------------------------------------------
class Corpus:
    """Deterministic messages for one account: (raw, mailbox names, keywords, receivedAt)."""

    def __init__(self, count: int, seed: int = 13, address: str = "bench@bench.example"):
        self.count, self.address = count, address
        self.rng = rng = random.Random(seed)
        words = set()
        while len(words) < VOCABULARY:
            words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
        self.vocab = sorted(words)
        rng.shuffle(self.vocab)
        total, self.cum = 0.0, []
        for rank in range(VOCABULARY):
            total += 1 / (rank + 1)
            self.cum.append(total)
        self.people = [(f"{rng.choice(self.vocab).title()} {rng.choice(self.vocab).title()}",
                        f"{rng.choice(self.vocab)}.{rng.choice(self.vocab)}@{rng.choice(self.vocab)}.example")
                       for _ in range(400)]
        rare_every = max(1, min(10_000, count // 3))
        self.rare = {i for i in range(count) if i % rare_every == rare_every // 2}
        self.planted = {RARE: 0, MIDDLE: 0, FREQUENT: 0}

    def words(self, k: int) -> list[str]:
        return self.rng.choices(self.vocab, cum_weights=self.cum, k=k)

    def __iter__(self):
        rng, start = self.rng, datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
        span = 3 * 365 * 86400
        threads: list[dict] = []  # recent threads: subject, the message ids so far
        for i in range(self.count):
            received = start + datetime.timedelta(seconds=int(span * i / max(1, self.count)) + rng.randint(0, 59))
            message_id = f"{i}.{rng.getrandbits(32):08x}@{'bench.example' if i % 5 == 0 else 'mail.example'}"
            if threads and rng.random() < 0.35:
                thread = rng.choice(threads[-200:])
                subject = "Re: " + thread["subject"]
                refs = thread["ids"][-10:]
                thread["ids"].append(message_id)
            else:
                subject = " ".join(self.words(rng.randint(2, 8))).capitalize()
                refs = []
                threads.append({"subject": subject, "ids": [message_id]})
            body_words = self.words(max(5, min(3000, int(rng.lognormvariate(4.3, 0.9)))))
            plant = []
            if i in self.rare:
                plant.append(RARE)
            if rng.random() < 0.02:
                plant.append(MIDDLE)
            if rng.random() < 0.40:
                plant.append(FREQUENT)
            for word in plant:
                self.planted[word] += 1
                body_words.insert(rng.randrange(len(body_words) + 1), word)
            outgoing = rng.random() < 0.08
            person = rng.choice(self.people)
            sender, rcpt = ((("Bench User", self.address), person) if outgoing else (person, ("Bench User", self.address)))
            raw = self.message(i, received, message_id, refs, subject, sender, rcpt, body_words)
            if outgoing:
                boxes = ["sent"]
            else:
                r = rng.random()
                boxes = (["inbox"] if r < 0.70 else ["archive"] if r < 0.85 else [FOLDERS[int(r * 100) % 3]])
                if rng.random() < 0.03:
                    boxes.append(FOLDERS[0] if boxes[0] != FOLDERS[0] else "archive")
            keywords = {}
            if outgoing or rng.random() < (0.92 if i < self.count * 0.95 else 0.3):
                keywords["$seen"] = True
            if rng.random() < 0.02:
                keywords["$flagged"] = True
            if refs and rng.random() < 0.2:
                keywords["$answered"] = True
            if rng.random() < 0.01:
                keywords["work"] = True
            yield raw, boxes, keywords, received

    def message(self, i, received, message_id, refs, subject, sender, rcpt, body_words) -> bytes:
        rng = self.rng
        lines = [f"From: {sender[0]} <{sender[1]}>", f"To: {rcpt[0]} <{rcpt[1]}>", f"Subject: {subject}",
                 f"Date: {received.strftime('%a, %d %b %Y %H:%M:%S +0000')}", f"Message-ID: <{message_id}>"]
        if rng.random() < 0.15:
            other = rng.choice(self.people)
            lines.append(f"Cc: {other[0]} <{other[1]}>")
        if refs:
            lines += [f"In-Reply-To: <{refs[-1]}>", "References: " + " ".join(f"<{r}>" for r in refs)]
        lines.append("MIME-Version: 1.0")
        text = "\r\n".join(" ".join(body_words[j:j + 12]) + "." for j in range(0, len(body_words), 12))
        kind = rng.random()
        if kind < 0.05:
            attachment = base64.encodebytes(rng.randbytes(rng.randint(2_000, 30_000))).decode().replace("\n", "\r\n")
            lines.append(f'Content-Type: multipart/mixed; boundary="b{i}"')
            body = (f"--b{i}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"
                    f"--b{i}\r\nContent-Type: application/pdf; name=\"{body_words[0]}-{i}.pdf\"\r\n"
                    f"Content-Disposition: attachment; filename=\"{body_words[0]}-{i}.pdf\"\r\n"
                    f"Content-Transfer-Encoding: base64\r\n\r\n{attachment}--b{i}--\r\n")
        elif kind < 0.15:
            html = "".join(f"<p>{' '.join(body_words[j:j + 12])}.</p>" for j in range(0, len(body_words), 12))
            lines.append(f'Content-Type: multipart/alternative; boundary="a{i}"')
            body = (f"--a{i}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"
                    f"--a{i}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>{html}</body></html>\r\n"
                    f"--a{i}--\r\n")
        else:
            lines.append("Content-Type: text/plain; charset=utf-8")
            body = text + "\r\n"
        return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


# --- the bulk path --------------------------------------------------------------------------
class _NewThread:
    """A thread this chunk creates: after every existing one in pk order, as import makes it."""

    def __init__(self, seq: int):
        self.seq = seq
        self.pk = None

    def order(self):
        return (1, self.seq)


def _order(thread):
    return thread.order() if isinstance(thread, _NewThread) else (0, thread)


def bulk_import(account_id: int, items, chunk: int = CHUNK, progress=None) -> int:
    """File (raw, mailbox pks, keywords, receivedAt) items in order, as `store.import_raw` would
    one by one; a chunk per transaction. Returns the number filed."""
    thread_of: dict[str, int] = {}
    batch, done, mailboxes = [], 0, set()
    for item in items:
        batch.append(item)
        if len(batch) == chunk:
            mailboxes |= _chunk(account_id, batch, thread_of)
            done += len(batch)
            batch = []
            if progress:
                progress(done)
    if batch:
        mailboxes |= _chunk(account_id, batch, thread_of)
        done += len(batch)
    with transaction.atomic():
        store.recount(account_id, sorted(mailboxes))
    return done


def _chunk(account_id: int, batch, thread_of: dict) -> set[int]:
    prepared = []
    for raw, mailbox_pks, keywords, received_at in batch:
        parsed = mime.parse(raw).as_dict()
        text = parsed.pop("search")
        search = {"headers": "".join(f"\n{f['name'].lower()}: {h.unfold(f['value'])[:store.MAX_HEADER_SEARCH]}"
                                      for f in parsed["headers"])}
        prepared.append((raw, sorted(set(mailbox_pks)), dict(keywords or {}), received_at, parsed, text, search,
                         store._thread_digests(parsed)))
    touched = store.Touched()
    with transaction.atomic():
        unknown = list({d for p in prepared for d in p[7] if d not in thread_of})
        for start in range(0, len(unknown), 10_000):
            thread_of.update(ThreadKey.objects.filter(account_id=account_id, digest__in=unknown[start:start + 10_000])
                             .values_list("digest", "thread_id"))
        used = {pk for p in prepared for pk in p[1]}
        if len(set(Mailbox.objects.filter(account_id=account_id, pk__in=used).values_list("pk", flat=True))) < len(used):
            raise store.StoreError("invalidProperties", "A mailbox of mailboxIds does not exist.", ["mailboxIds"])
        # Threads as _assign_thread picks them: the lowest thread of any key, else a new one.
        threads, new_threads, keys = [], [], []
        for p in prepared:
            found = [thread_of[d] for d in p[7] if d in thread_of]
            thread = min(found, key=_order) if found else None
            if thread is None:
                thread = _NewThread(len(new_threads))
                new_threads.append(thread)
            for d in p[7]:
                if d not in thread_of:
                    thread_of[d] = thread
                    keys.append((d, thread))
            threads.append(thread)
        for row, thread in zip(Thread.objects.bulk_create([Thread(account_id=account_id) for _ in new_threads]),
                               new_threads):
            thread.pk = row.pk
        for d, t in keys:
            if isinstance(t, _NewThread):
                thread_of[d] = t.pk
        pk_of = [t.pk if isinstance(t, _NewThread) else t for t in threads]
        new_pks = {t.pk for t in new_threads}
        for pk in pk_of:
            touched.threads["created" if pk in new_pks else "updated"].append(ids.encode(pk))
        # Blobs: each message's octets once in the store, the account's view, the email's hold.
        digests = [hashlib.sha256(p[0]).hexdigest() for p in prepared]
        taken = set(Blob.objects.filter(digest__in=digests).values_list("digest", flat=True))
        fresh = [i for i, d in enumerate(digests) if d not in taken and digests.index(d) == i]
        stored = {}
        for i in fresh:
            d = digests[i]
            name = blobs.storage().save(f"{d[:2]}/{d[2:4]}/{d}.{secrets.token_hex(8)}", ContentFile(prepared[i][0]))
            stored[i] = Blob(digest=d, size=len(prepared[i][0]), name=name)
        Blob.objects.bulk_create(stored.values())
        views = AccountBlob.objects.bulk_create([AccountBlob(account_id=account_id, blob=stored[i],
                                                             jmap_id=blobs.jmap_id(account_id, digests[i]))
                                                 for i in fresh])
        view_of = {i: v for i, v in zip(fresh, views)}
        emails = Email.objects.bulk_create([
            Email(account_id=account_id, blob_id=view_of[i].jmap_id if i in view_of else "", thread_id=pk_of[i],
                  meta=parsed, summary=store.summary_of(parsed), keywords=keywords, received_at=received_at,
                  sent_at=store._parse_utc(parsed["sentAtUtc"]), size=parsed["size"],
                  sort_from=parsed["sortFrom"][:255], sort_to=parsed["sortTo"][:255],
                  sort_subject=parsed["sortSubject"][:255], has_attachment=parsed["hasAttachment"],
                  message_id=(parsed["messageId"] or [None])[0] and parsed["messageId"][0][:255], search=search)
            for i, (_, _, keywords, received_at, parsed, _, search, _) in enumerate(prepared)])
        Hold.objects.bulk_create([Hold(account_blob=view_of[i], owner_kind=store.OWNER, owner_id=str(emails[i].pk))
                                  for i in fresh])
        # The store's counted usage, as its own writes move it (the rows above bypass them).
        blobs.count_blobs(account_id, sum(stored[i].size for i in fresh), len(fresh))
        for i, email in enumerate(emails):
            if i not in view_of:  # the same octets as a stored blob: the blob store's own path
                email.blob_id = blobs.put(account_id, prepared[i][0], store.OWNER, str(email.pk)).jmap_id
                Email.objects.filter(pk=email.pk).update(blob_id=email.blob_id)
        ThreadKey.objects.bulk_create([ThreadKey(account_id=account_id, digest=d, thread_id=thread_of[d])
                                       for d, _ in keys], ignore_conflicts=True)
        Membership.objects.bulk_create([Membership(mailbox_id=pk, email=email, received_at=email.received_at)
                                        for email, p in zip(emails, prepared) for pk in p[1]])
        Keyword.objects.bulk_create([Keyword(email=email, keyword=k) for email, p in zip(emails, prepared)
                                     for k in p[2]])
        ft.index_many(account_id, search_seam.KIND, [(email.pk, p[5]) for email, p in zip(emails, prepared)])
        touched.emails["created"].extend(ids.encode(e.pk) for e in emails)
        touched.mailboxes["updated"].extend(ids.encode(pk) for pk in sorted(used))
        touched.record(account_id)
    return used


# --- the command ----------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--name", default="bench")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()

    from accounts import services
    from accounts.models import Account, Domain, SystemSettings

    domain, _ = Domain.objects.get_or_create(name="bench.example")
    system = SystemSettings.load()
    if system.default_domain_id is None:
        system.default_domain = domain
        system.save()
    account = services.create_account({"name": args.name, "domain": domain.pk, "roles_mode": Account.RolesMode.USER,
                                       "kind": "user"}, "bench", password=PASSWORD)
    for i, name in enumerate(FOLDERS):
        Mailbox.objects.create(account_id=account.pk, name=name, sort_order=10 + i)
    boxes = dict(Mailbox.objects.filter(account_id=account.pk).values_list("name", "pk"))
    boxes.update({role: pk for role, pk in Mailbox.objects.filter(account_id=account.pk, role__isnull=False)
                  .values_list("role", "pk")})
    corpus = Corpus(args.count, args.seed, f"{args.name}@{domain.name}")
    began = time.perf_counter()

    def progress(done):
        if done % 10_000 == 0:
            print(f"  {done:,} messages, {done / (time.perf_counter() - began):,.0f}/s", file=sys.stderr, flush=True)

    items = ((raw, [boxes[b] for b in names], keywords, received) for raw, names, keywords, received in corpus)
    done = bulk_import(account.pk, items, progress=progress)
    elapsed = time.perf_counter() - began
    from django.db import connection

    with connection.cursor() as cursor:
        # What autovacuum would have done by the time a mailbox this size is searched: the
        # planner's statistics, and the GIN index's pending entries merged.
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
    print(json.dumps({"login": f"{args.name}@{domain.name}", "password": PASSWORD,
                      "accountId": ids.encode(account.pk), "mailboxes": {k: ids.encode(v) for k, v in boxes.items()},
                      "count": done, "seconds": round(elapsed, 1), "planted": corpus.planted,
                      "words": {"rare": RARE, "middle": MIDDLE, "frequent": FREQUENT}}))


if __name__ == "__main__":
    main()
