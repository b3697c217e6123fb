"""The From/Sender/MAIL FROM check EmailSubmission will run (RFC 8621 §7.5), on parsed
addresses: what an account may claim, forbiddenFrom and forbiddenMailFrom."""
from __future__ import annotations

import pytest

from accounts.models import Alias, Domain
from submission import senders
from submission.models import Identity

pytestmark = pytest.mark.django_db


@pytest.fixture
def bob(make_account, domain):
    account = make_account("bob")
    Alias.objects.create(account=account, name="robert", domain=domain)
    Alias.objects.create(account=account, name="*", domain=Domain.objects.create(name="example.net"))
    return account


@pytest.fixture
def mallory(make_account):
    return make_account("mallory")


def identity(account, email):
    return Identity.objects.create(account=account, email=email)


def verdict(*args, **kw):
    error = senders.check(*args, **kw)
    return None if error is None else error.type


def test_own_address_alias_and_catch_all(bob):
    assert verdict(bob, identity(bob, "bob@example.org"), ["bob@example.org"]) is None
    assert verdict(bob, identity(bob, "robert@example.org"), ["Robert@EXAMPLE.org"], mail_from="bob@example.org") is None
    wildcard = identity(bob, "*@example.net")
    assert verdict(bob, wildcard, ["sales@example.net"], mail_from="sales@example.net") is None
    # A Sender is the author: From may then name another of the account's addresses.
    assert verdict(bob, identity(bob, "bob@example.org"), ["robert@example.org"], ["bob@example.org"]) is None


@pytest.mark.parametrize("from_, sender, expected", [
    (["mallory@example.org"], [], "forbiddenFrom"),                          # someone else's address
    (["bob@example.org", "mallory@example.org"], [], "forbiddenFrom"),       # one of several From
    ([], [], "forbiddenFrom"),                                              # no From at all
    (["robert@example.org"], [], "forbiddenFrom"),                          # own alias, not the identity's
    (["bob@example.org"], ["mallory@example.org"], "forbiddenFrom"),         # a forged Sender
    (["bob@example.org"], ["bob@example.org", "robert@example.org"], "forbiddenFrom"),
    (["not an address"], [], "forbiddenFrom"),
])
def test_forbidden_from(bob, mallory, from_, sender, expected):
    assert verdict(bob, identity(bob, "bob@example.org"), from_, sender) == expected


@pytest.mark.parametrize("mail_from", ["mallory@example.org", "", "bob@elsewhere.org", "bob@example.org\r\nRCPT"])
def test_forbidden_mail_from(bob, mail_from):
    assert verdict(bob, identity(bob, "bob@example.org"), ["bob@example.org"], mail_from=mail_from) == \
        "forbiddenMailFrom"


def test_another_accounts_identity(bob, mallory):
    assert verdict(mallory, identity(bob, "bob@example.org"), ["bob@example.org"]) == "forbiddenFrom"


def test_an_alias_removed_after_the_identity_was_made(bob):
    made = identity(bob, "robert@example.org")
    assert verdict(bob, made, ["robert@example.org"]) is None
    Alias.objects.filter(account=bob, name="robert").update(enabled=False)
    assert verdict(bob, made, ["robert@example.org"]) == "forbiddenFrom"
    Alias.objects.filter(account=bob, name="*").delete()
    assert verdict(bob, identity(bob, "*@example.net"), ["x@example.net"]) == "forbiddenFrom"
