"""Settings › Authentication › Directories in Chromium, against gunicorn: the kind chooser, the
add page of each kind and one directory of each kind, screenshotted (ADMIN_SCREENSHOTS keeps
them), styled, every input labelled; the login filter's preview follows what is typed."""
from __future__ import annotations

import secrets

from tests.clients import STRONG_PASSWORD
from tests.test_browser_admin_pages import WATCH_CSP, log_in_admin_form, seed_admin, shots_dir, visit

SEED = """
from accounts.models import Directory
from registry import services as registry
decl = Directory._declaration
made = [
    registry.create(decl, {{"description": "People {tag}", "kind": "ldap", "base_dn": "dc=example,dc=org",
                           "bind_dn": "cn=admin,dc=example,dc=org", "bind_secret_kind": "value",
                           "bind_secret": "bind-S3cret-{tag}"}}, "test"),
    registry.create(decl, {{"description": "Accounts table {tag}", "kind": "sql", "sql_store": "postgresql",
                           "sql_host": "db.example.org"}}, "test"),
    registry.create(decl, {{"description": "Company SSO {tag}", "kind": "oidc",
                           "issuer_url": "https://sso.example.org/realms/staff"}}, "test"),
]
result = [d.pk for d in made]
"""


def test_directory_pages_in_the_browser(live, chromium, tmp_path):
    from playwright.sync_api import expect

    login = seed_admin(live)
    tag = secrets.token_hex(3)
    pks = live.shell_json(SEED.format(tag=tag))
    shots = shots_dir(tmp_path)
    base = live.url + "/admin/accounts/directory/"

    def body(page):
        page.add_init_script(WATCH_CSP)
        log_in_admin_form(page, live.url, login, STRONG_PASSWORD)
        problems: list[str] = []
        visit(page, base + "add/", shots, problems)
        assert page.locator("a[href='?kind=ldap']").count() == 1
        for kind in ("ldap", "sql", "oidc"):
            visit(page, f"{base}add/?kind={kind}", shots, problems)
        for pk in pks:
            visit(page, f"{base}{pk}/change/", shots, problems)
            assert f"bind-S3cret-{tag}" not in page.content()
        assert not problems, "\n".join(problems)

        # The preview of the login filter follows the input, escaped as at search time.
        page.goto(f"{base}{pks[0]}/change/")
        preview = page.locator("#login-filter-preview")
        expect(preview).to_have_text("(&(objectClass=inetOrgPerson)(mail=jane@example.org))")
        page.fill("#id_filter_login", "(|(uid=?)(mail=?))")
        expect(preview).to_have_text("(|(uid=jane@example.org)(mail=jane@example.org))")
        # Only the LDAP settings on an LDAP directory's page.
        assert page.locator("#id_query_login").count() == 0 and page.locator("#id_issuer_url").count() == 0
        # The password source decides which of its rows show.
        expect(page.locator("#id_bind_secret")).to_be_visible()
        expect(page.locator("#id_bind_secret_variable")).to_be_hidden()
        page.select_option("#id_bind_secret_kind", "env")
        expect(page.locator("#id_bind_secret_variable")).to_be_visible()
        expect(page.locator("#id_bind_secret")).to_be_hidden()

        # The database's rows follow its kind.
        page.goto(f"{base}{pks[1]}/change/")
        expect(page.locator("#id_sql_host")).to_be_visible()
        expect(page.locator("#id_sql_path")).to_be_hidden()
        page.select_option("#id_sql_store", "sqlite")
        expect(page.locator("#id_sql_path")).to_be_visible()
        expect(page.locator("#id_sql_host")).to_be_hidden()
        expect(page.locator("#id_sql_auth_secret_kind")).to_be_hidden()
        page.screenshot(path=str(shots / "directory-sql-sqlite.png"), full_page=True)

    chromium.run(body)
