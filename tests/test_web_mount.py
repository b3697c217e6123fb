"""The web UI mount, end to end on the live gunicorn server: `/` takes an administrator to the
admin and anyone else to the account page, where a person changes their password (the policy
applies) and makes an app password that then works for a mail client; static files carry cache
headers that suit their names."""
from __future__ import annotations

import re
import secrets
from urllib.parse import urljoin

import pytest
import requests
from playwright.sync_api import expect

from tests.clients import STRONG_PASSWORD
from tests.live import LiveServer
from tests.browser import log_in_admin_form

DOMAIN = "mount.example"
NEW_PASSWORD = "quartz Lantern 47 meadow-bicycle"


def make_account(server: LiveServer, *, admin: bool) -> str:
    name = f"{'ada' if admin else 'ulf'}{secrets.token_hex(3)}"
    return server.shell_json(f"""
from accounts import services
from accounts.models import Domain
from registry import services as registry
dom = Domain.objects.filter(name={DOMAIN!r}).first() or registry.create(
    Domain._declaration, {{"name": {DOMAIN!r}, "description": "mount tests"}}, "test")
acct = services.create_account({{"name": {name!r}, "domain": dom.pk, "kind": "user",
                                 "roles_mode": {"admin" if admin else "user"!r}}}, "test", password={STRONG_PASSWORD!r})
result = acct.email_address
""")


def basic_jmap(server: LiveServer, login: str, secret: str) -> int:
    """The status of a Core/echo call with Basic credentials, as a mail client would make it."""
    return requests.post(server.url + "/jmap", auth=(login, secret), timeout=30, json={
        "using": ["urn:ietf:params:jmap:core"], "methodCalls": [["Core/echo", {"ping": 1}, "0"]]}).status_code


def test_anonymous_root_leads_to_the_login_page(live):
    resp = requests.get(live.url + "/", allow_redirects=True, timeout=30)
    assert resp.status_code == 200
    assert resp.url.startswith(live.url + "/admin/login/")
    assert 'name="username"' in resp.text and 'name="password"' in resp.text
    # The login form comes back to the page the visitor asked for.
    assert "next=" in resp.url


def test_administrator_lands_on_the_admin(live, chromium):
    login = make_account(live, admin=True)

    def body(page):
        page.goto(live.url + "/")
        expect(page).to_have_url(re.compile(r"/admin/login/"))
        page.fill("input[name=username]", login)
        page.fill("input[name=password]", STRONG_PASSWORD)
        with page.expect_navigation():
            page.click("#login-form [type=submit]")
        page.goto(live.url + "/")
        expect(page).to_have_url(live.url + "/admin/")
        expect(page.locator("#site-name")).to_be_visible()

    chromium.run(body)


def test_user_changes_password_and_makes_an_app_password_from_the_root(live, chromium):
    login = make_account(live, admin=False)

    def body(page):
        log_in_admin_form(page, live.url, login, STRONG_PASSWORD)
        page.goto(live.url + "/")
        expect(page).to_have_url(live.url + "/account/")
        expect(page.locator("h1")).to_have_text("Your account")

        # The password policy applies on the page: a weak password is refused with its reason.
        page.get_by_role("link", name="Change your password").click()
        page.fill("input[name=current_password]", STRONG_PASSWORD)
        page.fill("input[name=new_password]", "password1")
        page.fill("input[name=new_password_confirm]", "password1")
        with page.expect_navigation():
            page.get_by_role("button", name=re.compile("Change", re.I)).click()
        expect(page.locator(".errorlist").first).to_be_visible()
        assert basic_jmap(live, login, STRONG_PASSWORD) == 200  # unchanged

        page.fill("input[name=current_password]", STRONG_PASSWORD)
        page.fill("input[name=new_password]", NEW_PASSWORD)
        page.fill("input[name=new_password_confirm]", NEW_PASSWORD)
        with page.expect_navigation():
            page.get_by_role("button", name=re.compile("Change", re.I)).click()
        expect(page).to_have_url(live.url + "/account/")
        expect(page.locator("ul.messages li.success")).to_contain_text("Your password was changed.")
        assert basic_jmap(live, login, STRONG_PASSWORD) == 401
        assert basic_jmap(live, login, NEW_PASSWORD) == 200

        # An app password, shown once, works where the password does.
        page.select_option("select[name=kind]", "app_password")
        page.fill("input[name=description]", "Thunderbird on the laptop")
        with page.expect_navigation():
            page.get_by_role("button", name="Create").click()
        secret = page.locator("#new-secret").inner_text().strip()
        expect(page.locator("tbody")).to_contain_text("Thunderbird on the laptop")
        assert basic_jmap(live, login, secret) == 200
        page.reload()
        expect(page.locator("#new-secret")).to_have_count(0)

    chromium.run(body)


@pytest.fixture(scope="module")
def stylesheet(live):
    """The hashed and the plain URL of the admin's base stylesheet, as the login page links it."""
    html = requests.get(live.url + "/admin/login/", timeout=30).text
    hashed = next(urljoin(live.url, href) for href in re.findall(r'href="([^"]+\.css)"', html)
                  if re.search(r"/base\.[0-9a-f]{12}\.css$", href))
    plain = re.sub(r"\.[0-9a-f]{12}\.css$", ".css", hashed)
    return hashed, plain


def test_hashed_static_files_are_cached_for_a_year_and_immutable(stylesheet):
    hashed, _ = stylesheet
    resp = requests.get(hashed, timeout=30, headers={"Accept-Encoding": "gzip"})
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/css")
    directives = {d.strip() for d in resp.headers["Cache-Control"].split(",")}
    assert "immutable" in directives and "public" in directives
    max_age = int(next(d for d in directives if d.startswith("max-age=")).split("=")[1])
    assert max_age >= 365 * 24 * 3600
    # Compressed copies are served to clients that take them, and caches are told so.
    assert resp.headers.get("Content-Encoding") == "gzip" and "Accept-Encoding" in resp.headers.get("Vary", "")
    # A conditional request is answered without a body.
    again = requests.get(hashed, timeout=30, headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status_code == 304 and again.content == b""


def test_unhashed_static_names_are_revalidated_soon(stylesheet):
    _, plain = stylesheet
    resp = requests.get(plain, timeout=30)
    assert resp.status_code == 200
    directives = {d.strip() for d in resp.headers["Cache-Control"].split(",")}
    assert "immutable" not in directives
    max_age = int(next(d for d in directives if d.startswith("max-age=")).split("=")[1])
    assert max_age <= 3600


def test_missing_static_file_is_404(live):
    assert requests.get(live.url + "/static/admin/css/nothing.0123456789ab.css", timeout=30).status_code == 404
