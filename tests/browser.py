"""A real browser for end-to-end tests: Debian's Chromium driven by Playwright.

Import the fixtures into a test module (`from .browser import browser, page  # noqa: F401`).
No browser is ever downloaded, and the pages may only reach 127.0.0.1: any other request is
aborted before it leaves the machine.
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


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    """A fresh page in a context of its own (no cookies shared between tests)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(10_000)
    context.route(NOT_LOCAL, lambda route: route.abort())
    try:
        yield context.new_page()
    finally:
        context.close()
