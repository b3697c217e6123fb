"""Every settings page in Chromium, against gunicorn: the dashboard, every page the admin's menu
leads to (list, add form, and one object's form), and /account/. Each is screenshotted and fails
on a 5xx, a form input without a label, the site's stylesheet not applied, a missing
Content-Security-Policy header, or any violation of that policy (the page's script and style come
from static files only); the menu's labels are unique. Set ADMIN_SCREENSHOTS to a directory to
keep the screenshots (else they go to the test's temporary directory).
"""
from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

import pytest

from registry.declaration import ACRONYMS
from tests.browser import log_in_admin_form
from tests.clients import STRONG_PASSWORD
from tests.live import LiveServer

DOMAIN = "pages.example"
# The header's background in static/stalwart/admin.css (--header-bg): Django's own is #417690.
STALWART_HEADER_BG = "rgb(20, 27, 45)"

SEED = """
from accounts import services
from accounts.models import Account, Domain
from registry import services as registry
from security.models import BlockedIp
dom = Domain.objects.filter(name={domain!r}).first() or registry.create(
    Domain._declaration, {{"name": {domain!r}, "description": "Screenshot tests"}}, "test")
admin = services.create_account({{"name": {name!r}, "domain": dom.pk, "roles_mode": "admin", "kind": "user",
                                  "description": "Page tester"}}, "test", password={password!r})
services.create_account({{"name": {name!r} + "-group", "domain": dom.pk, "roles_mode": "default", "kind": "group",
                         "description": "A group"}}, "test", password=None)
# Tests share one live server: the address is drawn at random, so it may already be there.
if not BlockedIp.objects.filter(address="192.0.2.{octet}").exists():
    registry.create(BlockedIp._declaration, {{"address": "192.0.2.{octet}", "reason": "manual"}}, "test")
result = admin.email_address
"""

# What each page must show once loaded: the header's colour, the inputs that have no label.
PAGE_CHECKS = """() => {
  const header = document.querySelector('#header, body > header');
  const visible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
  const unlabelled = [];
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (['hidden', 'submit', 'button', 'reset'].includes(el.type) || !visible(el)) continue;
    const named = (el.labels && el.labels.length) || el.getAttribute('aria-label') ||
                  el.getAttribute('aria-labelledby') || el.getAttribute('title');
    if (!named) unlabelled.push(el.name || el.id || el.outerHTML.slice(0, 80));
  }
  const texts = (selector) => Array.from(document.querySelectorAll(selector)).map(el => el.textContent.trim());
  return {
    labels: texts('#content-main label, #content-main fieldset h2, #result_list thead th, .readonly-label, ' +
                  '.form-row .flex-container > label'),
    helps: texts('#content-main .help, #content-main .helptext'),
    headerBg: header ? getComputedStyle(header).backgroundColor : null,
    h1: (document.querySelector('h1') || {}).textContent || '',
    unlabelled,
  };
}"""


# Violations reach the page as events and the console as "Refused to ..." messages; both are
# collected from before the page's first script runs.
WATCH_CSP = ("window.__csp = [];"
             "document.addEventListener('securitypolicyviolation',"
             " function (e) { window.__csp.push(e.violatedDirective + ' ' + e.blockedURI); });")
CSP_DIRECTIVES = ("default-src 'none'", "script-src 'self'", "style-src 'self'", "object-src 'none'",
                  "frame-ancestors 'none'", "form-action 'self'", "base-uri 'none'")


def seed_admin(server: LiveServer) -> str:
    name = f"pages{secrets.token_hex(3)}"
    return server.shell_json(SEED.format(domain=DOMAIN, name=name, password=STRONG_PASSWORD,
                                         octet=secrets.randbelow(200) + 20))


def shots_dir(tmp_path) -> Path:
    out = Path(os.environ.get("ADMIN_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return out


def visit(page, url: str, shots: Path, problems: list[str], heading: bool = True) -> None:
    response = page.goto(url)
    status = response.status if response is not None else 0
    name = re.sub(r"[^a-z0-9]+", "-", url.split("//", 1)[1].split("/", 1)[1].lower()).strip("-") or "root"
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    if status >= 500 or status == 0:
        problems.append(f"{url}: status {status}")
        return
    policy = response.headers.get("content-security-policy", "")
    missing = [d for d in CSP_DIRECTIVES if d not in policy.split("; ")]
    if missing or "unsafe" in policy:
        problems.append(f"{url}: Content-Security-Policy {policy!r} lacks {missing}")
    violations = page.evaluate("() => window.__csp || ['no watcher']")
    if violations:
        problems.append(f"{url}: CSP violations {violations}")
    seen = page.evaluate(PAGE_CHECKS)
    if seen["headerBg"] != STALWART_HEADER_BG:
        problems.append(f"{url}: unstyled (header background {seen['headerBg']})")
    if heading and not seen["h1"].strip():
        problems.append(f"{url}: no heading")
    if seen["unlabelled"]:
        problems.append(f"{url}: inputs without a label: {seen['unlabelled'][:5]}")
    # Labels and headings come from field and model names ("enable_hsts"): an acronym left in lower
    # case ("Enable hsts", "Add mta route")
    # means the label mechanism (registry.declaration.label) or a verbose_name was bypassed.
    wrong = sorted({word for text in [*seen["labels"], seen["h1"]] for word in re.findall(r"[A-Za-z0-9]+", text)
                    if word.lower() in ACRONYMS and word != ACRONYMS[word.lower()]})
    if wrong:
        problems.append(f"{url}: acronyms not in capitals in labels: {wrong}")
    if any('{"' in text or '[{' in text for text in seen["helps"]):
        problems.append(f"{url}: a help text shows raw JSON beside a widget")


def test_every_settings_page_renders_styled_and_labelled(live, chromium, tmp_path):
    login = seed_admin(live)
    shots = shots_dir(tmp_path)

    def body(page):
        refused: list[str] = []
        page.add_init_script(WATCH_CSP)
        page.on("console", lambda msg: refused.append(msg.text) if "Content Security Policy" in msg.text else None)
        problems: list[str] = []
        # Django's login page names the site, not itself, in its header.
        visit(page, live.url + "/admin/login/", shots, problems, heading=False)
        log_in_admin_form(page, live.url, login, STRONG_PASSWORD)
        visit(page, live.url + "/admin/", shots, problems)

        # The menu: every entry is a (group, label) pair found once.
        entries = page.evaluate("""() => Array.from(document.querySelectorAll('#content-main .module')).flatMap(m =>
            Array.from(m.querySelectorAll('tr[data-search] th a')).map(a => [
                m.querySelector('caption').textContent.trim(), a.textContent.trim(), a.href]))""")
        labels = [(group, label) for group, label, _ in entries]
        assert len(labels) == len(set(labels)), labels
        assert ("Settings › Authentication", "OpenID Connect") in labels
        assert ("Settings › Network", "HTTP › Contact form") in labels
        assert ("Settings › MTA", "MTA-STS") in labels
        assert ("Management", "Accounts") in labels

        # Every page the menu leads to, its add form where it has one, and one object's form.
        adds = page.evaluate("() => Array.from(document.querySelectorAll('#content-main a.addlink')).map(a => a.href)")
        for _, _, href in entries:
            visit(page, href, shots, problems)
            first = page.query_selector("#result_list tbody th a, #result_list tbody td.field-__str__ a")
            if first is not None:
                visit(page, first.get_attribute("href") if first.get_attribute("href").startswith("http")
                      else live.url + first.get_attribute("href"), shots, problems)
        for href in adds:
            visit(page, href, shots, problems)
        visit(page, live.url + "/account/", shots, problems)
        visit(page, live.url + "/account/password/", shots, problems)
        assert not problems, "\n".join(problems)
        assert not refused, refused
        return len(entries) + len(adds)

    visited = chromium.run(body)
    assert visited > 20


def test_search_rule_editor_and_permission_filter_work_in_the_browser(live, chromium):
    from playwright.sync_api import expect

    login = seed_admin(live)

    def body(page):
        log_in_admin_form(page, live.url, login, STRONG_PASSWORD)
        page.goto(live.url + "/admin/")
        # A field's label finds its page: "hsts" is a field of Settings › Network › HTTP only.
        page.fill("#settings-search", "hsts")
        visible = page.eval_on_selector_all(
            "#content-main tr[data-search]", "rows => rows.filter(r => r.offsetParent !== null).map(r => r.textContent.trim())")
        assert len(visible) == 1 and visible[0].startswith("HTTP"), visible
        page.fill("#settings-search", "")

        # The rule editor asks the server's parser and shows where the error is.
        page.goto(live.url + "/admin/network/http/security/")
        condition = page.locator("input[name=allowed_endpoints__if]").first
        condition.fill("starts_with(path, ")
        status = page.locator("table.rule-editor tbody tr").first.locator(".rule-status").first
        expect(status).to_have_class(re.compile(r"\bbad\b"))
        expect(status).to_contain_text("character")
        condition.fill("starts_with(path, '/api/')")
        expect(status).to_have_class(re.compile(r"\bok\b"))
        rows = page.locator("input[name=allowed_endpoints__if]").count()
        page.click("button[data-add-row^=id_allowed_endpoints]")
        expect(page.locator("input[name=allowed_endpoints__if]")).to_have_count(rows + 1)

        # The permission picker filters its checkboxes and counts the ticked ones.
        page.goto(live.url + "/admin/accounts/role/add/")
        picker = page.locator(".perm-picker").first
        picker.locator(".perm-search").fill("sysAccountGet")
        shown = picker.locator("li:not(.search-hidden)")
        expect(shown).to_have_count(1)
        shown.first.locator("input").check()
        expect(picker.locator(".perm-count")).to_contain_text("1 of")

    chromium.run(body)
