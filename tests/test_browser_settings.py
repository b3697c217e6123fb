"""End to end, in Chromium against gunicorn: the first administrator, Settings › Authentication,
its validation, the audit log and the refusal of an ordinary user.

The server and its database are real (the session's `live` fixture); the database is read back
with `manage.py shell` in a separate process, never through this process's ORM.
"""
from __future__ import annotations

import re
import secrets
from contextlib import ExitStack
from dataclasses import dataclass

import pytest
from playwright.sync_api import expect

from .live import LiveServer, live_server

from tests.clients import STRONG_PASSWORD
AUTH_PATH = "/admin/accounts/authentication/1/change/"
DEFAULTS = {"password_min_length": 8, "password_max_length": 128, "password_hash_algorithm": "argon2id"}




READ_STATE = """
from accounts.models import Authentication
from registry.models import AuditEvent
a = Authentication.load()
last = AuditEvent.objects.order_by("-id").first()
result = {"password_min_length": a.password_min_length, "password_max_length": a.password_max_length,
          "password_hash_algorithm": a.password_hash_algorithm, "last_audit_id": last.pk if last else 0}
"""


def reset_authentication(server: LiveServer) -> dict:
    """Put the settings this module changes back to their defaults (through the services, so the
    server's caches see the change); returns the state read back, with the last audit event id."""
    values = ", ".join(f"{k!r}: {v!r}" for k, v in DEFAULTS.items())
    state = server.shell_json(f"""
from accounts.models import Authentication
from registry import services
a = Authentication.load()
if any(getattr(a, k) != v for k, v in {{{values}}}.items()):
    services.update(Authentication._declaration, None, {{{values}}}, "test-reset")
""" + READ_STATE)
    assert {k: state[k] for k in DEFAULTS} == DEFAULTS
    return state


@dataclass
class Site:
    server: LiveServer
    bootstrap_output: str
    login: str
    password: str

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def site(live):
    """The first administrator, made by `manage.py bootstrap` on the live server's database.

    Bootstrap works once per database; should another module have run it on the shared server
    already, this module takes a fresh server of its own so that it sees the first-run output.
    """
    with ExitStack() as stack:
        server = live
        out = server.manage("bootstrap").stdout
        if "password:" not in out:
            server = stack.enter_context(live_server(workers=2))
            out = server.manage("bootstrap").stdout
        login = re.search(r"^\s*login:\s+(\S+)\s*$", out, re.M)
        password = re.search(r"^\s*password:\s+(\S+)\s*$", out, re.M)
        assert login and password, out
        yield Site(server, out, login.group(1), password.group(1))
        reset_authentication(server)  # leave the shared server as it was found


def log_in(page, base_url: str, username: str, password: str) -> None:
    page.goto(base_url + "/admin/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("#login-form [type=submit]")


def min_length_input(page):
    return page.locator("input[name=password_min_length]")


def max_length_input(page):
    return page.locator("input[name=password_max_length]")


def hash_select(page):
    return page.locator("select[name=password_hash_algorithm]")


def authentication_group(page):
    """The dashboard menu's "Settings › Authentication" group."""
    return page.locator("#content-main .module",
                        has=page.locator("caption", has_text=re.compile(r"^\s*Settings › Authentication\s*$")))


def save(page) -> None:
    with page.expect_navigation():
        page.click("input[name=_save]")


# --- 1. the first administrator ---------------------------------------------------------------
def test_first_administrator_logs_in_with_the_printed_password(site, page):
    out = site.bootstrap_output
    assert "First administrator created" in out
    assert site.login == "admin@example.org"
    assert re.fullmatch(r"[A-Za-z0-9]{16}", site.password), site.password
    # Printed once: a second run creates nothing and shows no password.
    again = site.server.manage("bootstrap").stdout
    assert "An administrator exists already" in again and "password:" not in again

    log_in(page, site.url, site.login, site.password)
    expect(page).to_have_url(site.url + "/admin/")
    expect(page.locator("#user-tools")).to_contain_text("admin@example.org")
    # The dashboard is the home; its menu is the reference's tree.
    expect(authentication_group(page)).to_have_count(1)
    expect(authentication_group(page).locator("tr.model-authentication th a")).to_have_text("General")
    # The settings groups come first, Management after them.
    captions = [c.strip() for c in page.locator("#content-main .module caption").all_text_contents()]
    first_management = captions.index("Management")
    assert first_management > 0 and all(c.startswith("Settings ›") for c in captions[:first_management]), captions


def test_short_name_logs_in_too_and_a_wrong_password_does_not(site, page):
    log_in(page, site.url, "admin", site.password[::-1])
    expect(page).to_have_url(re.compile(r"/admin/login/"))
    expect(page.locator(".errornote")).to_be_visible()
    log_in(page, site.url, "admin", site.password)
    expect(page).to_have_url(site.url + "/admin/")


# --- 2. changing the settings -----------------------------------------------------------------
def test_admin_changes_the_password_policy_and_it_is_kept_and_audited(site, page):
    before = reset_authentication(site.server)
    log_in(page, site.url, site.login, site.password)

    # Settings › Authentication, clicked through from the index.
    with page.expect_navigation():
        authentication_group(page).locator("tr.model-authentication th a").click()
    expect(page).to_have_url(site.url + AUTH_PATH)
    expect(page.locator("h1")).to_have_text("Change authentication")
    expect(page.locator(".breadcrumbs")).to_contain_text("Settings › Authentication")
    expect(min_length_input(page)).to_have_value("8")
    expect(max_length_input(page)).to_have_value("128")
    expect(hash_select(page)).to_have_value("argon2id")
    labels = [o.strip() for o in hash_select(page).locator("option").all_inner_texts()]
    assert labels == ["Argon2id", "Bcrypt", "Scrypt", "Pbkdf2"], labels

    min_length_input(page).fill("12")
    hash_select(page).select_option(label="Bcrypt")
    save(page)

    expect(page).to_have_url(site.url + AUTH_PATH)
    expect(page.locator("ul.messagelist li.success")).to_have_text("The Authentication › General settings were saved.")
    expect(page.locator(".errornote")).to_have_count(0)

    page.reload()
    expect(page.locator("ul.messagelist")).to_have_count(0)  # the message was shown once
    expect(min_length_input(page)).to_have_value("12")
    expect(max_length_input(page)).to_have_value("128")
    expect(hash_select(page)).to_have_value("bcrypt")

    # The database holds the new values, and one audit event per changed field.
    state = site.server.shell_json(READ_STATE + f"""
result["events"] = sorted(
    [e.actor, e.action, e.object_type, e.object_id, e.field, e.old_value, e.new_value]
    for e in AuditEvent.objects.filter(pk__gt={before["last_audit_id"]}))
""")
    assert (state["password_min_length"], state["password_max_length"], state["password_hash_algorithm"]) == (
        12, 128, "bcrypt")
    assert state["events"] == [
        ["admin@example.org", "update", "Authentication", "singleton", "passwordHashAlgorithm", "argon2id", "bcrypt"],
        ["admin@example.org", "update", "Authentication", "singleton", "passwordMinLength", 8, 12],
    ]

    # ... and the audit log page shows them, newest first.
    page.goto(site.url + "/admin/registry/auditevent/?object_type=Authentication")
    expect(page.locator("h1")).to_have_text("Select audit event to view")
    rows = page.locator("#result_list tbody tr")
    shown = [[c.strip() for c in rows.nth(i).locator("th, td").all_inner_texts()][1:]
             for i in range(min(rows.count(), 2))]
    assert sorted(shown) == [
        ["admin@example.org", "Updated", "Authentication", "singleton", "passwordHashAlgorithm", '"argon2id"',
         '"bcrypt"'],
        ["admin@example.org", "Updated", "Authentication", "singleton", "passwordMinLength", "8", "12"],
    ], shown


# --- 3. invalid values --------------------------------------------------------------------------
def field_errors(page, name: str) -> list[str]:
    return [t.strip() for t in page.locator(f".form-row.field-{name} ul.errorlist li").all_inner_texts()]


def test_invalid_values_are_refused_inline_and_nothing_is_saved(site, page):
    before = reset_authentication(site.server)
    log_in(page, site.url, site.login, site.password)
    page.goto(site.url + AUTH_PATH)

    # Below the minimum, together with a valid change that must not be saved either.
    min_length_input(page).fill("0")
    hash_select(page).select_option("scrypt")
    save(page)
    expect(page.locator(".errornote")).to_contain_text("Please correct the error below.")
    row = page.locator(".form-row.field-password_min_length")
    expect(row.locator("ul.errorlist")).to_have_text("Ensure this value is greater than or equal to 1.")
    expect(row.locator("input[name=password_min_length]")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("ul.messagelist li.success")).to_have_count(0)
    assert field_errors(page, "password_max_length") == []
    expect(min_length_input(page)).to_have_value("0")  # the form keeps what was typed

    # A minimum above the maximum: the error stands by both fields.
    min_length_input(page).fill("50")
    max_length_input(page).fill("20")
    hash_select(page).select_option("argon2id")
    save(page)
    expect(page.locator(".errornote")).to_be_visible()
    both = ["The minimum password length (50) may not exceed the maximum password length (20)."]
    assert field_errors(page, "password_min_length") == both
    assert field_errors(page, "password_max_length") == both
    expect(page.locator("ul.messagelist li.success")).to_have_count(0)

    # Nothing reached the database or the audit log, and a fresh page shows the old values.
    after = site.server.shell_json(READ_STATE)
    assert after == before
    page.goto(site.url + AUTH_PATH)
    expect(min_length_input(page)).to_have_value("8")
    expect(max_length_input(page)).to_have_value("128")
    expect(hash_select(page)).to_have_value("argon2id")
    expect(page.locator(".errornote")).to_have_count(0)


# --- 4. an ordinary user ------------------------------------------------------------------------
def test_ordinary_user_lands_on_own_account_and_is_refused_the_settings(site, page):
    reset_authentication(site.server)
    name = f"reader{secrets.token_hex(3)}"
    before = site.server.shell_json(f"""
from accounts import services
from accounts.models import Domain
dom = Domain.objects.get(name="example.org")
acct = services.create_account({{"name": {name!r}, "domain": dom.pk, "roles_mode": "user", "kind": "user",
                                 "description": "Settings Reader"}}, "test", password={STRONG_PASSWORD!r})
""" + READ_STATE + """
result["email"] = acct.email_address
result["is_staff"] = acct.is_staff
""")
    email = before.pop("email")
    assert email == f"{name}@example.org"
    assert before.pop("is_staff") is False

    log_in(page, site.url, email, STRONG_PASSWORD)
    expect(page).to_have_url(site.url + "/account/")
    expect(page.locator("h1")).to_have_text("Your account")
    expect(page.get_by_role("link", name="Administration")).to_have_count(0)

    # The settings page: sent to the login page, which says why, and shows no settings.
    response = page.goto(site.url + AUTH_PATH)
    expect(page).to_have_url(f"{site.url}/admin/login/?next={AUTH_PATH}")
    first = response.request.redirected_from
    assert first is not None and first.url == site.url + AUTH_PATH
    assert first.response().status == 302
    assert response.status == 200
    expect(page.locator(".errornote")).to_contain_text(
        f"You are authenticated as {email}, but are not authorized to access this page.")
    expect(page.locator("input[name=password_min_length]")).to_have_count(0)
    html = page.content()
    for leaked in ("Password min length", "password_hash_algorithm", "Change authentication"):
        assert leaked not in html, leaked

    # The index and the audit log are refused the same way.
    for path in ("/admin/", "/admin/registry/auditevent/"):
        page.goto(site.url + path)
        expect(page).to_have_url(re.compile(r"/admin/login/\?next="))

    # A forged POST, with a valid CSRF token of the session, changes nothing.
    token = page.locator("input[name=csrfmiddlewaretoken]").first.get_attribute("value")
    posted = page.request.post(site.url + AUTH_PATH, form={
        "csrfmiddlewaretoken": token, "password_min_length": "1", "password_max_length": "128",
        "password_hash_algorithm": "pbkdf2", "password_min_strength": "3",
    }, max_redirects=0)
    assert posted.status == 302 and posted.headers["location"].startswith("/admin/login/"), posted.status
    after = site.server.shell_json(READ_STATE)
    assert after == before


# --- 5. the page is styled ----------------------------------------------------------------------
def test_settings_page_is_styled_screenshot(site, page, tmp_path):
    reset_authentication(site.server)
    css = []
    page.on("response", lambda r: css.append((r.url, r.status, r.headers.get("content-type", "")))
            if r.request.resource_type == "stylesheet" else None)
    log_in(page, site.url, site.login, site.password)
    page.goto(site.url + AUTH_PATH)
    page.wait_for_load_state("networkidle")
    base = [c for c in css if re.search(r"/static/admin/css/base\.[0-9a-f]+\.css$", c[0])]
    assert base and all(status == 200 and ctype.startswith("text/css") for _, status, ctype in base), css
    assert all(status == 200 for _, status, _ in css), css
    # Django's admin stylesheet is applied: a coloured header and the aligned form layout.
    header_bg = page.eval_on_selector("#header", "e => getComputedStyle(e).backgroundColor")
    assert header_bg not in ("rgba(0, 0, 0, 0)", "transparent"), header_bg
    label_width = page.eval_on_selector("label[for=id_password_min_length]", "e => getComputedStyle(e).width")
    assert label_width == "160px", label_width  # form.aligned label { width: 160px } in forms.css
    page.screenshot(path=str(tmp_path / "auth-settings.png"), full_page=True)
