"""Debian's chromium driven by Playwright, for the browser tests (never a downloaded browser).

Without /usr/bin/chromium the browser tests skip, except where REQUIRE_BROWSER=1 (CI), where
they fail: a CI run must never pass without them.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.urls import reverse

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def require_chromium() -> None:
    """Skip (or, with REQUIRE_BROWSER=1, fail) when Debian's chromium or Playwright is missing."""
    missing = None
    if not CHROMIUM.exists():
        missing = f"{CHROMIUM} is not installed"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            missing = "playwright is not installed"
    if missing is None:
        return
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"The browser tests must run here (REQUIRE_BROWSER=1), but {missing}.")
    pytest.skip(missing)


@contextmanager
def launched_chromium():
    """A headless chromium browser; closed afterwards.

    Inside it the test's code runs in Playwright's context, where Django's ORM opens a database
    connection of its own: it is closed on the way out, or it would outlive the test (and keep
    the test database from being dropped at the end of the run).
    """
    require_chromium()
    from django.db import connections
    from playwright.sync_api import sync_playwright

    outside = {alias: connections[alias] for alias in connections}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            try:
                browser.close()
            finally:
                for alias, connection in outside.items():
                    inside = connections[alias]
                    if inside is not connection and inside.connection is not None:  # opened in there
                        inside.close()


PASSWORD = "correct horse battery staple"  # UserFactory's


def screenshot(page, name: str) -> None:
    """A PNG of the page for a reviewer, when SCREENSHOT_DIR is set (the tests assert, this shows)."""
    directory = os.environ.get("SCREENSHOT_DIR")
    if directory:
        page.screenshot(path=str(Path(directory) / f"{name}.png"), full_page=True)


def sign_in(page, live_server, user) -> None:
    """Sign `user` (made by UserFactory) in through the admin's login form, as a person would."""
    page.goto(live_server.url + reverse("admin:login"))
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(live_server.url + reverse("admin:index"))
