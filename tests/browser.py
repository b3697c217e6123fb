"""A real browser for end-to-end tests: Debian's Chromium driven by Playwright.

The fixtures are made available to every test directory by the root conftest.py, so there is
exactly one browser per test session (a second sync Playwright cannot start in the thread of
the first). No browser is ever downloaded, and pages may only reach 127.0.0.1: any other
request is aborted before it leaves the machine.
"""
from __future__ import annotations

import re

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
# Everything but the local server (and the browser's own data: / about: URLs).
NOT_LOCAL = re.compile(r"^(?!(http://127\.0\.0\.1[:/]|data:|about:|blob:))")


class Chromium:
    """The session's browser; each page lives in a context of its own (no shared cookies)."""

    def __init__(self, browser):
        self.browser = browser

    def new_context(self):
        context = self.browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
        context.set_default_timeout(10_000)
        context.route(NOT_LOCAL, lambda route: route.abort())
        return context

    def run(self, fn):
        """fn(page) on a fresh page, as a new visitor; returns what fn returns."""
        context = self.new_context()
        try:
            return fn(context.new_page())
        finally:
            context.close()


@pytest.fixture(scope="session")
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield Chromium(browser)
        finally:
            browser.close()


@pytest.fixture
def page(chromium):
    """A fresh page in a context of its own."""
    context = chromium.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()


def log_in_admin_form(page, base_url: str, username: str, password: str, otp: str | None = None) -> None:
    page.goto(base_url + "/admin/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    if otp is not None:
        page.fill("input[name=otp]", otp)
    with page.expect_navigation():
        page.click("#login-form [type=submit]")
