"""In a real browser: Microsoft's published machines, filtered by their Defender fields; the Defender pulls page.

Drives Debian's /usr/bin/chromium through Playwright (see tests/browser_support.py). Set
SCREENSHOT_DIR to keep screenshots (1440 x 900) of the devices list and the pulls page.
"""

import os
from pathlib import Path

import pytest
from django.urls import reverse

from recommendations.models import DefenderSyncRun
from recommendations.services import import_tvm_files
from tests.browser_support import launched_chromium, screenshot, sign_in
from tests.recommendations.factories import DeviceFactory, DeviceGroupFactory

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

DEFENDER = Path(__file__).resolve().parents[1] / "data" / "defender"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def page():
    with launched_chromium() as browser:
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        tab = context.new_page()
        tab.set_default_timeout(15_000)
        try:
            yield tab
        finally:
            context.close()


def test_devices_are_filtered_by_their_defender_tag_and_health(live_server, page, security_user):
    import_tvm_files(machines=DEFENDER / "list-machines.json")
    servers = DeviceGroupFactory(name="Servers")
    DeviceFactory(
        computer_dns_name="srv-sql-01.contoso.com",
        device_group=servers,
        health_status="Inactive",
        risk_score="High",
        exposure_level="High",
        machine_tags=["tier-1"],
        os_version="21H2",
    )
    DeviceFactory(
        computer_dns_name="pc-0042.contoso.com",
        device_group=servers,
        health_status="Active",
        risk_score="None",
        exposure_level="Low",
        machine_tags=[],
        os_version="23H2",
    )
    sign_in(page, live_server, security_user)

    page.goto(live_server.url + reverse("admin:recommendations_device_changelist"))
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 3
    page.locator("#changelist-filter").get_by_role("link", name="test tag 2").click()
    assert rows.count() == 1
    row = rows.first
    assert "mymachine1.contoso.com" in row.inner_text()
    assert "test tag 1, test tag 2" in row.inner_text()
    assert "1709" in row.inner_text()
    screenshot(page, "devices-by-tag")

    page.goto(live_server.url + reverse("admin:recommendations_device_changelist"))
    page.locator("#changelist-filter").get_by_role("link", name="Inactive").click()
    assert [rows.nth(i).locator("th").inner_text() for i in range(rows.count())] == ["srv-sql-01.contoso.com"]


def test_the_defender_pulls_page_lists_runs_and_their_errors(live_server, page, security_user):
    DefenderSyncRun.objects.create(
        trigger="schedule",
        status="succeeded",
        summary={"created": 1204, "updated": 88, "remediated": 311, "re_exposed": 4, "rejected": 0},
        progress=["Recommendations: 412 read (1 page(s)), 97 with exposed devices."],
    )
    DefenderSyncRun.objects.create(
        trigger="command",
        status="failed",
        error="Reading the machines failed after 3 attempts: HTTP 500 Internal Server Error",
    )
    sign_in(page, live_server, security_user)

    page.goto(live_server.url + reverse("admin:recommendations_defendersyncrun_changelist"))

    text = page.inner_text("#content")
    assert "created 1204, updated 88, remediated 311, re-exposed 4, rejected 0" in text
    assert "Reading the machines failed after 3 attempts: HTTP 500" in text
    assert "The DEFENDER_* credentials are not configured" in page.inner_text("#defender-schedule")
    screenshot(page, "defender-pulls")
