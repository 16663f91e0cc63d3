"""End to end in a real browser: a security user files a request, follows it, completes it, exports it.

Drives Debian's /usr/bin/chromium through Playwright (no browser download); see tests/browser_support.py.
Set SCREENSHOT_DIR to keep screenshots of the changelist and the activity page.
"""

import csv
import io
import os
from pathlib import Path

import pytest
from django.urls import reverse

from remediation.models import RemediationActivity
from tests.browser_support import PASSWORD, launched_chromium, screenshot
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, expose

# Playwright's sync API runs an event loop in this thread; Django's ORM refuses that without this.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"


pytestmark = [
    pytest.mark.browser,
    # live_server flushes the database afterwards; restore the roles of the data migration first.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def browser_page():
    with launched_chromium() as browser:
        context = browser.new_context(accept_downloads=True, viewport={"width": 1500, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            context.close()


def download_csv(page, selector) -> list[list[str]]:
    with page.expect_download() as info:
        page.click(selector)
    path = info.value.path()
    return list(csv.reader(io.StringIO(Path(path).read_text(encoding="utf-8-sig"))))


def test_security_user_files_follows_completes_and_exports_a_request(live_server, browser_page, security_user):
    rec = RecommendationFactory(name="Update Contoso Viewer", product_name="viewer", vendor="contoso")
    servers = DeviceGroupFactory(name="Servers")
    expose(rec, servers, 3)
    expose(rec, DeviceGroupFactory(name="Laptops"), 2)
    page = browser_page

    # Log in.
    page.goto(live_server.url + reverse("admin:login"))
    page.fill("input[name=username]", security_user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(live_server.url + reverse("admin:index"))
    assert page.is_visible("#top-remediation-activities")

    # File a request from the recommendation.
    page.goto(live_server.url + reverse("admin:recommendations_securityrecommendation_change", args=[rec.pk]))
    page.click("#remediation-options")
    page.get_by_label("Software update").check()
    page.get_by_label("Servers (3 exposed devices)").check()
    page.select_option("select[name=priority]", "high")
    assert page.input_value("input[name=due_on]")  # prefilled with the default due date
    page.fill("textarea[name=requester_notes]", "Before the audit")
    screenshot(page, "request-form")
    page.click("input[name=_submit]")

    activity = RemediationActivity.objects.get()
    page.wait_for_url(live_server.url + reverse("admin:remediation_remediationactivity_change", args=[activity.pk]))
    assert "created for 3 devices" in page.inner_text("ul.messagelist")
    assert "Before the audit" in page.inner_text("#history")
    screenshot(page, "activity-page")

    # See it in the list, with its progress.
    page.goto(live_server.url + reverse("admin:remediation_remediationactivity_changelist"))
    row = page.locator("#result_list tbody tr", has_text="Update Contoso Viewer")
    assert row.locator(".rp-progress-label").inner_text() == "0 / 3"
    assert "Servers" in row.inner_text()
    screenshot(page, "activity-changelist")
    page.goto(live_server.url + reverse("admin:index"))
    assert "Update Contoso Viewer" in page.inner_text("#top-remediation-activities")
    screenshot(page, "index")
    page.go_back()

    # The changelist export.
    rows = download_csv(page, "#export-activities-csv")
    assert rows[0][0] == "Remediation activity"
    assert [r[0] for r in rows[1:]] == ["Update Contoso Viewer"]

    # Mark it complete from its page.
    row.locator("th a, td a").first.click()
    page.click("#mark-complete")  # asks first, with an optional note for the history
    page.fill("#confirm-notes", "Removed by the service desk")
    page.click("#confirm-complete")
    assert "was marked as complete" in page.inner_text("ul.messagelist")
    assert "Removed by the service desk" in page.inner_text("#history")
    assert page.inner_text(".rp-status") == "Completed"
    activity.refresh_from_db()
    assert activity.status == "completed"
    assert activity.completer_email == "sec@example.com"

    # And download its devices.
    rows = download_csv(page, "#export-devices-csv")
    assert rows[0] == [
        "Device ID",
        "Device name",
        "OS platform",
        "Device group",
        "Status",
        "Remediated on",
        "Sent to Intune",
    ]
    assert len(rows) == 4
    assert {r[3] for r in rows[1:]} == {"Servers"}


def test_a_second_request_for_the_same_group_is_warned_about_then_filed_when_confirmed(live_server, security_user):
    rec = RecommendationFactory(name="Update Contoso Viewer", product_name="viewer", vendor="contoso")
    expose(rec, DeviceGroupFactory(name="Servers"), 3)
    with launched_chromium() as browser:
        page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
        page.set_default_timeout(15_000)
        page.goto(live_server.url + reverse("admin:login"))
        page.fill("input[name=username]", security_user.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("input[type=submit]")
        form_url = live_server.url + reverse(
            "admin:recommendations_securityrecommendation_remediation_options", args=[rec.pk]
        )

        def file_request():
            page.goto(form_url)
            page.get_by_label("Software update").check()
            page.get_by_label("Servers (3 exposed devices)").check()
            page.click("input[name=_submit]")

        file_request()
        first = RemediationActivity.objects.get()
        file_request()

        warning = page.inner_text("#request-errors")
        assert "is already active for this recommendation and device group Servers" in warning
        assert page.get_attribute("#duplicate-activity", "href") == reverse(
            "admin:remediation_remediationactivity_change", args=[first.pk]
        )
        assert RemediationActivity.objects.count() == 1
        screenshot(page, "request-form-duplicate-warning")

        page.get_by_label("File it anyway").check()
        page.click("input[name=_submit]")
        page.wait_for_selector("ul.messagelist")
        assert "created for 3 devices" in page.inner_text("ul.messagelist")
        assert RemediationActivity.objects.count() == 2
