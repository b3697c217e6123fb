"""The dashboard's live chart and live log in Chromium, against gunicorn (two workers): the page
mints its tokens with the session (POST + CSRF token), opens /api/live/metrics and
/api/live/tracing, the chart moves when requests are made, and the log shows them; the
administration's Content-Security-Policy is never violated."""
from __future__ import annotations

import json
import secrets

import requests

from tests.browser import log_in_admin_form
from tests.clients import STRONG_PASSWORD

WATCH_CSP = ("window.__csp = [];"
             "document.addEventListener('securitypolicyviolation',"
             " function (e) { window.__csp.push(e.violatedDirective + ' ' + e.blockedURI); });")

SEED = """
from accounts import services
from accounts.models import Domain
from registry import services as registry
dom = Domain.objects.filter(name="livedash.example").first() or registry.create(
    Domain._declaration, {{"name": "livedash.example", "description": "live dashboard"}}, "test")
acct = services.create_account({{"name": {name!r}, "domain": dom.pk, "roles_mode": {mode!r}, "kind": "user"}},
                               "test", password={password!r})
result = acct.email_address
"""


def seed(live, mode: str) -> str:
    return live.shell_json(SEED.format(name=f"dash{secrets.token_hex(3)}", mode=mode, password=STRONG_PASSWORD))


def test_the_live_chart_moves_and_the_log_shows_a_request(live, chromium):
    login = seed(live, "admin")
    context = chromium.new_context()
    try:
        page = context.new_page()
        page.add_init_script(WATCH_CSP)
        log_in_admin_form(page, live.url, login, STRONG_PASSWORD)
        page.goto(live.url + "/admin/")
        page.wait_for_function("() => Number(document.getElementById('live-chart').dataset.frames || 0) >= 2",
                               timeout=20_000)
        page.wait_for_function("() => document.getElementById('live-log-status').textContent === 'live'",
                               timeout=20_000)
        before = json.loads(page.get_attribute("#live-chart", "data-totals"))[0]
        marker = f"/live-dashboard-{secrets.token_hex(4)}"
        # Workers start emitting within a second of the log's stream opening: ask a few times.
        for attempt in range(10):
            assert requests.get(f"{live.url}{marker}/{attempt}", timeout=30).status_code == 404
            try:
                page.wait_for_function(f"() => document.getElementById('live-log').tBodies[0].textContent"
                                       f".includes({marker!r})", timeout=2_000)
                break
            except Exception:  # playwright's TimeoutError: not yet
                continue
        else:
            raise AssertionError("the live log never showed the request")
        page.wait_for_function(f"() => JSON.parse(document.getElementById('live-chart').dataset.totals)[0] > {before}",
                               timeout=20_000)
        row = page.locator("#live-log tbody tr", has_text=marker).first
        assert row.locator("td").nth(1).text_content() == "http.request-url"
        assert "code=404" in row.locator("td").nth(2).text_content()
        # The legend shows a rate, and the chart was drawn from more than one frame.
        assert int(page.get_attribute("#live-chart", "data-points")) >= 1
        # A filter the server refuses is said, not retried in a loop.
        page.fill("#live-log-filter", "nokey=1")
        page.click("#live-log-form [type=submit]")
        page.wait_for_function("() => document.getElementById('live-log-status').textContent.startsWith('refused')",
                               timeout=20_000)
        assert page.evaluate("window.__csp") == []
    finally:
        context.close()

