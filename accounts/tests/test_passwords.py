"""Passwords: policy, hashing, expiry, the self-service and admin pages, the recovery
administrator and the bootstrap command (auth spec §1, §2, §2.4, §2.5, §7, §12, §14, §15).

Everything goes through the real services, views and admin; nothing of the project is mocked.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import re
import string
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from zxcvbn import zxcvbn

from accounts import credentials, hashing, login as account_login, services
from accounts.authz import account_permissions
from accounts.models import Account, Alias, Authentication, Credential, Domain, SystemSettings
from accounts.permissions import EXPIRED_PASSWORD_PERMISSIONS, all_permissions
from accounts.policy import PolicyViolation, check_password
from conftest import STRONG_PASSWORD
from registry import errors
from tests import sqldirs
from tests.clients import basic
from registry import services as registry
from registry.models import AuditEvent
from security.models import BlockedIp, Security

NEW_PASSWORD = "Ochre-Tundra-Whistle-482"
OTHER_PASSWORD = "Velvet-Harbor-Cinder-735"
RECOVERY = "recovery:Some-Secret-Value-1"
ALGORITHMS = {
    "argon2id": "$argon2id$",
    "bcrypt": "$2b$",
    "scrypt": "$scrypt$",
    "pbkdf2": "$pbkdf2-sha256$",
}
REMOTE = "192.0.2.77"  # not loopback: loopback addresses are never counted nor banned


# --- helpers --------------------------------------------------------------------------------
def configure(**values):
    """Change the Authentication settings through the registry, as every face does."""
    return registry.update(Authentication._declaration, None, values, "test")


def password_cred(account) -> Credential:
    return Credential.objects.get(account_id=account.pk, kind=Credential.Kind.PASSWORD)


def stored_hash(account) -> str:
    return password_cred(account).secret_hash


def can_login(login, password) -> bool:
    try:
        account_login.authenticate(login, password, REMOTE)
    except account_login.AuthError:
        return False
    return True


def close_to(value, expected, slack=timedelta(seconds=30)) -> bool:
    return value is not None and abs(value - expected) <= slack


def ssha(password: str, salt: bytes) -> str:
    return "{SSHA}" + base64.b64encode(hashlib.sha1(password.encode() + salt).digest() + salt).decode()


class _FormValues(HTMLParser):
    """The values a browser would submit for one <form id=...> (no JavaScript)."""

    def __init__(self, form_id):
        super().__init__(convert_charrefs=True)
        self.form_id, self.inside, self.pairs = form_id, False, []
        self._select = None
        self._option = None
        self._textarea = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == self.form_id
            return
        if not self.inside:
            return
        if tag == "input":
            kind = (a.get("type") or "text").lower()
            name = a.get("name")
            if not name or kind in ("submit", "button", "image", "file", "reset"):
                return
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.pairs.append((name, a.get("value") or "on"))
                return
            self.pairs.append((name, a.get("value") or ""))
        elif tag == "select":
            self._select = {"name": a.get("name"), "multiple": "multiple" in a, "chosen": [], "first": None}
        elif tag == "option" and self._select is not None:
            self._option = {"value": a.get("value"), "selected": "selected" in a, "text": ""}
        elif tag == "textarea":
            self._textarea = {"name": a.get("name"), "text": ""}

    def handle_data(self, data):
        if self._option is not None:
            self._option["text"] += data
        if self._textarea is not None:
            self._textarea["text"] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "option" and self._option is not None:
            opt, self._option = self._option, None
            value = opt["value"] if opt["value"] is not None else opt["text"].strip()
            if self._select["first"] is None:
                self._select["first"] = value
            if opt["selected"]:
                self._select["chosen"].append(value)
        elif tag == "select" and self._select is not None:
            sel, self._select = self._select, None
            chosen = sel["chosen"] or ([] if sel["multiple"] or sel["first"] is None else [sel["first"]])
            for value in chosen:
                self.pairs.append((sel["name"], value))
        elif tag == "textarea" and self._textarea is not None:
            ta, self._textarea = self._textarea, None
            # Browsers drop one leading newline of a textarea's content.
            self.pairs.append((ta["name"], ta["text"][1:] if ta["text"].startswith("\n") else ta["text"]))


def form_data(response, form_id) -> dict:
    parser = _FormValues(form_id)
    parser.feed(response.content.decode())
    assert parser.pairs, f"form {form_id} not found"
    data: dict[str, list[str]] = {}
    for name, value in parser.pairs:
        data.setdefault(name, []).append(value)
    return {k: v if len(v) > 1 else v[0] for k, v in data.items()}


def admin_change_url(account) -> str:
    return f"/admin/accounts/account/{account.pk}/change/"


def post_account_form(client, account, **changes):
    """Fetch the admin change page, keep every current value, apply `changes` and save."""
    page = client.get(admin_change_url(account))
    assert page.status_code == 200
    data = form_data(page, "account_form")
    assert "credentials-TOTAL_FORMS" in data  # the inline formset's management form
    data.update(changes)
    data["_save"] = "Save"
    return client.post(admin_change_url(account), data)


def form_errors(response, field) -> list[str]:
    form = response.context["adminform"].form if "adminform" in response.context else response.context["form"]
    return list(form.errors.get(field, []))


# --- policy ---------------------------------------------------------------------------------
@pytest.mark.django_db
class TestPolicy:
    def test_default_settings_match_the_reference(self):
        auth = Authentication.load()
        assert (auth.password_hash_algorithm, auth.password_min_length, auth.password_max_length,
                auth.password_min_strength, auth.password_default_expiry) == ("argon2id", 8, 128, "three", None)

    def test_too_long_is_checked_first(self):
        configure(password_max_length=16)
        # Too long AND weak: the length rule speaks.
        with pytest.raises(PolicyViolation) as exc:
            check_password("a" * 17)
        assert exc.value.rule == "maxLength"
        assert exc.value.message == "Password must be at most 16 characters long."
        assert str(exc.value) == exc.value.message
        # Exactly at the limit the length rule is silent and the strength rule speaks.
        with pytest.raises(PolicyViolation) as exc:
            check_password("a" * 16)
        assert exc.value.rule == "strength"

    def test_too_long_wins_over_too_short(self):
        # Inconsistent limits (the reference has no cross-field check): the maximum is checked first.
        settings = Authentication(password_min_length=50, password_max_length=10, password_min_strength="zero")
        with pytest.raises(PolicyViolation) as exc:
            check_password("x" * 20, settings)
        assert exc.value.rule == "maxLength"
        assert exc.value.message == "Password must be at most 10 characters long."

    def test_too_short(self):
        with pytest.raises(PolicyViolation) as exc:
            check_password("aaa")  # also weak: the length rule is checked before the strength
        assert exc.value.rule == "minLength"
        assert exc.value.message == "Password must be at least 8 characters long."
        configure(password_min_length=20)
        with pytest.raises(PolicyViolation) as exc:
            check_password(NEW_PASSWORD[:19])
        assert exc.value.message == "Password must be at least 20 characters long."
        check_password("Ochre-Tundra-Whistle")  # 20 characters: accepted

    @pytest.mark.parametrize("weak", ["password", "password123", "qwertyuiop", "abcabcabcabc", "Summer2024"])
    def test_too_weak_message_carries_zxcvbn_feedback(self, weak):
        expected = zxcvbn(weak)["feedback"]
        with pytest.raises(PolicyViolation) as exc:
            check_password(weak)
        v = exc.value
        assert v.rule == "strength"
        assert v.message.startswith("Password is too weak.")
        assert v.warning == expected["warning"]
        assert v.suggestions == expected["suggestions"]
        assert v.suggestions, "zxcvbn gives suggestions for a weak password"
        for text in [v.warning, *v.suggestions]:
            assert text in v.message
        assert v.message == " ".join(["Password is too weak.", v.warning, *v.suggestions]).strip()

    def test_minimum_strength_is_a_threshold(self):
        pw = "Quintessa.Quintessa"  # zxcvbn score 4 with no user inputs
        assert zxcvbn(pw)["score"] == 4
        configure(password_min_strength="four")
        check_password(pw)
        weak3 = next(p for p in ("Fernsby-Marigold1", "horse-battery-9", "purple-dinosaur")
                     if zxcvbn(p)["score"] == 3)
        with pytest.raises(PolicyViolation):
            check_password(weak3)
        configure(password_min_strength="three")
        check_password(weak3)

    def test_lengths_count_utf8_bytes(self):
        configure(password_min_length=8, password_max_length=10, password_min_strength="zero")
        check_password("éééé")  # 4 characters, 8 bytes: long enough
        check_password("€€€")  # 3 characters, 9 bytes
        with pytest.raises(PolicyViolation) as exc:
            check_password("ééé")  # 6 bytes
        assert exc.value.rule == "minLength"
        with pytest.raises(PolicyViolation) as exc:
            check_password("éééééé")  # 6 characters, 12 bytes: too long
        assert exc.value.rule == "maxLength"
        assert exc.value.message == "Password must be at most 10 characters long."

    def test_multibyte_password_is_set_and_logs_in(self, make_account):
        configure(password_min_length=8, password_max_length=10, password_min_strength="zero")
        account = make_account("carol", password="ñøßü")  # 4 characters, 8 bytes
        assert can_login("carol@example.org", "ñøßü")
        assert not can_login("carol@example.org", "ñøßu")
        with pytest.raises(PolicyViolation):
            credentials.set_password(account, "ñøßüñø", "test")  # 12 bytes

    @pytest.mark.parametrize("personal", [
        "QUINTESSAquintessa",      # the account's name
        "quintessa@example.org",   # its address
        "MarigoldFernsby",         # its description
        "Zephyrine@example.org",   # one of its aliases
    ])
    def test_own_names_make_a_weak_password(self, make_account, domain, personal):
        account = make_account("quintessa", description="Marigold Fernsby")
        Alias.objects.create(account=account, name="zephyrine", domain=domain)
        # A random password of the same length and character classes.
        rng = random.Random(personal)
        lookalike = "".join(
            rng.choice(string.ascii_uppercase) if c.isupper() else rng.choice(string.ascii_lowercase)
            if c.isalpha() else c for c in personal
        )
        no_inputs = zxcvbn(personal)["score"]
        assert no_inputs >= 3 and zxcvbn(lookalike)["score"] >= no_inputs  # same strength, judged blind
        check_password(personal)  # not weak for anyone else
        before = stored_hash(account)
        with pytest.raises(PolicyViolation) as exc:
            credentials.set_password(account, personal, "test")
        assert exc.value.rule == "strength"
        assert exc.value.message.startswith("Password is too weak.")
        assert stored_hash(account) == before
        credentials.set_password(account, lookalike, "test")
        assert can_login("quintessa@example.org", lookalike)

    def test_own_name_refused_at_creation(self, domain):
        with pytest.raises(errors.InvalidProperties) as exc:
            services.create_account(
                {"name": "quintessa", "domain": domain.pk, "description": "Marigold Fernsby"}, "test",
                password="MarigoldFernsby",
            )
        assert exc.value.properties == ["secret"]
        assert exc.value.extra["rule"] == "strength"
        assert exc.value.description.startswith("Password is too weak.")
        assert not Account.objects.filter(name="quintessa").exists()

    def test_strength_zero_disables_the_check(self, make_account):
        account = make_account("dave")
        configure(password_min_strength="zero")
        check_password("password")
        credentials.set_password(account, "password", "test")
        assert can_login("dave@example.org", "password")
        # Lengths still apply.
        with pytest.raises(PolicyViolation) as exc:
            credentials.set_password(account, "pass", "test")
        assert exc.value.rule == "minLength"

    @pytest.mark.parametrize("bad, rule", [("short", "minLength"), ("x" * 129, "maxLength"), ("password1", "strength")])
    def test_nothing_is_written_when_refused(self, make_account, bad, rule):
        account = make_account("erin")
        expiry = timezone.now() + timedelta(days=3)
        credentials.set_password_expiry(account, expiry, "test")
        configure(password_default_expiry=timedelta(days=1))
        cred = password_cred(account)
        events = AuditEvent.objects.count()
        with pytest.raises(PolicyViolation) as exc:
            credentials.set_password(account, bad, "test")
        assert exc.value.rule == rule
        after = password_cred(account)
        assert (after.pk, after.secret_hash, after.expires_at) == (cred.pk, cred.secret_hash, expiry)
        assert AuditEvent.objects.count() == events
        assert can_login("erin@example.org", STRONG_PASSWORD)
        assert not can_login("erin@example.org", bad)

    def test_create_account_refusal_maps_to_invalid_properties(self, domain):
        for password, rule in (("short", "minLength"), ("y" * 200, "maxLength"), ("password1", "strength")):
            with pytest.raises(errors.InvalidProperties) as exc:
                services.create_account({"name": "frank", "domain": domain.pk}, "test", password=password)
            assert exc.value.to_json()["properties"] == ["secret"]
            assert exc.value.extra["rule"] == rule
        assert not Account.objects.filter(name="frank").exists()
        assert not Credential.objects.exists()

    def test_groups_have_no_password(self, make_account):
        group = make_account("team", kind="group", roles_mode=Account.RolesMode.DEFAULT)
        with pytest.raises(errors.Forbidden):
            credentials.set_password(group, NEW_PASSWORD, "test")
        assert not group.credentials.exists()


# --- hashing --------------------------------------------------------------------------------
@pytest.mark.django_db
class TestHashing:
    @pytest.mark.parametrize("algorithm, prefix", ALGORITHMS.items())
    def test_new_hashes_use_the_configured_algorithm(self, make_account, algorithm, prefix):
        configure(password_hash_algorithm=algorithm)
        account = make_account("gina")
        assert stored_hash(account).startswith(prefix)
        assert hashing.algorithm_of(stored_hash(account)) == algorithm
        credentials.set_password(account, NEW_PASSWORD, "test")
        stored = stored_hash(account)
        assert stored.startswith(prefix)
        assert NEW_PASSWORD not in stored
        assert hashing.verify_secret(NEW_PASSWORD, stored)
        assert not hashing.verify_secret(STRONG_PASSWORD, stored)
        # A login with the current algorithm keeps the hash.
        assert can_login("gina@example.org", NEW_PASSWORD)
        assert stored_hash(account) == stored

    def test_hashes_are_salted(self):
        a, b = hashing.hash_secret(NEW_PASSWORD, "pbkdf2"), hashing.hash_secret(NEW_PASSWORD, "pbkdf2")
        assert a != b and hashing.verify_secret(NEW_PASSWORD, a) and hashing.verify_secret(NEW_PASSWORD, b)

    @pytest.mark.parametrize("stored_alg, current_alg", [
        ("argon2id", "bcrypt"), ("bcrypt", "scrypt"), ("scrypt", "pbkdf2"), ("pbkdf2", "argon2id"),
    ])
    def test_login_verifies_any_algorithm_and_upgrades_the_hash(self, make_account, stored_alg, current_alg):
        account = make_account("hana")
        old = hashing.hash_secret(NEW_PASSWORD, stored_alg)
        assert hashing.is_password_hash(old)
        credentials.set_password(account, old, "test")  # pre-hashed by an administrator: stored as-is
        assert stored_hash(account) == old
        configure(password_hash_algorithm=current_alg)

        # A wrong password neither logs in nor touches the hash.
        with pytest.raises(account_login.AuthFailed):
            account_login.authenticate("hana@example.org", OTHER_PASSWORD, REMOTE)
        assert stored_hash(account) == old

        result = account_login.authenticate("hana@example.org", NEW_PASSWORD, REMOTE)
        assert result.account.pk == account.pk
        upgraded = stored_hash(account)
        assert upgraded != old
        assert upgraded.startswith(ALGORITHMS[current_alg])
        assert result.credential.secret_hash == upgraded
        assert hashing.verify_secret(NEW_PASSWORD, upgraded)
        # The next login verifies the new hash and leaves it alone.
        assert can_login("hana@example.org", NEW_PASSWORD)
        assert stored_hash(account) == upgraded

    def test_web_login_upgrades_the_hash_and_keeps_the_session(self, client, make_account):
        account = make_account("ivan")
        old = hashing.hash_secret(NEW_PASSWORD, "bcrypt")
        credentials.set_password(account, old, "test")
        configure(password_hash_algorithm="argon2id")

        assert not client.login(username="ivan@example.org", password=OTHER_PASSWORD)
        assert stored_hash(account) == old
        assert client.login(username="ivan@example.org", password=NEW_PASSWORD)
        assert stored_hash(account).startswith("$argon2id$")
        # The session was opened on the upgraded hash: it stays valid.
        assert client.get("/account/").status_code == 200

    def test_login_form_upgrades_the_hash(self, client, make_account):
        account = make_account("jana")
        credentials.set_password(account, hashing.hash_secret(NEW_PASSWORD, "pbkdf2"), "test")
        response = client.post("/admin/login/", {"username": "jana@example.org", "password": NEW_PASSWORD})
        assert response.status_code == 302
        assert stored_hash(account).startswith("$argon2id$")
        assert client.get("/account/").status_code == 200

    def test_wrong_password_never_upgrades_via_the_web(self, client, make_account):
        account = make_account("kira")
        old = hashing.hash_secret(NEW_PASSWORD, "scrypt")
        credentials.set_password(account, old, "test")
        response = client.post("/admin/login/", {"username": "kira@example.org", "password": OTHER_PASSWORD})
        assert response.status_code == 200
        assert stored_hash(account) == old

    def test_prehashed_value_skips_the_policy(self, make_account):
        account = make_account("lena")
        weak = "abc"  # refused by every rule as plain text
        for algorithm in ALGORITHMS:
            prehashed = hashing.hash_secret(weak, algorithm)
            configure(password_hash_algorithm=algorithm)  # no upgrade to muddle the check
            cred = credentials.set_password(account, prehashed, "test")
            assert cred.secret_hash == prehashed
            assert stored_hash(account) == prehashed
            assert can_login("lena@example.org", weak)
            assert not can_login("lena@example.org", "abd")

    def test_prehashed_value_at_account_creation(self, domain):
        prehashed = hashing.hash_secret("abc", "bcrypt")
        configure(password_hash_algorithm="bcrypt")
        account = services.create_account({"name": "mona", "domain": domain.pk}, "test", password=prehashed)
        assert stored_hash(account) == prehashed
        assert can_login("mona@example.org", "abc")

    def test_self_service_never_takes_a_hash(self, make_account):
        account = make_account("nina")
        literal = hashing.hash_secret("abc", "bcrypt")
        account_login.change_own_password(account, STRONG_PASSWORD, literal, REMOTE)
        stored = stored_hash(account)
        assert stored != literal and stored.startswith("$argon2id$")
        assert can_login("nina@example.org", literal)
        assert not can_login("nina@example.org", "abc")

    def test_ldap_ssha(self, make_account):
        account = make_account("olga")
        value = ssha("abc", b"\x01\x02\x03\x04salt")
        assert hashing.is_password_hash(value)
        credentials.set_password(account, value, "test")
        assert stored_hash(account) == value  # stored as given, policy skipped
        assert not can_login("olga@example.org", "abd")
        assert stored_hash(account) == value
        assert can_login("olga@example.org", "abc")
        assert stored_hash(account).startswith("$argon2id$")  # upgraded after the successful login

    @pytest.mark.parametrize("scheme, digest", [("SHA", "sha1"), ("SHA256", "sha256"), ("SHA512", "sha512")])
    def test_ldap_unsalted_schemes(self, scheme, digest):
        value = "{%s}" % scheme + base64.b64encode(hashlib.new(digest, b"abc").digest()).decode()
        assert hashing.verify_secret("abc", value)
        assert hashing.verify_secret("abc", value.replace("{%s}" % scheme, "{%s}" % scheme.lower()))
        assert not hashing.verify_secret("abd", value)
        salted = "{S%s}" % scheme + base64.b64encode(hashlib.new(digest, b"abc" + b"NaCl").digest() + b"NaCl").decode()
        assert hashing.verify_secret("abc", salted) and not hashing.verify_secret("abd", salted)

    @pytest.mark.parametrize("fmt", list(sqldirs.CRYPT_VECTORS))
    def test_crypt_family_prehashed_logs_in_over_http(self, client, make_account, fmt):
        value = sqldirs.CRYPT_VECTORS[fmt]
        assert hashing.is_password_hash(value) == (fmt != "bsdicrypt")
        if fmt == "bsdicrypt":
            value = "{CRYPT}" + value  # bare `_…` could be a password; wrapped it is a hash
            assert hashing.is_password_hash(value)
        account = make_account("tess")
        credentials.set_password(account, value, "test")
        assert stored_hash(account) == value  # stored as given, policy skipped
        echo = json.dumps({"using": ["urn:ietf:params:jmap:core"], "methodCalls": [["Core/echo", {}, "c"]]})

        def post(password):
            return client.post("/jmap/", echo, content_type="application/json", REMOTE_ADDR=REMOTE,
                               HTTP_AUTHORIZATION=basic("tess@example.org", password)).status_code

        assert post("x" + sqldirs.ALICE_PASSWORD) == 401
        assert stored_hash(account) == value
        assert post(sqldirs.ALICE_PASSWORD) == 200
        assert stored_hash(account).startswith("$argon2id$")  # upgraded after the successful login

    @pytest.mark.parametrize("bad", [
        "$6$saltsalt$short", "$1$saltsalt$", "$sha1$40000$saltsalt$", "$5$rounds=x$saltsalt$abc",
        "{CRYPT}$9$x$y", "{CRYPT}abc", "_J9..salt", "$6$" + "a" * 17 + "$" + "b" * 86 + "\n",
    ])
    def test_malformed_crypt_values_are_neither_hashes_nor_matches(self, bad):
        assert not hashing.is_password_hash(bad)
        with pytest.raises(hashing.UnknownHashFormat):
            hashing.verify_secret(sqldirs.ALICE_PASSWORD, bad)

    def test_glibc_reference_vector(self):
        # Ulrich Drepper's SHA-crypt specification, test vector 1.
        value = ("$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcb"
                 "YEdFCoEOfaS35inz1")
        assert hashing.is_password_hash(value)
        assert hashing.verify_secret("Hello world!", value)
        assert not hashing.verify_secret("Hello world?", value)

    def test_plain_scheme_is_not_a_hash(self, make_account):
        account = make_account("pia")
        assert not hashing.is_password_hash("{PLAIN}abc")
        configure(password_min_length=12)
        with pytest.raises(PolicyViolation) as exc:
            credentials.set_password(account, "{PLAIN}abc", "test")  # plain text to the policy: 10 bytes
        assert exc.value.rule == "minLength"
        value = "{PLAIN}" + NEW_PASSWORD
        credentials.set_password(account, value, "test")
        assert stored_hash(account).startswith("$argon2id$")
        assert can_login("pia@example.org", value)
        assert not can_login("pia@example.org", NEW_PASSWORD)

    @pytest.mark.parametrize("bad", ["$xyz$abc$def", "$argon2id$garbage", "{FOO}YWJj", "$scrypt$ln=1$c2FsdA"])
    def test_unknown_hash_format_is_an_auth_error(self, client, make_account, bad):
        account = make_account("rosa")
        Credential.objects.filter(account=account, kind=Credential.Kind.PASSWORD).update(secret_hash=bad)
        with pytest.raises(account_login.AuthError) as exc:
            account_login.authenticate("rosa@example.org", STRONG_PASSWORD, REMOTE)
        assert exc.value.status == 401
        assert stored_hash(account) == bad
        # The web login fails cleanly (no server error).
        assert not client.login(username="rosa@example.org", password=STRONG_PASSWORD)
        response = client.post("/admin/login/", {"username": "rosa@example.org", "password": STRONG_PASSWORD})
        assert response.status_code == 200
        assert not response.wsgi_request.user.is_authenticated

    def test_unknown_hash_format_does_not_feed_the_ban(self, make_account):
        # An unverifiable stored hash is the reference's AuthEvent Error, not a failed guess (§7.4).
        account = make_account("rosa")
        Credential.objects.filter(account=account, kind=Credential.Kind.PASSWORD).update(secret_hash="$xyz$a$b")
        security = Security.load()
        security.auth_ban_rate_count = 1
        security.save()
        for _ in range(3):
            with pytest.raises(account_login.AuthError) as exc:
                account_login.authenticate("rosa@example.org", STRONG_PASSWORD, REMOTE)
            assert not isinstance(exc.value, (account_login.Banned, account_login.AuthFailed))
            assert str(exc.value) == "Authentication error."
        assert not BlockedIp.objects.filter(address=REMOTE).exists()
        # Wrong guesses still count.
        make_account("sam")
        with pytest.raises(account_login.AuthFailed):
            account_login.authenticate("sam@example.org", OTHER_PASSWORD, REMOTE)
        with pytest.raises(account_login.Banned):
            account_login.authenticate("sam@example.org", OTHER_PASSWORD, REMOTE)
        assert BlockedIp.objects.filter(address=REMOTE).exists()

    def test_unknown_format_is_not_accepted_as_prehashed(self, make_account):
        account = make_account("sara")
        assert not hashing.is_password_hash("$xyz$abc$def")
        configure(password_min_length=13)
        with pytest.raises(PolicyViolation) as exc:
            credentials.set_password(account, "$xyz$abc$def", "test")  # plain text to the policy: 12 bytes
        assert exc.value.rule == "minLength"
        assert can_login("sara@example.org", STRONG_PASSWORD)
        configure(password_min_length=8)
        credentials.set_password(account, "$xyz$abc$def", "test")
        assert stored_hash(account).startswith("$argon2id$")
        assert can_login("sara@example.org", "$xyz$abc$def")


# --- expiry ---------------------------------------------------------------------------------
@pytest.mark.django_db
class TestExpiry:
    def test_default_expiry_applies_to_a_new_password(self, make_account):
        configure(password_default_expiry=timedelta(days=30))
        account = make_account("tina")
        assert close_to(password_cred(account).expires_at, timezone.now() + timedelta(days=30))

    def test_no_default_no_expiry(self, make_account):
        account = make_account("tina")
        assert password_cred(account).expires_at is None
        credentials.set_password(account, NEW_PASSWORD, "test")
        assert password_cred(account).expires_at is None

    def test_self_service_change_takes_the_default(self, make_account):
        account = make_account("uma")
        far = timezone.now() + timedelta(days=300)
        credentials.set_password_expiry(account, far, "test")
        configure(password_default_expiry=timedelta(days=7))
        account_login.change_own_password(account, STRONG_PASSWORD, NEW_PASSWORD, REMOTE)
        assert close_to(password_cred(account).expires_at, timezone.now() + timedelta(days=7))

    def test_self_service_without_default(self, make_account):
        account = make_account("uma")
        future = timezone.now() + timedelta(days=5)
        credentials.set_password_expiry(account, future, "test")
        account_login.change_own_password(account, STRONG_PASSWORD, NEW_PASSWORD, REMOTE)
        assert password_cred(account).expires_at == future  # a future expiry is kept
        credentials.set_password_expiry(account, timezone.now() - timedelta(days=1), "test")
        account_login.change_own_password(account, NEW_PASSWORD, OTHER_PASSWORD, REMOTE)
        assert password_cred(account).expires_at is None  # a lapsed one is cleared

    def test_admin_change_keeps_a_future_expiry(self, make_account, admin_account):
        account = make_account("vera")
        future = timezone.now() + timedelta(days=5)
        credentials.set_password_expiry(account, future, "test")
        configure(password_default_expiry=timedelta(days=30))
        credentials.set_password(account, NEW_PASSWORD, admin_account)
        assert password_cred(account).expires_at == future

    def test_admin_change_keeps_no_expiry(self, make_account, admin_account):
        account = make_account("vera")
        configure(password_default_expiry=timedelta(days=30))
        credentials.set_password(account, NEW_PASSWORD, admin_account)
        assert password_cred(account).expires_at is None

    def test_admin_change_replaces_a_lapsed_expiry_when_a_default_exists(self, make_account, admin_account):
        account = make_account("wren")
        lapsed = timezone.now() - timedelta(hours=1)
        credentials.set_password_expiry(account, lapsed, "test")
        credentials.set_password(account, NEW_PASSWORD, admin_account)
        assert password_cred(account).expires_at == lapsed  # no default: left as it was
        configure(password_default_expiry=timedelta(days=10))
        credentials.set_password(account, OTHER_PASSWORD, admin_account)
        assert close_to(password_cred(account).expires_at, timezone.now() + timedelta(days=10))

    def test_admin_explicit_expiry_stands(self, make_account, admin_account):
        account = make_account("xena")
        configure(password_default_expiry=timedelta(days=10))
        when = timezone.now() + timedelta(days=2)
        credentials.set_password(account, NEW_PASSWORD, admin_account, expires_at=when)
        assert password_cred(account).expires_at == when
        credentials.set_password(account, OTHER_PASSWORD, admin_account, expires_at=None)
        assert password_cred(account).expires_at is None

    def test_expired_password_logs_in_with_reduced_permissions(self, make_account):
        account = make_account("yara")
        normal = account_login.authenticate("yara@example.org", STRONG_PASSWORD, REMOTE).permissions
        assert len(normal) > len(EXPIRED_PASSWORD_PERMISSIONS)
        credentials.set_password_expiry(account, timezone.now() - timedelta(seconds=1), "test")
        result = account_login.authenticate("yara@example.org", STRONG_PASSWORD, REMOTE)
        assert result.password_expired
        assert result.permissions == normal & EXPIRED_PASSWORD_PERMISSIONS
        assert result.permissions == EXPIRED_PASSWORD_PERMISSIONS  # a plain user holds all five
        # The wrong password still fails.
        with pytest.raises(account_login.AuthFailed):
            account_login.authenticate("yara@example.org", OTHER_PASSWORD, REMOTE)

    def test_expired_scope_is_an_intersection(self, make_account):
        account = make_account("zoe", permissions_mode="merge", disabled_permissions=["emailReceive"])
        normal = account_permissions(account)
        assert "emailReceive" not in normal and "authenticate" in normal
        credentials.set_password_expiry(account, timezone.now() - timedelta(days=1), "test")
        result = account_login.authenticate("zoe@example.org", STRONG_PASSWORD, REMOTE)
        assert result.permissions == EXPIRED_PASSWORD_PERMISSIONS - {"emailReceive"}

    def test_admin_with_expired_password_is_sent_to_the_password_page(self, client, admin_account):
        configure(password_default_expiry=timedelta(days=90))
        credentials.set_password_expiry(admin_account, timezone.now() - timedelta(minutes=5), "test")
        response = client.post("/admin/login/", {"username": "admin@example.org", "password": STRONG_PASSWORD})
        assert response.status_code == 302  # the login succeeds
        for url in ("/admin/", "/account/", "/admin/accounts/account/", "/"):
            response = client.get(url)
            assert response.status_code == 302, url
            assert response["Location"] == "/account/password/", url
        page = client.get("/account/password/")
        assert page.status_code == 200
        assert b"Your password has expired" in page.content

        # The current password is required.
        response = client.post("/account/password/", {
            "current_password": OTHER_PASSWORD, "new_password": NEW_PASSWORD, "new_password_confirm": NEW_PASSWORD,
        })
        assert response.status_code == 200
        assert form_errors(response, "current_password") == ["The current password is incorrect."]
        # The policy applies, with the message on the field.
        response = client.post("/account/password/", {
            "current_password": STRONG_PASSWORD, "new_password": "password1", "new_password_confirm": "password1",
        })
        assert response.status_code == 200
        [message] = form_errors(response, "new_password")
        assert message.startswith("Password is too weak.")
        assert client.get("/admin/")["Location"] == "/account/password/"  # still restricted

        response = client.post("/account/password/", {
            "current_password": STRONG_PASSWORD, "new_password": NEW_PASSWORD, "new_password_confirm": NEW_PASSWORD,
        })
        assert response.status_code == 302
        assert response["Location"] == "/account/"
        assert client.get("/admin/").status_code == 200  # the full session is back
        assert client.get("/account/").status_code == 200
        assert close_to(password_cred(admin_account).expires_at, timezone.now() + timedelta(days=90))
        result = account_login.authenticate("admin@example.org", NEW_PASSWORD, REMOTE)
        assert not result.password_expired and "sysAccountGet" in result.permissions

    def test_user_with_expired_password_via_test_client_login(self, client, make_account):
        account = make_account("bob")
        credentials.set_password_expiry(account, timezone.now() - timedelta(days=1), "test")
        assert client.login(username="bob@example.org", password=STRONG_PASSWORD)
        assert client.get("/account/")["Location"] == "/account/password/"
        response = client.post("/account/password/", {
            "current_password": STRONG_PASSWORD, "new_password": NEW_PASSWORD, "new_password_confirm": NEW_PASSWORD,
        })
        assert response.status_code == 302
        assert password_cred(account).expires_at is None  # lapsed and no default: cleared
        assert client.get("/account/").status_code == 200


# --- the self-service page ------------------------------------------------------------------
def _change(client, current, new, confirm=None):
    return client.post("/account/password/", {
        "current_password": current, "new_password": new, "new_password_confirm": new if confirm is None else confirm,
    })


@pytest.mark.django_db
class TestPasswordPage:
    def test_requires_login(self, client):
        response = client.get("/account/password/")
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")

    def test_page_renders(self, user_client):
        response = user_client.get("/account/password/")
        assert response.status_code == 200
        for name in ("current_password", "new_password", "new_password_confirm"):
            assert f'name="{name}"'.encode() in response.content
        assert b"Your password has expired" not in response.content

    def test_wrong_current_password(self, make_account):
        account = make_account("bob")
        before = stored_hash(account)
        client = Client(REMOTE_ADDR=REMOTE)
        assert client.login(username="bob@example.org", password=STRONG_PASSWORD)
        response = _change(client, OTHER_PASSWORD, NEW_PASSWORD)
        assert response.status_code == 200
        assert form_errors(response, "current_password") == ["The current password is incorrect."]
        assert b"The current password is incorrect." in response.content
        assert stored_hash(account) == before

    def test_wrong_current_password_counts_towards_the_ban(self, make_account):
        make_account("bob")
        security = Security.load()
        security.auth_ban_rate_count = 1
        security.save()
        client = Client(REMOTE_ADDR=REMOTE)
        assert client.login(username="bob@example.org", password=STRONG_PASSWORD)
        assert form_errors(_change(client, OTHER_PASSWORD, NEW_PASSWORD), "current_password") == [
            "The current password is incorrect."
        ]
        assert not BlockedIp.objects.filter(address=REMOTE).exists()
        response = _change(client, OTHER_PASSWORD, NEW_PASSWORD)  # the second failure passes the threshold
        assert response.status_code == 200
        assert form_errors(response, "current_password") == ["Too Many Authentication Attempts"]
        assert BlockedIp.objects.filter(address=REMOTE).exists()
        # The banned address may not log in any more, even with the right password.
        with pytest.raises(account_login.Banned):
            account_login.authenticate("bob@example.org", STRONG_PASSWORD, REMOTE)
        assert can_login("bob@example.org", STRONG_PASSWORD) is False

    def test_too_weak_new_password_is_shown_inline(self, make_account):
        account = make_account("bob")
        before = stored_hash(account)
        client = Client()
        assert client.login(username="bob@example.org", password=STRONG_PASSWORD)
        response = _change(client, STRONG_PASSWORD, "password1")
        assert response.status_code == 200
        [message] = form_errors(response, "new_password")
        expected = zxcvbn("password1")["feedback"]
        assert message.startswith("Password is too weak.")
        assert all(s in message for s in expected["suggestions"])
        assert b"Password is too weak." in response.content
        assert stored_hash(account) == before
        response = _change(client, STRONG_PASSWORD, "Sh0rt!")
        assert form_errors(response, "new_password") == ["Password must be at least 8 characters long."]

    def test_own_name_is_too_weak_on_the_page(self, client, make_account):
        make_account("quintessa", description="Marigold Fernsby")
        assert client.login(username="quintessa@example.org", password=STRONG_PASSWORD)
        response = _change(client, STRONG_PASSWORD, "MarigoldFernsby")
        assert form_errors(response, "new_password")[0].startswith("Password is too weak.")

    def test_mismatching_confirmation(self, make_account):
        account = make_account("bob")
        before = stored_hash(account)
        client = Client()
        assert client.login(username="bob@example.org", password=STRONG_PASSWORD)
        response = _change(client, STRONG_PASSWORD, NEW_PASSWORD, confirm=OTHER_PASSWORD)
        assert response.status_code == 200
        assert form_errors(response, "new_password_confirm") == ["The two passwords differ."]
        assert stored_hash(account) == before

    def test_success_changes_the_hash_and_keeps_the_session(self, make_account):
        account = make_account("bob")
        before = stored_hash(account)
        client = Client()
        assert client.login(username="bob@example.org", password=STRONG_PASSWORD)
        response = _change(client, STRONG_PASSWORD, NEW_PASSWORD)
        assert response.status_code == 302 and response["Location"] == "/account/"
        assert stored_hash(account) != before
        assert can_login("bob@example.org", NEW_PASSWORD)
        assert not can_login("bob@example.org", STRONG_PASSWORD)
        page = client.get("/account/")
        assert page.status_code == 200  # update_session_auth_hash kept this session
        assert b"Your password was changed." in page.content
        assert AuditEvent.objects.filter(object_type="Account", field="password", actor="bob@example.org").exists()

    def test_change_ends_the_other_sessions(self, make_account):
        make_account("bob")
        other = Client()
        assert other.login(username="bob@example.org", password=STRONG_PASSWORD)
        assert other.get("/account/").status_code == 200
        me = Client()
        assert me.login(username="bob@example.org", password=STRONG_PASSWORD)
        assert _change(me, STRONG_PASSWORD, NEW_PASSWORD).status_code == 302
        response = other.get("/account/")
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
        assert me.get("/account/").status_code == 200

    def test_admin_reset_ends_the_users_sessions(self, make_account):
        bob = make_account("bob")
        user = Client()
        assert user.login(username="bob@example.org", password=STRONG_PASSWORD)
        credentials.set_password(bob, NEW_PASSWORD, "test")
        assert user.get("/account/").status_code == 302

    def test_recovery_admin_has_no_password_page(self, client, db, settings):
        settings.STALWART_RECOVERY_ADMIN = RECOVERY
        assert client.login(username="recovery", password="Some-Secret-Value-1")
        response = client.get("/account/password/")
        assert response.status_code == 302 and response["Location"] == "/admin/"


# --- the admin account page -----------------------------------------------------------------
@pytest.mark.django_db
class TestAdminAccountPage:
    def test_weak_password_is_shown_inline_and_nothing_is_saved(self, admin_client, make_account):
        bob = make_account("bob", description="Bob Example")
        before = stored_hash(bob)
        response = post_account_form(admin_client, bob, description="Robert Example",
                                     new_password="password1", new_password_confirm="password1")
        assert response.status_code == 200
        [message] = form_errors(response, "new_password")
        assert message.startswith("Password is too weak.")
        assert b"Password is too weak." in response.content
        assert stored_hash(bob) == before
        assert Account.objects.get(pk=bob.pk).description == "Bob Example"
        assert can_login("bob@example.org", STRONG_PASSWORD)

    @pytest.mark.parametrize("bad, message", [
        ("Sh0rt!", "Password must be at least 8 characters long."),
        ("Q" * 129, "Password must be at most 128 characters long."),
    ])
    def test_length_errors_inline(self, admin_client, make_account, bad, message):
        bob = make_account("bob")
        before = stored_hash(bob)
        response = post_account_form(admin_client, bob, new_password=bad, new_password_confirm=bad)
        assert response.status_code == 200
        assert form_errors(response, "new_password") == [message]
        assert stored_hash(bob) == before

    def test_own_name_is_weak_in_the_admin(self, admin_client, make_account):
        bob = make_account("quintessa", description="Marigold Fernsby")
        response = post_account_form(admin_client, bob, new_password="MarigoldFernsby",
                                     new_password_confirm="MarigoldFernsby")
        assert response.status_code == 200
        assert form_errors(response, "new_password")[0].startswith("Password is too weak.")

    def test_mismatching_confirmation(self, admin_client, make_account):
        bob = make_account("bob")
        before = stored_hash(bob)
        response = post_account_form(admin_client, bob, new_password=NEW_PASSWORD, new_password_confirm=OTHER_PASSWORD)
        assert response.status_code == 200
        assert form_errors(response, "new_password_confirm") == ["The two passwords differ."]
        assert stored_hash(bob) == before

    def test_success_sets_the_password(self, admin_client, make_account):
        bob = make_account("bob", description="Bob Example")
        before = stored_hash(bob)
        response = post_account_form(admin_client, bob, new_password=NEW_PASSWORD, new_password_confirm=NEW_PASSWORD)
        assert response.status_code == 302, form_errors(response, "__all__")
        assert stored_hash(bob) != before
        assert can_login("bob@example.org", NEW_PASSWORD)
        assert not can_login("bob@example.org", STRONG_PASSWORD)
        assert Client().login(username="bob@example.org", password=NEW_PASSWORD)
        assert Account.objects.get(pk=bob.pk).description == "Bob Example"  # the rest is unchanged
        event = AuditEvent.objects.filter(object_type="Account", field="password", actor="admin@example.org").first()
        assert event.actor == "admin@example.org" and event.new_value["secret"] == "****"
        assert NEW_PASSWORD not in str(event.new_value)

    def test_saving_without_a_password_keeps_it(self, admin_client, make_account):
        bob = make_account("bob", description="Bob Example")
        before = stored_hash(bob)
        response = post_account_form(admin_client, bob, description="Robert Example")
        assert response.status_code == 302
        assert Account.objects.get(pk=bob.pk).description == "Robert Example"
        assert stored_hash(bob) == before

    def test_prehashed_value_is_stored_as_given(self, admin_client, make_account):
        bob = make_account("bob")
        value = ssha("abc", b"pepper!!")
        response = post_account_form(admin_client, bob, new_password=value, new_password_confirm=value)
        assert response.status_code == 302
        assert stored_hash(bob) == value
        assert can_login("bob@example.org", "abc")

    def test_lapsed_expiry_is_replaced_by_the_default(self, admin_client, make_account):
        bob = make_account("bob")
        credentials.set_password_expiry(bob, timezone.now() - timedelta(days=2), "test")
        configure(password_default_expiry=timedelta(days=10))
        response = post_account_form(admin_client, bob, new_password=NEW_PASSWORD, new_password_confirm=NEW_PASSWORD)
        assert response.status_code == 302
        assert close_to(password_cred(bob).expires_at, timezone.now() + timedelta(days=10))
        assert not account_login.authenticate("bob@example.org", NEW_PASSWORD, REMOTE).password_expired

    def test_future_expiry_is_kept(self, admin_client, make_account):
        bob = make_account("bob")
        future = timezone.now() + timedelta(days=3, seconds=7, microseconds=123)
        credentials.set_password_expiry(bob, future, "test")
        configure(password_default_expiry=timedelta(days=10))
        response = post_account_form(admin_client, bob, new_password=NEW_PASSWORD, new_password_confirm=NEW_PASSWORD)
        assert response.status_code == 302
        assert password_cred(bob).expires_at == future

    def test_explicit_expiry_from_the_page(self, admin_client, make_account):
        bob = make_account("bob")
        configure(password_default_expiry=timedelta(days=10))
        response = post_account_form(admin_client, bob, new_password=NEW_PASSWORD, new_password_confirm=NEW_PASSWORD,
                                     password_expires_at_0="2031-05-06", password_expires_at_1="07:08:09")
        assert response.status_code == 302
        assert password_cred(bob).expires_at.isoformat() == "2031-05-06T07:08:09+00:00"


# --- the recovery administrator -------------------------------------------------------------
@pytest.mark.django_db
class TestRecoveryAdmin:
    def test_logs_in_with_every_permission_on_an_empty_database(self, client, settings):
        settings.STALWART_RECOVERY_ADMIN = RECOVERY
        assert not Account.objects.exists()
        result = account_login.authenticate("recovery", "Some-Secret-Value-1", REMOTE)
        assert result.account.is_recovery_admin
        assert result.permissions == all_permissions()
        assert result.credential is None
        assert account_login.authenticate("  RECOVERY ", "Some-Secret-Value-1", REMOTE).account.is_recovery_admin

        response = client.post("/admin/login/", {"username": "recovery", "password": "Some-Secret-Value-1"})
        assert response.status_code == 302
        assert client.get("/admin/").status_code == 200
        assert client.get("/admin/accounts/account/").status_code == 200
        assert client.get("/admin/accounts/authentication/1/change/").status_code == 200
        assert not Account.objects.exists()  # nothing was stored for it

    def test_wrong_secret_fails(self, client, settings):
        settings.STALWART_RECOVERY_ADMIN = RECOVERY
        with pytest.raises(account_login.AuthFailed):
            account_login.authenticate("recovery", "Some-Secret-Value-2", REMOTE)
        with pytest.raises(account_login.AuthFailed):
            account_login.authenticate("recovery", "", REMOTE)
        assert not client.login(username="recovery", password="some-secret-value-1")
        response = client.post("/admin/login/", {"username": "recovery", "password": "wrong"})
        assert response.status_code == 200
        assert client.get("/admin/").status_code == 302

    @pytest.mark.parametrize("value", [None, "", "recovery", ":Some-Secret-Value-1", "recovery:"])
    def test_unset_or_incomplete_the_name_is_unknown(self, client, settings, value):
        settings.STALWART_RECOVERY_ADMIN = value
        with pytest.raises(account_login.AuthFailed):
            account_login.authenticate("recovery", "Some-Secret-Value-1", REMOTE)
        assert not client.login(username="recovery", password="Some-Secret-Value-1")

    def test_unset_with_an_account_of_that_name(self, client, settings, make_account):
        settings.STALWART_RECOVERY_ADMIN = None
        make_account("recovery")
        with pytest.raises(account_login.AuthFailed):
            account_login.authenticate("recovery", "Some-Secret-Value-1", REMOTE)
        # The name is an ordinary login again (default domain appended).
        assert account_login.authenticate("recovery", STRONG_PASSWORD, REMOTE).account.email_address == "recovery@example.org"

    def test_hashed_recovery_secret(self, settings):
        settings.STALWART_RECOVERY_ADMIN = "recovery:" + hashing.hash_secret("Some-Secret-Value-1", "bcrypt")
        assert account_login.authenticate("recovery", "Some-Secret-Value-1", REMOTE).account.is_recovery_admin
        with pytest.raises(account_login.AuthFailed):
            account_login.authenticate("recovery", "Some-Secret-Value-2", REMOTE)

    def test_session_ends_when_the_secret_changes(self, client, settings):
        settings.STALWART_RECOVERY_ADMIN = RECOVERY
        assert client.login(username="recovery", password="Some-Secret-Value-1")
        assert client.get("/admin/").status_code == 200
        settings.STALWART_RECOVERY_ADMIN = "recovery:Another-Secret-Value-2"
        assert client.get("/admin/").status_code == 302
        settings.STALWART_RECOVERY_ADMIN = None
        assert client.get("/admin/").status_code == 302


# --- the bootstrap command ------------------------------------------------------------------
def _bootstrap() -> str:
    out = io.StringIO()
    call_command("bootstrap", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
class TestBootstrap:
    def test_creates_the_domain_and_an_administrator_once(self, client, settings):
        settings.STALWART_DEFAULT_DOMAIN = "example.org"
        configure(password_default_expiry=timedelta(days=1), password_hash_algorithm="bcrypt")
        assert not Account.objects.exists() and not Domain.objects.exists()
        output = _bootstrap()
        passwords = re.findall(r"password:\s+(\S+)", output)
        assert len(passwords) == 1
        password = passwords[0]
        assert re.fullmatch(r"[A-Za-z0-9]{16}", password)
        assert output.count(password) == 1  # printed once

        domain = Domain.objects.get()
        assert domain.name == "example.org"
        assert SystemSettings.load().default_domain_id == domain.pk
        admin = Account.objects.get()
        assert (admin.email_address, admin.roles_mode, admin.kind, admin.description) == (
            "admin@example.org", Account.RolesMode.ADMIN, Account.Kind.USER, "System administrator")
        cred = password_cred(admin)
        assert password not in cred.secret_hash and cred.secret_hash.startswith("$2b$")
        assert cred.expires_at is None

        result = account_login.authenticate("admin@example.org", password, REMOTE)
        assert not result.password_expired and "sysAccountCreate" in result.permissions
        assert account_login.authenticate("admin", password, REMOTE).account.pk == admin.pk
        assert client.post("/admin/login/", {"username": "admin@example.org", "password": password}).status_code == 302
        assert client.get("/admin/").status_code == 200

        again = _bootstrap()
        assert "password:" not in again and password not in again
        assert Account.objects.count() == 1 and Domain.objects.count() == 1
        assert password_cred(admin).secret_hash == cred.secret_hash
        assert can_login("admin@example.org", password)

    def test_two_runs_give_different_passwords(self):
        first = re.search(r"password:\s+(\S+)", _bootstrap()).group(1)
        Account.objects.all().delete()
        second = re.search(r"password:\s+(\S+)", _bootstrap()).group(1)
        assert first != second
        assert can_login("admin@example.org", second) and not can_login("admin@example.org", first)


def test_hash_upgrade_on_login_keeps_other_sessions(make_account, client):
    """Upgrading a hash is not a password change: the user's other web sessions stay open."""
    from django.test import Client

    from accounts.models import Authentication, Credential
    from conftest import STRONG_PASSWORD

    auth = Authentication.load()
    auth.password_hash_algorithm = "pbkdf2"
    auth.save()
    account = make_account("carol")
    assert Credential.objects.get(account=account, kind="password").secret_hash.startswith("$pbkdf2")
    assert client.login(username="carol@example.org", password=STRONG_PASSWORD)
    assert client.get("/account/").status_code == 200
    auth.password_hash_algorithm = "argon2id"
    auth.save()
    other = Client()
    assert other.login(username="carol@example.org", password=STRONG_PASSWORD)
    assert Credential.objects.get(account=account, kind="password").secret_hash.startswith("$argon2id$")
    resp = client.get("/account/")
    assert resp.status_code == 200, "the first session was ended by the upgrade"
