"""The LDAP backend against a real OpenLDAP server (tests/slapd.py), OpenLDAP and AD schemas."""
from __future__ import annotations

import json
import re
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path

import ldap3
import pytest

from accounts.hashing import verify_secret
from directories.base import DirectoryError, DirectoryUnavailable, SecretRef, build
from directories.ldap import MEMBER_OF_BATCH, LdapDirectory, render_filter, validate_filter
from tests.slapd import (ALICE_HASH, ALICE_PASSWORD, BASE_DN, BOB_PASSWORD, DAVE_PASSWORD,
                         ERIN_PASSWORD, FRANK_PASSWORD, READER_PASSWORD, SCARLETT_DN, SCARLETT_PASSWORD,
                         start_or_skip, slapd)  # noqa: F401  (slapd: the module's server fixture)

SECOND = timedelta(seconds=1)


@pytest.fixture
def directory(slapd):
    backends = []

    def make(config):
        backend = build(config)
        backends.append(backend)
        return backend

    yield make
    for backend in backends:
        backend.close()


@pytest.fixture
def own_slapd():
    """A server of the test's own, for tests that change entries or restart it."""
    server = start_or_skip()
    yield server
    server.close()


# --- filters --------------------------------------------------------------------------------

@pytest.mark.parametrize("template", [
    "(&(objectClass=inetOrgPerson)(mail=?))",
    "(|(&(objectClass=inetOrgPerson)(|(mail=?)(mailAlias=?)))(&(objectClass=groupOfNames)(|(mail=?)(mailAlias=?))))",
    "(&(objectClass=groupOfNames)(member=?))",
    "(&(objectClass=user)(sAMAccountName={local}))",
    "(&(objectClass=user)(userPrincipalName={user})(!(userAccountControl:1.2.840.113556.1.4.803:=2)))",
    "(&(uid={local})(mail=*@{domain}))",
    "(cn:caseExactMatch:=?)",
    "(:dn:2.5.13.5:=?)",
    "(mail;lang-en=?)",
    "(2.5.4.3=?)",
    "(mail=\\2a?)",
])
def test_valid_filters(template):
    assert validate_filter(template) is None


@pytest.mark.parametrize("template, reason", [
    ("(&(mail=?)", "expected ')'"),
    ("mail=?", "expected '('"),
    ("(mail=?))", "after the filter"),
    ("(|(&)(mail=?))", "at least one filter"),
    ("(mail=alice)", "placeholder"),
    ("(mail={bogus})", "unknown placeholder"),
    ("(mail={local)", "unclosed"),
    ("(?=alice)", "position 2"),
    ("(mail=a(b?)", "escaped"),
    ("(mail=?\\zz)", "hexadecimal digits at position 8"),
    ("(mail={local})(x=y)", "after the filter at position 15"),
    ("(mail~?)", "expected '='"),
    ("(mail>=?*)", "escaped"),
    ("( mail=?)", "attribute"),
    ("(01.2=?)", "OID"),
    ("(:=?)", "matching rule"),
    ("(:dn:=?)", "matching rule"),
    ("(cn:dn=?)", "expected ':'"),
    ("", "empty"),
])
def test_invalid_filters(template, reason):
    error = validate_filter(template)
    assert error and reason in error, error


def test_substituted_values_are_escaped():
    assert render_filter("(mail=?)", "*)(uid=*") == "(mail=\\2a\\29\\28uid=\\2a)"
    assert render_filter("(uid={local})", "a\\b@x.org") == "(uid=a\\5cb)"
    assert render_filter("(member=?)", "cn=a\x00b") == "(member=cn=a\\00b)"
    assert validate_filter("(mail=?)") is None


# --- bind mode, OpenLDAP schema ----------------------------------------------------------------

def test_bind_mode_maps_the_entry(slapd, directory):
    ldap = directory(slapd.config())
    alice = ldap.authenticate("alice@example.org", ALICE_PASSWORD)
    assert alice.name == "alice@example.org"
    assert alice.kind == "user"
    assert alice.description == "Alice Liddell"
    assert alice.emails == ("alice@example.org", "a.liddell@example.org", "wonder@example.org")
    assert alice.groups == ("sales@example.org", "staff")  # the group's mail, else its cn
    assert alice.verified is True and alice.secret_hash is None
    assert alice.secret_marker == "20260101000000Z"


def test_bind_mode_refuses_wrong_empty_and_unknown(slapd, directory):
    ldap = directory(slapd.config())
    assert ldap.authenticate("alice@example.org", "not-her-password") is None
    assert ldap.authenticate("alice@example.org", "") is None  # no unauthenticated bind
    assert ldap.authenticate("nobody@example.org", ALICE_PASSWORD) is None
    assert ldap.authenticate("bob@example.org", ALICE_PASSWORD) is None
    # A cleartext userPassword is checked by slapd as well.
    assert ldap.authenticate("bob@example.org", BOB_PASSWORD).groups == ("staff",)
    # The connection a user bound on goes back to the bind DN for the next search.
    assert ldap.lookup("alice@example.org").name == "alice@example.org"


@pytest.mark.parametrize("login", ["*", "*)(uid=*", "alice@example.org)(uid=*", "*@example.org",
                                   "alice@example.org)(|(mail=*", "\\2a", "a*"])
def test_filter_metacharacters_match_nothing(slapd, directory, login):
    ldap = directory(slapd.config())
    assert ldap.lookup(login) is None
    assert ldap.authenticate(login, ALICE_PASSWORD) is None
    ad = directory(slapd.ad_config())
    assert ad.lookup(login) is None


def test_a_dn_with_special_characters(slapd, directory):
    """The DN has ( ) * and an escaped comma: the bind uses it as is, filterMemberOf escapes
    it, and the group is still found."""
    ldap = directory(slapd.config())
    scarlett = ldap.authenticate("scarlett@example.org", SCARLETT_PASSWORD)
    assert scarlett.verified and scarlett.groups == ("sales@example.org",)
    assert render_filter("(member=?)", SCARLETT_DN).startswith("(member=cn=Scarlett \\28Sales\\29\\2a \\5c,")


def test_lookup_does_not_check_a_secret(slapd, directory):
    for config in (slapd.config(), slapd.config(bind_authentication=False)):
        alice = directory(config).lookup("alice@example.org")
        assert alice.verified is False and alice.secret_hash is None
        assert alice.groups == ("sales@example.org", "staff")


def test_groups_come_out_as_groups(slapd, directory):
    mailbox = slapd.config().filter_mailbox
    ldap = directory(slapd.config(filter_login=mailbox))
    sales = ldap.lookup("deals@example.org")
    assert sales.kind == "group"
    assert sales.name == "sales@example.org"
    assert sales.emails == ("sales@example.org", "deals@example.org")
    assert sales.description == "The sales team"
    assert ldap.lookup("wonder@example.org").kind == "user"


def test_mailbox_lookup_by_address_or_alias(slapd, directory):
    ldap = directory(slapd.config())
    assert ldap.lookup_mailbox("wonder@example.org").name == "alice@example.org"
    sales = ldap.lookup_mailbox("deals@example.org")
    assert sales.kind == "group" and sales.name == "sales@example.org"
    assert ldap.lookup("deals@example.org") is None  # filterLogin knows people only
    for address in ("*", "*)(mail=*", "nobody@example.org"):
        assert ldap.lookup_mailbox(address) is None


def test_without_filter_member_of_openldap_entries_have_no_groups(slapd, directory):
    # OpenLDAP entries have no memberOf here: only filterMemberOf yields groups; without it, none.
    assert directory(slapd.config(filter_member_of=None)).lookup("alice@example.org").groups == ()


def test_an_ambiguous_login_filter_is_refused(slapd, directory):
    ldap = directory(slapd.config(filter_login="(|(mail=?)(objectClass=inetOrgPerson))"))
    with pytest.raises(DirectoryError):
        ldap.authenticate("alice@example.org", ALICE_PASSWORD)


def test_an_unusable_member_of_filter_is_a_directory_error(slapd, directory):
    """A filter that slipped past validation (set directly in the database) fails the login
    with DirectoryError, which the caller logs, not with the library's own exception."""
    ldap = directory(slapd.config(filter_member_of="(&(member=?)"))
    with pytest.raises(DirectoryError):
        ldap.lookup("alice@example.org")
    assert directory(slapd.config()).lookup("alice@example.org")


def test_anonymous_bind_dn(slapd, directory):
    ldap = directory(slapd.config(bind_dn=None, bind_secret=SecretRef()))
    assert ldap.authenticate("alice@example.org", ALICE_PASSWORD).verified


# --- hash mode --------------------------------------------------------------------------------

def test_hash_mode_returns_the_stored_hash(slapd, directory):
    ldap = directory(slapd.config(bind_authentication=False))
    alice = ldap.authenticate("alice@example.org", "whatever the user typed")
    assert alice.verified is False
    assert alice.secret_hash == ALICE_HASH
    assert verify_secret(ALICE_PASSWORD, alice.secret_hash)
    assert not verify_secret("wrong", alice.secret_hash)
    bob = ldap.authenticate("bob@example.org", "x")
    assert verify_secret(BOB_PASSWORD, bob.secret_hash) and not verify_secret("x", bob.secret_hash)
    assert ldap.authenticate("nobody@example.org", "x") is None


def test_hash_mode_without_read_access_gets_no_hash(slapd, directory):
    """slapd's ACL lets only the reader see userPassword: anonymous gets nothing to verify."""
    ldap = directory(slapd.config(bind_authentication=False, bind_dn=None, bind_secret=SecretRef()))
    alice = ldap.authenticate("alice@example.org", ALICE_PASSWORD)
    assert alice.secret_hash is None and alice.verified is False


# --- Active Directory schema ------------------------------------------------------------------

def test_active_directory_by_sam_account_name(slapd, directory):
    ad = directory(slapd.ad_config())
    dave = ad.authenticate("dave@corp.example.org", DAVE_PASSWORD)
    assert dave.name == "dave@corp.example.org"
    assert dave.description == "Dave Jones"  # displayName first
    assert dave.groups == ("engineering@corp.example.org", "Remote Workers")  # memberOf DNs
    assert dave.verified
    assert ad.authenticate("dave@corp.example.org", ERIN_PASSWORD) is None
    # The local part is what is looked up: the domain of the login does not select the entry.
    assert ad.authenticate("erin@example.org", ERIN_PASSWORD).name == "erin@corp.example.org"


def test_active_directory_by_user_principal_name_in_hash_mode(slapd, directory):
    ad = directory(slapd.ad_config(filter_login="(&(objectClass=user)(userPrincipalName=?))",
                                   bind_authentication=False))
    erin = ad.authenticate("erin@corp.example.org", "typed")
    assert verify_secret(ERIN_PASSWORD, erin.secret_hash)
    assert erin.groups == ("Remote Workers",)
    assert ad.lookup("erin") is None


def test_active_directory_group_kind(slapd, directory):
    ad = directory(slapd.ad_config(filter_login=slapd.ad_config().filter_mailbox))
    group = ad.lookup("engineering@corp.example.org")
    assert group.kind == "group" and group.name == "engineering@corp.example.org"


def test_member_of_groups_resolve_in_one_search_per_batch(own_slapd):
    """memberOf DNs are named with one search per MEMBER_OF_BATCH groups, not one per group
    (counted by the server's monitor); an entry sharing a group's cn elsewhere in the tree is
    not taken for it, and a DN outside the base DN is still resolved, on its own."""
    corp = f"ou=corp,{BASE_DN}"
    count = MEMBER_OF_BATCH + 5
    with own_slapd.admin() as admin:
        admin.add(f"ou=many,{corp}", "organizationalUnit", {"ou": "many"})
        admin.add(f"ou=decoys,{BASE_DN}", "organizationalUnit", {"ou": "decoys"})
        groups = []
        for i in range(count):
            dn = f"cn=Team {i:03},ou=many,{corp}"
            assert admin.add(dn, "group", {"cn": f"Team {i:03}", "mail": f"team{i:03}@corp.example.org"})
            groups.append(dn)
        # Same cn, not a group the user is in: must not name it.
        assert admin.add(f"cn=Team 000,ou=decoys,{BASE_DN}", "group",
                         {"cn": "Team 000", "mail": "decoy@example.org"})
        # Outside the AD config's base DN (ou=corp): resolved by a search of its own.
        assert admin.add(f"cn=Outside,ou=groups,{BASE_DN}", "groupOfNames",
                         {"cn": "Outside", "member": f"cn=Dave Jones,{corp}"})
        groups.append(f"cn=Outside,ou=groups,{BASE_DN}")
        assert admin.modify(f"cn=Dave Jones,{corp}", {"memberOf": [(ldap3.MODIFY_ADD, groups)]})
    ad = LdapDirectory(own_slapd.ad_config())
    try:
        ad.lookup("dave")  # the connection and the service bind
        before = own_slapd.searches()
        dave = ad.lookup("dave")
        # The login search, two batches under the base DN, one outside it (and searches() itself).
        assert own_slapd.searches() - before - 1 == 1 + 2 + 1
    finally:
        ad.close()
    assert dave.groups == ("engineering@corp.example.org", "Remote Workers",
                           *(f"team{i:03}@corp.example.org" for i in range(count)), "Outside")


# --- secret changes ---------------------------------------------------------------------------

def test_a_password_change_changes_the_marker(own_slapd):
    ldap = LdapDirectory(own_slapd.config())
    try:
        before = ldap.authenticate("alice@example.org", ALICE_PASSWORD).secret_marker
        with own_slapd.admin() as admin:
            assert admin.modify(f"uid=alice,ou=people,{BASE_DN}",
                                {"userPassword": [(ldap3.MODIFY_REPLACE, ["Brand-New-Secret-5"])]})
        assert ldap.authenticate("alice@example.org", ALICE_PASSWORD) is None
        after = ldap.authenticate("alice@example.org", "Brand-New-Secret-5").secret_marker
        assert after and after != before
    finally:
        ldap.close()


# --- the bind secret ----------------------------------------------------------------------------

def test_bind_secret_from_env_and_file(slapd, directory, monkeypatch, tmp_path):
    monkeypatch.setenv("TEST_LDAP_BIND_SECRET", READER_PASSWORD)
    ldap = directory(slapd.config(bind_secret=SecretRef(kind="env", variable="TEST_LDAP_BIND_SECRET"),
                                  bind_authentication=False))
    assert ldap.authenticate("alice@example.org", "x").secret_hash == ALICE_HASH
    path = tmp_path / "bind-secret"
    path.write_text(READER_PASSWORD + "\n")
    ldap = directory(slapd.config(bind_secret=SecretRef(kind="file", path=str(path)),
                                  bind_authentication=False))
    assert ldap.authenticate("alice@example.org", "x").secret_hash == ALICE_HASH


@pytest.mark.parametrize("secret", [SecretRef(kind="value", value="wrong"),
                                    SecretRef(kind="env", variable="TEST_LDAP_UNSET_VARIABLE"),
                                    SecretRef(kind="file", path="/nonexistent/bind-secret")])
def test_a_bad_bind_secret_is_a_directory_error(slapd, directory, secret):
    ldap = directory(slapd.config(bind_secret=secret))
    with pytest.raises(DirectoryError):
        ldap.authenticate("alice@example.org", ALICE_PASSWORD)


# --- TLS --------------------------------------------------------------------------------------

def test_starttls_needs_a_valid_certificate_unless_allowed(slapd, directory):
    strict = directory(slapd.config(use_tls=True))
    with pytest.raises(DirectoryUnavailable):
        strict.authenticate("alice@example.org", ALICE_PASSWORD)
    lenient = directory(slapd.config(use_tls=True, allow_invalid_certs=True))
    assert lenient.authenticate("alice@example.org", ALICE_PASSWORD).verified


def test_ldaps_needs_a_valid_certificate_unless_allowed(slapd, directory):
    strict = directory(slapd.config(url=slapd.ldaps_url))
    with pytest.raises(DirectoryUnavailable):
        strict.authenticate("alice@example.org", ALICE_PASSWORD)
    lenient = directory(slapd.config(url=slapd.ldaps_url, allow_invalid_certs=True))
    assert lenient.authenticate("alice@example.org", ALICE_PASSWORD).verified


def test_a_certificate_from_a_trusted_authority_is_accepted(slapd, directory, monkeypatch):
    """Validation is real: once the server's certificate is in the trusted store (OpenSSL
    reads SSL_CERT_FILE), the strict settings connect, by StartTLS and by ldaps://."""
    monkeypatch.setenv("SSL_CERT_FILE", str(slapd.cert))
    for config in (slapd.config(use_tls=True), slapd.config(url=slapd.ldaps_url)):
        assert directory(config).authenticate("alice@example.org", ALICE_PASSWORD).verified


def test_a_trusted_certificate_for_another_name_is_refused(slapd, directory, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(slapd.cert))
    strict = directory(slapd.config(url=slapd.ldaps_url_unnamed))
    with pytest.raises(DirectoryUnavailable, match="match"):
        strict.authenticate("alice@example.org", ALICE_PASSWORD)
    lenient = directory(slapd.config(url=slapd.ldaps_url_unnamed, allow_invalid_certs=True))
    assert lenient.authenticate("alice@example.org", ALICE_PASSWORD).verified


# --- availability and the pool ----------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_server_down_is_unavailable(slapd, directory):
    ldap = directory(slapd.config(url=f"ldap://127.0.0.1:{_free_port()}"))
    with pytest.raises(DirectoryUnavailable):
        ldap.authenticate("alice@example.org", ALICE_PASSWORD)
    with pytest.raises(DirectoryUnavailable):
        ldap.lookup("alice@example.org")


def test_a_bad_url_is_a_directory_error(slapd):
    with pytest.raises(DirectoryError):
        LdapDirectory(slapd.config(url="http://127.0.0.1:389"))


@pytest.fixture
def silent_listener():
    """A TCP listener that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted = threading.Event()
    held = []

    def accept():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)
            accepted.set()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    def hang_up():
        for conn in held:
            conn.close()

    yield f"ldap://127.0.0.1:{server.getsockname()[1]}", accepted, hang_up
    server.close()
    hang_up()


@pytest.mark.parametrize("tls", ["none", "starttls", "ldaps"])
def test_a_server_that_never_answers_times_out(slapd, directory, silent_listener, tls):
    url, _, _ = silent_listener
    if tls == "ldaps":
        url = url.replace("ldap://", "ldaps://")
    # ldap3 sets whole seconds during the TLS handshake of ldaps://; the exact value afterwards.
    timeout = SECOND if tls == "ldaps" else timedelta(milliseconds=300)
    ldap = directory(slapd.config(url=url, timeout=timeout, use_tls=tls == "starttls"))
    started = time.monotonic()
    with pytest.raises(DirectoryUnavailable):
        ldap.authenticate("alice@example.org", ALICE_PASSWORD)
    assert time.monotonic() - started < 4  # the 30 s default would be far above


def test_an_exhausted_pool_is_unavailable(slapd, directory, silent_listener):
    url, accepted, hang_up = silent_listener
    ldap = directory(slapd.config(url=url, timeout=10 * SECOND, pool_max_connections=1,
                                  pool_timeout_wait=timedelta(milliseconds=200)))
    outcome = []

    def hold_the_only_connection():
        try:
            ldap.authenticate("alice@example.org", ALICE_PASSWORD)
        except DirectoryUnavailable as exc:
            outcome.append(exc)

    holder = threading.Thread(target=hold_the_only_connection)
    holder.start()
    assert accepted.wait(5)
    started = time.monotonic()
    with pytest.raises(DirectoryUnavailable, match="pool exhausted"):
        ldap.authenticate("bob@example.org", BOB_PASSWORD)
    assert time.monotonic() - started < 2
    hang_up()
    holder.join()
    assert outcome  # the holder saw the server hang up


def test_concurrent_logins_stay_within_the_pool_limit(own_slapd):
    ldap = LdapDirectory(own_slapd.config(pool_max_connections=3))
    seen, done, results = [], threading.Event(), []

    def sample():
        while not done.is_set():
            seen.append(own_slapd.connections())

    def login(i):
        if i % 2:
            results.append(ldap.authenticate("alice@example.org", ALICE_PASSWORD) is not None)
        else:
            results.append(ldap.authenticate("bob@example.org", BOB_PASSWORD) is not None)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        workers = [threading.Thread(target=login, args=(i,)) for i in range(24)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        done.set()
        sampler.join()
    assert results == [True] * 24
    assert seen and max(seen) <= 3, seen
    assert 1 <= own_slapd.connections() <= 3  # idle ones are kept for the next logins
    ldap.close()
    # slapd handles an unbind asynchronously: ask until it has noticed (each ask is a round trip).
    deadline = time.monotonic() + 5
    while own_slapd.connections() and time.monotonic() < deadline:
        pass
    assert own_slapd.connections() == 0


def test_bind_mode_binds_twice_per_login_and_hash_mode_once_per_connection(own_slapd):
    """What the server sees (slapd.binds() is also what the verdict-cache tests count): a bind
    mode login binds as the user and back as the bind DN; hash mode keeps the bind DN's bind."""
    bind_mode = LdapDirectory(own_slapd.config())
    hash_mode = LdapDirectory(own_slapd.config(bind_authentication=False))
    try:
        bind_mode.lookup("alice@example.org")  # the connection and its first bind
        before = own_slapd.binds()
        for _ in range(3):
            assert bind_mode.authenticate("alice@example.org", ALICE_PASSWORD)
        # Each: as the user, then back as the bind DN to search the groups.
        assert own_slapd.binds() - before - 1 == 3 * 2
        hash_mode.lookup("alice@example.org")
        before = own_slapd.binds()
        for _ in range(3):
            assert hash_mode.authenticate("alice@example.org", "x").secret_hash
        assert own_slapd.binds() - before - 1 == 0
    finally:
        bind_mode.close()
        hash_mode.close()


def test_dead_connections_are_replaced_after_a_restart(own_slapd):
    ldap = LdapDirectory(own_slapd.config())
    try:
        assert ldap.authenticate("alice@example.org", ALICE_PASSWORD)
        own_slapd.restart()
        assert ldap.authenticate("alice@example.org", ALICE_PASSWORD).verified
        own_slapd.stop()
        with pytest.raises(DirectoryUnavailable):
            ldap.authenticate("alice@example.org", ALICE_PASSWORD)
        own_slapd.start()
        assert ldap.lookup("bob@example.org").name == "bob@example.org"
    finally:
        ldap.close()


def test_the_payload_for_the_end_to_end_tests_matches_the_config(slapd):
    """directory_create() is the x:Directory/set object the merged login tests will use; it must
    describe the same server and filters as config()."""
    payload, config = slapd.directory_create(), slapd.config()
    assert payload["url"] == config.url and payload["baseDn"] == config.base_dn
    assert payload["bindDn"] == config.bind_dn
    assert payload["bindSecret"] == {"@type": "Value", "secret": READER_PASSWORD}
    assert payload["filterLogin"] == config.filter_login
    assert payload["filterMemberOf"] == config.filter_member_of
    assert tuple(payload["attrSecretChanged"]) == config.attr_secret_changed
    for name in ("filterLogin", "filterMailbox", "filterMemberOf"):
        assert validate_filter(payload[name]) is None


# --- the worked examples of docs/authentication.md, "LDAP and Active Directory" ------------------

def _doc_examples() -> dict[str, dict]:
    text = (Path(__file__).resolve().parents[2] / "docs" / "authentication.md").read_text()
    text = text.split("### LDAP and Active Directory", 1)[1].split("\n### ", 1)[0]
    examples = {}
    for block in re.findall(r"```json\n(.*?)```", text, re.S):
        method, arguments, _ = json.loads(block)
        if method == "x:Directory/set":
            examples.update(arguments["create"])
    return examples


def test_the_documented_filters_are_valid():
    examples = _doc_examples()
    assert set(examples) == {"ldap", "ad"}
    for example in examples.values():
        for name in ("filterLogin", "filterMailbox", "filterMemberOf"):
            if example[name] is not None:
                assert validate_filter(example[name]) is None, (name, example[name])


def test_the_documented_openldap_example_against_slapd(slapd, directory):
    doc = _doc_examples()["ldap"]
    ldap = directory(slapd.config(
        filter_login=doc["filterLogin"], filter_member_of=doc["filterMemberOf"],
        attr_email=tuple(doc["attrEmail"]), attr_email_alias=tuple(doc["attrEmailAlias"]),
        attr_secret_changed=tuple(doc["attrSecretChanged"]), group_class=doc["groupClass"]))
    alice = ldap.authenticate("alice@example.org", ALICE_PASSWORD)
    assert alice.groups == ("sales@example.org", "staff") and alice.secret_marker


def test_the_documented_active_directory_example_against_slapd(slapd, directory):
    """The documented filter keeps disabled accounts (userAccountControl bit 2) out, with
    OpenLDAP's implementation of AD's bitwise-AND matching rule."""
    doc = _doc_examples()["ad"]
    ad = directory(slapd.ad_config(
        filter_login=doc["filterLogin"], attr_description=tuple(doc["attrDescription"]),
        attr_member_of=tuple(doc["attrMemberOf"]), group_class=doc["groupClass"]))
    assert ad.authenticate("dave@corp.example.org", DAVE_PASSWORD).groups == (
        "engineering@corp.example.org", "Remote Workers")
    assert ad.authenticate("erin@corp.example.org", ERIN_PASSWORD) is not None  # 66048: enabled
    assert ad.authenticate("frank@corp.example.org", FRANK_PASSWORD) is None
    # Without the clause, the disabled account would log in.
    plain = directory(slapd.ad_config())
    assert plain.authenticate("frank@corp.example.org", FRANK_PASSWORD) is not None
