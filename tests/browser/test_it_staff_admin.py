"""In a real browser at 1440 x 900 (Debian's chromium through Playwright, see tests/browser_support.py):
IT staff decide in the admin, the activities list fits the window, the dashboard draws real charts.

Set SCREENSHOT_DIR to keep the screenshots.
"""

import datetime as dt
import json
import os

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.preferences import user_language_set
from remediation.models import DailyFigure, RemediationActivity
from tests.browser_support import launched_chromium, screenshot, sign_in
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, expose
from tests.remediation.factories import make_activity

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's loop in this thread; the ORM allows it here


pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def page():
    with launched_chromium() as browser:
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            yield page
        finally:
            context.close()
        assert errors == [], f"JavaScript errors: {errors}"


def api_json(page, live_server, path):
    """What the REST API answers this browser session (the same cookies)."""
    response = page.request.get(live_server.url + path, headers={"Accept": "application/json"})
    assert response.status == 200
    return json.loads(response.text())


def test_it_staff_approve_one_request_and_reject_another_from_the_activity_page(
    live_server, page, security_user, it_user
):
    servers = DeviceGroupFactory(name="Servers")
    first, second = RecommendationFactory(name="Update Contoso Viewer"), RecommendationFactory(name="Update Fabrikam")
    expose(first, servers, 3)
    expose(second, servers, 2)
    approve_me = make_activity(user=security_user, recommendation=first, groups=[servers])
    reject_me = make_activity(user=security_user, recommendation=second, groups=[servers])
    sign_in(page, live_server, it_user)

    page.goto(live_server.url + reverse("admin:remediation_remediationactivity_change", args=[approve_me.pk]))
    page.fill("#decision-notes", "Rolling out in Friday's patch window")
    page.click("#approve")
    assert "was approved. Ticket status: Approved." in page.inner_text("ul.messagelist")
    assert page.inner_text("#ticket-status") == "Approved"
    assert page.locator("#decision-form").count() == 0
    screenshot(page, "it-approved")

    page.goto(live_server.url + reverse("admin:remediation_remediationactivity_change", args=[reject_me.pk]))
    page.click("#reject")  # without notes: refused, nothing changes
    assert "Notes are required to reject a request." in page.inner_text("ul.messagelist")
    assert page.inner_text("#ticket-status") == "Pending"
    page.fill("#decision-notes", "Not on production servers this quarter")
    page.click("#reject")
    assert page.inner_text("#ticket-status") == "Rejected"
    assert "Not on production servers this quarter" in page.inner_text("#history")
    screenshot(page, "it-rejected")

    approved = api_json(page, live_server, f"/api/v1/remediation-activities/{approve_me.pk}/")
    rejected = api_json(page, live_server, f"/api/v1/remediation-activities/{reject_me.pk}/")
    assert (approved["ticket_status"], approved["it_notes"]) == ("approved", "Rolling out in Friday's patch window")
    assert (rejected["ticket_status"], rejected["it_notes"]) == ("rejected", "Not on production servers this quarter")
    events = api_json(page, live_server, f"/api/v1/remediation-activities/{reject_me.pk}/events/")["results"]
    assert ("rejected", "it@example.com", "Not on production servers this quarter") in [
        (e["kind"], e["actor"], e["notes"]) for e in events
    ]


@pytest.mark.parametrize("language", ["en", "sv"])  # Swedish words are longer (Åtgärdsaktivitet, Förfallodatum)
def test_the_activities_list_fits_1440_pixels_with_long_titles(live_server, page, security_user, language):
    groups = [DeviceGroupFactory(name=name) for name in ("Servers", "Workstations", "Finance laptops", "Developers")]
    for i in range(14):
        rec = RecommendationFactory(
            name=f"Update Contoso Enterprise Document Management and Collaboration Suite Client {i} to the latest"
            " supported version on every managed endpoint"
        )
        for group in groups:
            expose(rec, group, 1)
        make_activity(user=security_user, recommendation=rec, groups=groups[: 1 + i % 4])
    done = RemediationActivity.objects.first()
    RemediationActivity.objects.filter(pk=done.pk).update(
        status="completed",
        completion_method="manual",
        completer_email="someone.with.a.long.name@example.com",
        completed_at=timezone.now(),
    )
    user_language_set(user=security_user, language=language)
    sign_in(page, live_server, security_user)

    page.goto(live_server.url + reverse("admin:remediation_remediationactivity_changelist"))

    assert page.locator("html").get_attribute("lang") == language
    assert page.locator("#result_list tbody tr").count() == 14
    sizes = page.evaluate(
        """() => {
            const results = document.querySelector('#changelist .results');
            return {page: [document.documentElement.scrollWidth, document.documentElement.clientWidth],
                    table: [results.scrollWidth, results.clientWidth]};
        }"""
    )
    screenshot(page, f"activities-list-long-titles-{language}")
    assert sizes["page"][0] <= sizes["page"][1]  # no horizontal scrolling of the page
    assert sizes["table"][0] <= sizes["table"][1]  # nor of the table: the last columns are on screen
    last = page.locator("#result_list thead th").last.bounding_box()
    assert last["x"] + last["width"] <= 1440


def test_the_dashboard_draws_real_charts_from_the_daily_figures(live_server, page, security_user):
    servers = DeviceGroupFactory(name="Servers")
    today = timezone.localdate()
    for back, value in ((30, 120), (20, 90), (10, 60), (0, 25)):
        day = today - dt.timedelta(days=back)
        DailyFigure.objects.create(day=day, metric="open_targets", device_group=servers, value=value)
        DailyFigure.objects.create(
            day=day, metric="exposed_devices", device_group=servers, band="high", value=value * 2
        )
    sign_in(page, live_server, security_user)

    burn_down = page.locator("figure.rp-chart", has_text="Remediation burn-down")
    line = burn_down.locator("polyline")
    assert line.count() == 1
    box = line.bounding_box()
    assert box["width"] > 150  # drawn across the last 30 of the 90 days, not a dot
    assert box["height"] > 50  # and falling from 120 to 25
    assert burn_down.locator("svg[role=img] title").text_content().startswith("Remediation burn-down")
    burn_down.locator("summary").click()
    assert "120" in burn_down.locator("table").inner_text()
    assert page.locator("#tile-active .rp-tile-value").inner_text() == "0"
    screenshot(page, "dashboard-charts")
