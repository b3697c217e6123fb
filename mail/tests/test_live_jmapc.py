"""The mail store end to end: jmapc (a real JMAP Mail client) against gunicorn, on the run's
database. Mailboxes, an upload imported, a query whose ids feed a get by result reference,
keywords set, a draft created, and the changes a syncing client reads."""
from __future__ import annotations

import concurrent.futures
from urllib.parse import urlsplit

import jmapc
import pytest
from jmapc.methods import (CustomMethod, CustomResponse, EmailGet, EmailGetResponse, EmailQuery, EmailQueryResponse,
                           EmailSet, EmailSetResponse, MailboxChanges, MailboxGet, MailboxGetResponse,
                           MailboxQuery, MailboxQueryResponse, MailboxSet, MailboxSetResponse, ThreadGet,
                           ThreadGetResponse)

from tests.test_jmap_live import STRONG, Jmap, PlainHttpAdapter, basic, first_run_site

from .conftest import CORPUS


@pytest.fixture(scope="module")
def site(live):
    with first_run_site(live, workers=2) as s:
        yield s


@pytest.fixture
def client(site, tmp_path):
    _, login = site.create_user("mailer")
    host = urlsplit(site.url).netloc
    c = jmapc.Client.create_with_password(host, login, STRONG)
    c.requests_session.mount(f"https://{host}/", PlainHttpAdapter())
    return c


def _import(client, path, mailbox_id, keywords=None):
    blob = client.upload_blob(path)
    method = CustomMethod(data={"accountId": client.account_id, "emails": {"e": {"blobId": blob.id, "mailboxIds": {mailbox_id: True},
                                                 "keywords": keywords or {}}}})
    method.jmap_method = "Email/import"
    method.using = {"urn:ietf:params:jmap:mail"}
    got = client.request(method)
    assert isinstance(got, CustomResponse), got
    assert got.data["notCreated"] is None, got.data
    return got.data["created"]["e"]


def test_a_mail_client_session(client, tmp_path):
    session = client.jmap_session
    assert "urn:ietf:params:jmap:mail" in session.capabilities.urns
    boxes = client.request(MailboxQuery(filter=jmapc.MailboxQueryFilterCondition(role="inbox")))
    assert isinstance(boxes, MailboxQueryResponse) and len(boxes.ids) == 1
    inbox = boxes.ids[0]
    listed = client.request(MailboxGet(ids=None))
    assert isinstance(listed, MailboxGetResponse)
    assert {m.role for m in listed.data} >= {"inbox", "drafts", "sent", "trash", "junk", "archive"}
    state = listed.state

    made = client.request(MailboxSet(create={"p": jmapc.Mailbox(name="Projects")}))
    assert isinstance(made, MailboxSetResponse) and made.created["p"].id, made
    assert made.created["p"].id in client.request(MailboxChanges(since_state=state)).created

    # The corpus goes in through upload + Email/import, and comes back through query -> get.
    paths = sorted(CORPUS.glob("*.eml"))[:6]
    created = [_import(client, p, inbox, {"$seen": True} if i % 2 else None) for i, p in enumerate(paths)]
    results = client.request([
        EmailQuery(filter=jmapc.EmailQueryFilterCondition(in_mailbox=inbox, not_keyword="$seen"),
                   sort=[jmapc.Comparator(property="receivedAt", is_ascending=False)], limit=50,
                   calculate_total=True),
        EmailGet(ids=jmapc.Ref("/ids"), properties=["id", "subject", "keywords", "threadId", "size", "preview"]),
    ])
    query, got = results[0].response, results[1].response
    assert isinstance(query, EmailQueryResponse) and isinstance(got, EmailGetResponse)
    unread = {c["id"] for i, c in enumerate(created) if not i % 2}
    assert set(query.ids) == unread and query.total == len(unread)
    assert {e.id for e in got.data} == unread
    sizes = {c["id"]: c["size"] for c in created}
    assert all(e.size == sizes[e.id] for e in got.data)

    # Mark one read through a patch; it leaves the unread query.
    target = query.ids[0]
    updated = client.request(EmailSet(update={target: {"keywords/$seen": True}}))
    assert isinstance(updated, EmailSetResponse) and target in updated.updated
    again = client.request(EmailQuery(filter=jmapc.EmailQueryFilterCondition(in_mailbox=inbox, not_keyword="$seen")))
    assert target not in again.ids

    # A draft from structured properties.
    drafts = next(m.id for m in listed.data if m.role == "drafts")
    draft = client.request(EmailSet(create={"d": jmapc.Email(
        mailbox_ids={drafts: True}, keywords={"$draft": True}, subject="From jmapc",
        mail_from=[jmapc.EmailAddress(name="Me", email="me@example.org")],
        to=[jmapc.EmailAddress(email="you@example.com")],
        text_body=[jmapc.EmailBodyPart(part_id="t", type="text/plain")],
        body_values={"t": jmapc.EmailBodyValue(value="Hello from a real client")})}))
    assert isinstance(draft, EmailSetResponse) and draft.created and draft.created["d"].id, draft
    read = client.request(EmailGet(ids=[draft.created["d"].id], fetch_text_body_values=True,
                                   properties=["subject", "from", "bodyValues", "textBody", "threadId"]))
    email = read.data[0]
    assert email.subject == "From jmapc" and email.mail_from[0].email == "me@example.org"
    assert email.body_values[email.text_body[0].part_id].value.strip() == "Hello from a real client"
    threads = client.request(ThreadGet(ids=[email.thread_id]))
    assert isinstance(threads, ThreadGetResponse) and threads.data[0].email_ids == [email.id]


def test_another_users_mail_is_invisible(site, client):
    other_id, other_login = site.create_user("other")
    host = urlsplit(site.url).netloc
    other = jmapc.Client.create_with_password(host, other_login, STRONG)
    other.requests_session.mount(f"https://{host}/", PlainHttpAdapter())
    inbox = other.request(MailboxQuery(filter=jmapc.MailboxQueryFilterCondition(role="inbox"))).ids[0]
    path = CORPUS / "01-alternative.eml"
    theirs = _import(other, path, inbox)
    got = client.request(EmailGet(ids=[theirs["id"]], properties=["subject"]))
    assert got.data == [] and got.not_found == [theirs["id"]]
    mine = client.request(EmailQuery(filter=jmapc.EmailQueryFilterCondition(in_mailbox=inbox)))
    assert mine.ids == []


def test_concurrent_writes_to_one_account_never_fail(site):
    """Workers creating the same mailbox name at once: one create wins, the others are the
    SetError (the unique index decides, not a read before the write); never a 5xx."""
    user_id, login = site.create_user("racer")
    jmap = Jmap(site.url, basic(login, STRONG))
    using = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]

    def create(i):
        return jmap.request([["Mailbox/set", {"accountId": user_id, "create": {"m": {"name": "Same"}}}, "s"]],
                            using=using)[0]

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(create, range(8)))
    assert all(a[0] == "Mailbox/set" for a in answers), answers
    created = [a for a in answers if a[1]["created"]]
    assert len(created) == 1, answers
    assert all(a[1]["notCreated"]["m"]["type"] == "invalidProperties" for a in answers if not a[1]["created"])
    boxes = jmap.request([["Mailbox/query", {"accountId": user_id, "filter": {"name": "Same"}}, "q"]],
                         using=using)[0][1]["ids"]
    assert len(boxes) == 1


def test_jmapc_moves_renames_and_destroys(client):
    """What the first test leaves out: a move by mailboxIds patch, the counts that follow it,
    Email/changes and Email/queryChanges after it, a rename, a destroy with
    onDestroyRemoveEmails, and an Email/set destroy, each through jmapc's own types."""
    from jmapc.methods import EmailChanges, EmailChangesResponse, EmailQueryChanges, EmailQueryChangesResponse

    listed = client.request(MailboxGet(ids=None))
    roles = {m.role: m.id for m in listed.data if m.role}
    inbox = roles["inbox"]
    made = client.request(MailboxSet(create={"f": jmapc.Mailbox(name="Folder")}))
    folder = made.created["f"].id
    paths = [CORPUS / "04-latin1.eml", CORPUS / "05-windows1252.eml", CORPUS / "07-koi8r.eml"]
    emails = [_import(client, p, inbox) for p in paths]
    query = EmailQuery(filter=jmapc.EmailQueryFilterCondition(in_mailbox=inbox),
                       sort=[jmapc.Comparator(property="receivedAt", is_ascending=False)])
    before = client.request(query)
    assert isinstance(before, EmailQueryResponse) and set(before.ids) == {e["id"] for e in emails}
    email_state = client.request(EmailGet(ids=[], properties=["id"])).state

    moved = client.request(EmailSet(update={emails[0]["id"]: {f"mailboxIds/{inbox}": None,
                                                              f"mailboxIds/{folder}": True}}))
    assert isinstance(moved, EmailSetResponse) and moved.updated == {emails[0]["id"]: None}, moved
    counts = client.request(MailboxGet(ids=[inbox, folder], properties=["totalEmails", "unreadEmails"]))
    assert [(m.total_emails, m.unread_emails) for m in counts.data] == [(2, 2), (1, 1)]
    changes = client.request(EmailChanges(since_state=email_state))
    assert isinstance(changes, EmailChangesResponse) and changes.updated == [emails[0]["id"]], changes
    after = client.request(EmailQueryChanges(
        filter=jmapc.EmailQueryFilterCondition(in_mailbox=inbox),
        sort=[jmapc.Comparator(property="receivedAt", is_ascending=False)], since_query_state=before.query_state))
    assert isinstance(after, EmailQueryChangesResponse) and emails[0]["id"] in after.removed, after

    renamed = client.request(MailboxSet(update={folder: {"name": "Renamed"}}))
    assert isinstance(renamed, MailboxSetResponse) and folder in renamed.updated, renamed
    # A mailbox with mail is kept unless onDestroyRemoveEmails says otherwise (RFC 8621 §2.5).
    kept = client.request(MailboxSet(destroy=[folder]))
    assert kept.not_destroyed[folder].type == "mailboxHasEmail", kept
    gone = client.request(MailboxSet(destroy=[folder], on_destroy_remove_emails=True))
    assert gone.destroyed == [folder], gone
    # Its only mailbox gone, the email went with it.
    got = client.request(EmailGet(ids=[emails[0]["id"]], properties=["id"]))
    assert got.not_found == [emails[0]["id"]]

    destroyed = client.request(EmailSet(destroy=[emails[1]["id"]]))
    assert destroyed.destroyed == [emails[1]["id"]]
    assert client.request(query).ids == [emails[2]["id"]]
