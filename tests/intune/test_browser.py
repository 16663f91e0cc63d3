"""In a real browser: what the Intune pages say when nothing can be sent, and what a push sent.

Drives Debian's /usr/bin/chromium through Playwright (see tests/browser_support.py), at 1440 x 900.
Set SCREENSHOT_DIR to keep screenshots of the pages.
"""

import os

import pytest
from django.urls import reverse

from intune.models import IntuneConnection, IntuneTask
from remediation.models import RemediationActivity
from tests.browser_support import launched_chromium, screenshot, sign_in
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, expose
from tests.remediation.factories import make_activity

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's sync API runs an event loop in this thread


pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def page():
    with launched_chromium() as browser:
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            context.close()


def test_connection_on_without_credentials_is_said_on_the_toggle_and_on_the_request_form(
    live_server, page, superuser, security_user, settings
):
    settings.INTUNE_TENANT_ID = settings.INTUNE_CLIENT_ID = settings.INTUNE_CLIENT_SECRET = ""
    rec = RecommendationFactory(name="Update Contoso Viewer")
    expose(rec, DeviceGroupFactory(name="Servers"), 3)

    sign_in(page, live_server, superuser)
    page.goto(live_server.url + reverse("admin:intune_advanced_features"))
    page.check("#id_enabled")
    page.click("#intune-toggle-save")
    warning = page.locator("#intune-connection-warning")
    assert warning.is_visible()
    assert "credentials are not configured" in warning.inner_text()
    assert IntuneConnection.load().enabled
    screenshot(page, "intune-advanced-features-warning")

    page.context.clear_cookies()
    sign_in(page, live_server, security_user)
    page.goto(
        live_server.url + reverse("admin:recommendations_securityrecommendation_remediation_options", args=[rec.pk])
    )
    reason = page.locator("#intune-unavailable")
    assert reason.is_visible()
    assert "credentials are not configured" in reason.inner_text()
    assert page.locator("input[name=create_intune_task]").count() == 0
    screenshot(page, "intune-request-form-unavailable")


def test_the_activity_panel_says_what_was_sent_and_what_was_not(live_server, page, security_user):
    activity = make_activity(user=security_user)
    RemediationActivity.objects.filter(pk=activity.pk).update(create_intune_task=True)
    IntuneTask.objects.create(
        activity=activity,
        graph_id="5c0f3b0e-7d2a-4d8e-9a51-0b1c2d3e4f50",
        status="pending",
        devices_sent=10_000,
        devices_total=18_511,
        devices_not_managed=12,
    )

    sign_in(page, live_server, security_user)
    page.goto(live_server.url + reverse("admin:remediation_remediationactivity_change", args=[activity.pk]))

    sent = page.locator("#intune-devices-sent")
    assert sent.is_visible()
    text = sent.inner_text()
    assert "Only 10,000 of 18,511 devices were sent to Intune." in text
    assert "12 devices are not managed by Intune and were not sent." in text
    page.locator("#intune-panel").scroll_into_view_if_needed()
    screenshot(page, "intune-activity-panel")
