"""Screenshots of every admin page at 1440 x 900 on the demo data, for a reviewer (`make screenshots`).

Starts `manage.py runserver` on a free local port against the configured database (the demo
data of `make seed`), signs in as the demo users through Debian's chromium (Playwright, never a
downloaded browser), and writes one full-page PNG per page to the output folder (in .gitignore).
It also reports every page whose width overflows the window and every JavaScript error.
`--language sv` takes them with a Swedish browser (sv-SE), where the words are longer.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.browser_support import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

USERS = {"security": "security-demo-2026", "it": "it-demo-2026", "admin": "admin-demo-2026"}
BROWSER_LOCALES = {"en": "en-US", "sv": "sv-SE"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urlopen(url, timeout=2):  # noqa: S310 - our own local server
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"The server at {url} did not answer within {seconds:.0f} s.")


def first_href(page, selector: str) -> str | None:
    link = page.locator(selector).first
    return link.get_attribute("href") if link.count() else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="screenshots", help="folder for the PNGs (default: screenshots)")
    parser.add_argument(
        "--language",
        choices=sorted(BROWSER_LOCALES),
        default="en",
        help="the browser's language (Accept-Language), for users without a stored choice (default: en)",
    )
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(  # noqa: S603 - our own manage.py
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "DJANGO_RUNSERVER_HIDE_WARNING": "true"},
    )
    problems: list[str] = []
    try:
        wait_for(base + "/healthz")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            for username in ("security", "it"):
                context = browser.new_context(
                    viewport={"width": 1440, "height": 900}, locale=BROWSER_LOCALES[args.language]
                )
                page = context.new_page()
                page.set_default_timeout(20_000)
                page.on("pageerror", lambda exc, u=username: problems.append(f"{u}: JavaScript error: {exc}"))

                def shot(name: str, url: str | None, page=page, username=username) -> None:
                    if url is None:
                        problems.append(f"{username}: no link for {name}")
                        return
                    page.goto(url if url.startswith("http") else base + url)
                    overflow = page.evaluate(
                        """() => {
                            const doc = document.documentElement;
                            const table = document.querySelector('#changelist .results');
                            return Math.max(doc.scrollWidth - doc.clientWidth,
                                            table ? table.scrollWidth - table.clientWidth : 0);
                        }"""
                    )
                    if overflow > 0:
                        problems.append(f"{username}: {name} is {overflow} px wider than the window")
                    page.screenshot(path=str(out / f"{username}-{name}.png"), full_page=True)

                page.goto(base + "/admin/login/")
                if username == "security":
                    page.screenshot(path=str(out / "login.png"))
                page.fill("input[name=username]", username)
                page.fill("input[name=password]", USERS[username])
                page.click("input[type=submit]")
                page.wait_for_url(base + "/admin/")
                shot("dashboard", "/admin/")
                shot("activities", "/admin/remediation/remediationactivity/")
                activity = first_href(page, "#result_list tbody tr a")
                pending = "/admin/remediation/remediationactivity/?status__exact=active&ticket_status__exact=pending"
                page.goto(base + pending)
                pending_activity = first_href(page, "#result_list tbody tr a")
                shot("activity", pending_activity or activity)
                complete = first_href(page, "#mark-complete")
                if complete:
                    shot("activity-complete-confirmation", complete)
                shot("recommendations", "/admin/recommendations/securityrecommendation/")
                recommendation = first_href(page, "#result_list tbody tr a")
                shot("recommendation", recommendation)
                if username == "security":
                    shot("request-form", first_href(page, "#remediation-options"))
                    page.go_back()
                    shot("exception-form", first_href(page, "#exception-options"))
                shot("devices", "/admin/recommendations/device/")
                shot("exposures", "/admin/recommendations/exposure/")
                shot("exceptions", "/admin/recommendations/recommendationexception/")
                shot("not-found", "/admin/remediation/remediationactivity/00000000-0000-0000-0000-000000000000/")
                if username == "it":
                    shot("forbidden", "/admin/recommendations/importjob/add/")
                    page.goto(base + pending)
                    if page.locator("#result_list tbody input.action-select").count():
                        page.locator("#result_list tbody input.action-select").first.check()
                        page.select_option("select[name=action]", "approve_selected")
                        page.click("button[name=index]")
                        page.screenshot(path=str(out / "it-bulk-approve-confirmation.png"), full_page=True)
                context.close()
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=20)
    for problem in problems:
        print("PROBLEM:", problem)
    print(f"Screenshots in {out}/: {len(list(out.glob('*.png')))} PNG files.")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
