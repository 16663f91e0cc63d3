"""In a real browser: a Swedish browser (sv-SE) sees the portal in Swedish, an English one in
English, and a user's chosen language (the header's form) wins over the browser's.

Set SCREENSHOT_DIR to keep screenshots (1440 x 900) of the Swedish dashboard and activity page.
"""

import os

import pytest
from django.urls import reverse

from tests.browser_support import launched_chromium, screenshot, sign_in
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, expose
from tests.remediation.factories import make_activity

# Playwright's sync API runs an event loop in this thread; Django's ORM refuses that without this.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"


pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def browser():
    with launched_chromium() as chromium:
        yield chromium


def new_page(browser, locale):
    context = browser.new_context(locale=locale, viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    return context, page


@pytest.fixture
def activity(security_user):
    servers = DeviceGroupFactory(name="Servers")
    rec = RecommendationFactory(name="Update Contoso Viewer", product_name="viewer", vendor="contoso")
    expose(rec, servers, 3)
    return make_activity(user=security_user, recommendation=rec, groups=[servers])


def test_a_swedish_browser_sees_the_portal_in_swedish(live_server, browser, security_user, activity):
    context, page = new_page(browser, "sv-SE")
    try:
        page.goto(live_server.url + reverse("admin:login"))
        assert page.get_attribute("html", "lang") == "sv"
        assert page.is_visible("text=Användarnamn")  # Django's own login form
        sign_in(page, live_server, security_user)
        assert page.get_attribute("html", "lang") == "sv"
        assert page.inner_text("#top-remediation-activities h2") == "Viktigaste åtgärdsaktiviteterna"
        assert page.is_visible("#logout-form >> text=Logga ut")  # Django's
        assert page.is_visible("#language-form >> text=Språk")  # the project's
        screenshot(page, "sv-dashboard")

        with page.expect_navigation():  # to the activity's page, loaded: its deferred scripts have run
            page.click("#top-remediation-activities a >> text=Update Contoso Viewer")
        assert page.is_visible("h2 >> text=Åtgärdsstatus per enhet")
        assert page.is_visible("#mark-complete >> text=Markera som slutförd")
        due = activity.due_on.isoformat()
        assert page.is_visible(f"dd >> text={due}")  # Swedish dates are ISO 8601
        # The helpers charts use, in the page's language (admin.js, after the JavaScript catalogue).
        assert page.evaluate("portalFormat.number(18511)") == "18\xa0511"
        assert page.evaluate("portalFormat.date('2026-12-01')") == "2026-12-01"
        assert page.evaluate("gettext('Attention-required activities have no due date.')") == (
            "Aktiviteter med Åtgärd krävs har inget förfallodatum."
        )
        screenshot(page, "sv-activity")

        # The request form: Swedish labels, an ISO date input and the date hint in Swedish.
        rec = activity.recommendation
        page.goto(
            live_server.url + reverse("admin:recommendations_securityrecommendation_remediation_options", args=[rec.pk])
        )
        assert page.is_visible("input[type=submit][value='Skicka begäran']")
        assert page.get_attribute("input[name=due_on]", "type") == "date"
        assert page.input_value("input[name=due_on]").count("-") == 2  # ISO 8601, what a date input holds
        assert page.is_visible("#due-date-format >> text=Datum skrivs som")
        screenshot(page, "sv-request-form")
    finally:
        context.close()


def test_an_english_browser_sees_english_and_a_chosen_language_wins(live_server, browser, security_user, activity):
    context, page = new_page(browser, "en-US")
    try:
        sign_in(page, live_server, security_user)
        assert page.get_attribute("html", "lang") == "en"
        assert page.inner_text("#top-remediation-activities h2") == "Top remediation activities"
        assert page.is_visible("#logout-form >> text=Log out")
        page.goto(live_server.url + reverse("admin:remediation_remediationactivity_change", args=[activity.pk]))
        assert page.evaluate("portalFormat.number(18511)") == "18,511"
        assert page.evaluate("portalFormat.date('2026-12-01')") == "Dec 1, 2026"
        page.goto(live_server.url + reverse("admin:index"))

        # The user chooses Swedish in the header: the page reloads in Swedish, whatever the browser says.
        page.select_option("#language-select", "sv")
        page.click("#language-submit")
        page.wait_for_url(live_server.url + reverse("admin:index"))
        assert page.get_attribute("html", "lang") == "sv"
        assert page.inner_text("#top-remediation-activities h2") == "Viktigaste åtgärdsaktiviteterna"
        screenshot(page, "en-browser-chose-sv")
    finally:
        context.close()

    # A new session of the same user, in another English browser: still Swedish (stored per user).
    context, page = new_page(browser, "en-GB")
    try:
        sign_in(page, live_server, security_user)
        assert page.get_attribute("html", "lang") == "sv"
        assert page.is_visible("#logout-form >> text=Logga ut")
    finally:
        context.close()
