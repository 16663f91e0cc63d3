"""Debian's chromium driven by Playwright, for the browser tests (never a downloaded browser).

Without /usr/bin/chromium the browser tests skip, except where REQUIRE_BROWSER=1 (CI), where
they fail: a CI run must never pass without them.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

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
    """A headless chromium browser; closed afterwards."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
