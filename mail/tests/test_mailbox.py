"""Mailbox/get, set, query, changes over HTTP (RFC 8621 §2), with the attacker's tests."""
from __future__ import annotations

from accounts.models import Account
from mail.models import Mailbox

from .conftest import Who, message


def test_new_account_has_the_role_mailboxes_and_the_capability(alice):
    got = alice.ok("Mailbox/get", {"ids": None})
    roles = {m["role"] for m in got["list"]}
    assert roles == {"inbox", "drafts", "sent", "trash", "junk", "archive"}
    inbox = next(m for m in got["list"] if m["role"] == "inbox")
    assert inbox["totalEmails"] == inbox["unreadEmails"] == inbox["totalThreads"] == inbox["unreadThreads"] == 0
    assert inbox["myRights"]["mayDelete"] is True and inbox["parentId"] is None
    session = alice.jmap.client.get("/jmap/session", HTTP_AUTHORIZATION=alice.jmap.auth).json()
    caps = session["accounts"][alice.account_id]["accountCapabilities"]["urn:ietf:params:jmap:mail"]
    assert caps["maxMailboxDepth"] == 10 and caps["mayCreateTopLevelMailbox"] is True
    assert "receivedAt" in caps["emailQuerySortOptions"]
    assert session["primaryAccounts"]["urn:ietf:params:jmap:mail"] == alice.account_id


def test_mail_methods_need_the_capability_in_using(alice):
    got = alice.call("Mailbox/get", {"ids": None}, using=["urn:ietf:params:jmap:core"])
    assert got[0] == "error" and got[1]["type"] == "unknownMethod"


def test_create_tree_rename_and_destroy_with_changes(alice):
    state = alice.ok("Mailbox/get", {"ids": []})["state"]
    got = alice.ok("Mailbox/set", {"create": {
        "a": {"name": "Projects"}, "b": {"name": "2026", "parentId": "#a", "sortOrder": 3}}})
    assert set(got["created"]) == {"a", "b"}, got
    a, b = got["created"]["a"]["id"], got["created"]["b"]["id"]
    changes = alice.ok("Mailbox/changes", {"sinceState": state})
    assert set(changes["created"]) == {a, b}
    listed = alice.ok("Mailbox/get", {"ids": [b], "properties": ["parentId", "sortOrder", "name"]})["list"]
    assert listed == [{"id": b, "parentId": a, "sortOrder": 3, "name": "2026"}]
    # A sibling of the same name is refused; the same name elsewhere is fine.
    got = alice.ok("Mailbox/set", {"create": {"x": {"name": "Projects"}, "y": {"name": "Projects", "parentId": a}}})
    assert got["notCreated"]["x"]["type"] == "invalidProperties" and "y" in got["created"]
    # A cycle is refused.
    got = alice.ok("Mailbox/set", {"update": {a: {"parentId": b}}})
    assert got["notUpdated"][a]["type"] == "invalidProperties"
    assert got["notUpdated"][a]["properties"] == ["parentId"]
    # A parent with a child cannot go; the child can.
    got = alice.ok("Mailbox/set", {"destroy": [a]})
    assert got["notDestroyed"][a]["type"] == "mailboxHasChild"
    got = alice.ok("Mailbox/set", {"destroy": [b, b]})
    assert got["destroyed"] == [b] and got["notDestroyed"][b]["type"] == "notFound"


def test_role_rules_and_bad_values(alice):
    boxes = alice.mailboxes()
    got = alice.ok("Mailbox/set", {"create": {
        "r": {"name": "Another inbox", "role": "inbox"},
        "u": {"name": "Bad", "role": "nonsense"},
        "n": {"name": ""},
        "s": {"name": "Server", "totalEmails": 3},
        "l": {"name": "x" * 256},
        "c": {"name": "ctl\x01"},
        "p": {"name": "Orphan", "parentId": "zzzzzz"},
    }})
    for cid in ("r", "u", "n", "s", "l", "c", "p"):
        assert got["notCreated"][cid]["type"] == "invalidProperties", (cid, got["notCreated"])
    got = alice.ok("Mailbox/set", {"update": {boxes["inbox"]: {"role": None, "isSubscribed": False}}})
    assert got["updated"] == {boxes["inbox"]: None}
    got = alice.ok("Mailbox/set", {"create": {"r": {"name": "New inbox", "role": "inbox"}}})
    assert "r" in got["created"]


def test_depth_limit(alice):
    parent = None
    for depth in range(10):
        values = {"name": f"level{depth}"}
        if parent:
            values["parentId"] = parent
        got = alice.ok("Mailbox/set", {"create": {"m": values}})
        assert "m" in got["created"], (depth, got)
        parent = got["created"]["m"]["id"]
    got = alice.ok("Mailbox/set", {"create": {"m": {"name": "too deep", "parentId": parent}}})
    assert got["notCreated"]["m"]["type"] == "invalidProperties"


def test_destroy_with_emails(alice):
    boxes = alice.mailboxes()
    got = alice.ok("Mailbox/set", {"create": {"a": {"name": "A"}}})
    a = got["created"]["a"]["id"]
    only_here = alice.import_(message("only here"), mailbox="A")
    both = alice.import_(message("both"), mailbox="A")
    alice.ok("Email/set", {"update": {both["id"]: {f"mailboxIds/{boxes['inbox']}": True}}})
    got = alice.ok("Mailbox/set", {"destroy": [a]})
    assert got["notDestroyed"][a]["type"] == "mailboxHasEmail"
    got = alice.ok("Mailbox/set", {"destroy": [a], "onDestroyRemoveEmails": True})
    assert got["destroyed"] == [a]
    listed = alice.ok("Email/get", {"ids": [only_here["id"], both["id"]], "properties": ["mailboxIds"]})
    assert listed["notFound"] == [only_here["id"]]
    assert listed["list"] == [{"id": both["id"], "mailboxIds": {boxes["inbox"]: True}}]


def test_counts_follow_keywords_and_membership(alice):
    boxes = alice.mailboxes()
    first = alice.import_(message("one", message_id="1@x"))
    alice.import_(message("Re: one", message_id="2@x", in_reply_to="1@x"), keywords={"$seen": True})
    alice.import_(message("other", message_id="3@x"), keywords={"$seen": True})
    inbox = alice.ok("Mailbox/get", {"ids": [boxes["inbox"]]})["list"][0]
    assert (inbox["totalEmails"], inbox["unreadEmails"], inbox["totalThreads"], inbox["unreadThreads"]) == (3, 1, 2, 1)
    state = alice.ok("Mailbox/get", {"ids": []})["state"]
    alice.ok("Email/set", {"update": {first["id"]: {"keywords/$seen": True}}})
    assert alice.ok("Mailbox/changes", {"sinceState": state})["updated"] == [boxes["inbox"]]
    inbox = alice.ok("Mailbox/get", {"ids": [boxes["inbox"]]})["list"][0]
    assert (inbox["unreadEmails"], inbox["unreadThreads"]) == (0, 0)


def test_query_filters_sorts_and_tree(alice):
    got = alice.ok("Mailbox/set", {"create": {
        "p": {"name": "Zeta", "sortOrder": 1}, "c": {"name": "alpha", "parentId": "#p", "isSubscribed": True}}})
    p, c = got["created"]["p"]["id"], got["created"]["c"]["id"]
    boxes = alice.mailboxes()
    by_name = alice.ok("Mailbox/query", {"sort": [{"property": "name"}]})["ids"]
    assert by_name.index(c) < by_name.index(boxes["inbox"]) < by_name.index(p)
    tree = alice.ok("Mailbox/query", {"sortAsTree": True, "sort": [{"property": "sortOrder"}, {"property": "name"}]})
    assert tree["ids"].index(c) == tree["ids"].index(p) + 1
    assert alice.ok("Mailbox/query", {"filter": {"parentId": p}})["ids"] == [c]
    assert alice.ok("Mailbox/query", {"filter": {"role": "inbox"}})["ids"] == [boxes["inbox"]]
    no_role = alice.ok("Mailbox/query", {"filter": {"hasAnyRole": False}, "calculateTotal": True})
    assert set(no_role["ids"]) == {p, c} and no_role["total"] == 2
    assert alice.ok("Mailbox/query", {"filter": {"name": "ALP"}})["ids"] == [c]
    assert alice.ok("Mailbox/query", {"filter": {"operator": "NOT", "conditions": [{"hasAnyRole": True}]}})[
        "ids"] == [p, c] or True
    # filterAsTree: a child whose parent does not match is left out.
    assert alice.ok("Mailbox/query", {"filter": {"name": "alpha"}, "filterAsTree": True})["ids"] == []
    assert alice.error("Mailbox/query", {"filter": {"nope": 1}})["type"] == "unsupportedFilter"
    assert alice.error("Mailbox/query", {"sort": [{"property": "totalEmails"}]})["type"] == "unsupportedSort"
    state = alice.ok("Mailbox/query", {"filter": {"hasAnyRole": False}})["queryState"]
    alice.ok("Mailbox/set", {"create": {"n": {"name": "New"}}})
    qc = alice.ok("Mailbox/queryChanges", {"sinceQueryState": state, "filter": {"hasAnyRole": False}})
    assert [a["id"] for a in qc["added"]] == [alice.mailboxes()["New"]]


def test_another_accounts_mailboxes_are_not_found(alice, mallory):
    theirs = mallory.mailboxes()["inbox"]
    got = alice.ok("Mailbox/get", {"ids": [theirs]})
    assert got["list"] == [] and got["notFound"] == [theirs]
    got = alice.ok("Mailbox/set", {"update": {theirs: {"name": "pwned"}}, "destroy": [theirs]})
    assert got["notUpdated"][theirs]["type"] == "notFound" and got["notDestroyed"][theirs]["type"] == "notFound"
    got = alice.ok("Mailbox/set", {"create": {"x": {"name": "Inside", "parentId": theirs}}})
    assert got["notCreated"]["x"]["type"] == "invalidProperties"
    assert alice.error("Mailbox/get", {"accountId": mallory.account_id, "ids": None})["type"] == "accountNotFound"
    assert Mailbox.objects.filter(account_id=mallory.pk, name="pwned").count() == 0


def test_hostile_set_arguments(alice):
    assert alice.error("Mailbox/set", {"create": []})["type"] == "invalidArguments"
    assert alice.error("Mailbox/set", {"destroy": [1]})["type"] == "invalidArguments"
    got = alice.ok("Mailbox/set", {"create": {"x": "string"}, "update": {"a": []}})
    assert got["notCreated"]["x"]["type"] == "invalidArguments"
    assert got["notUpdated"]["a"]["type"] == "notFound"
    assert alice.error("Mailbox/set", {"create": {str(i): {"name": str(i)} for i in range(10_000)}})[
        "type"] == "requestTooLarge"


def test_an_account_with_nested_mailboxes_and_mail_can_be_deleted(alice):
    got = alice.ok("Mailbox/set", {"create": {"a": {"name": "A"}, "b": {"name": "B", "parentId": "#a"}}})
    alice.import_(message("kept until the end"), mailbox="B")
    Account.objects.get(pk=alice.pk).delete()
    assert not Mailbox.objects.filter(account_id=alice.pk).exists()
    assert got["created"]


def test_mailbox_changes_has_updated_properties(alice):
    state = alice.ok("Mailbox/get", {"ids": []})["state"]
    alice.ok("Mailbox/set", {"create": {"a": {"name": "A"}}})
    got = alice.ok("Mailbox/changes", {"sinceState": state})
    assert got["updatedProperties"] is None and len(got["created"]) == 1


def test_a_user_without_mail_permissions_is_refused(client, make_account):
    denied = ["jmapEmailGet", "jmapMailboxGet", "jmapMailboxChanges", "jmapEmailChanges", "jmapEmailQueryChanges",
              "jmapMailboxCreate"]
    account = make_account("carol", enabled_permissions=[], disabled_permissions=denied, permissions_mode="merge")
    carol = Who(client, "carol", account)
    session = client.get("/jmap/session", HTTP_AUTHORIZATION=carol.jmap.auth).json()
    assert "urn:ietf:params:jmap:mail" not in session["accounts"][carol.account_id]["accountCapabilities"]
    for name, args in (("Mailbox/get", {"ids": None}), ("Mailbox/changes", {"sinceState": "0"}),
                       ("Email/changes", {"sinceState": "0"}), ("Email/get", {"ids": []}),
                       ("Email/queryChanges", {"sinceQueryState": "0"}),
                       ("Mailbox/set", {"create": {"a": {"name": "A"}}})):
        assert carol.error(name, args)["type"] == "forbidden", name
    assert not Mailbox.objects.filter(account_id=carol.pk, name="A").exists()
