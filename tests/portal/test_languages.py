"""The portal in Swedish and English: who gets which language, the header's language choice,
API errors, CSV exports, emails and the formats of dates and numbers."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from portal.models import UserPreference
from portal.preferences import user_language_set
from remediation.models import ActivityNotification, RemediationActivity
from remediation.services import notify
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, UserFactory, expose
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db

ADMIN = "/admin/"
API = "/api/v1/remediation-activities/"


def html_lang(response) -> str:
    body = response.content.decode()
    start = body.index('<html lang="') + len('<html lang="')
    return body[start : body.index('"', start)]


@pytest.fixture
def security_client(client, security_user):
    client.force_login(security_user)
    return client


def token_client(user, **headers) -> APIClient:
    client = APIClient(headers=headers)
    client.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.get_or_create(user=user)[0].key)
    return client


def read_csv(response) -> list[list[str]]:
    assert response.status_code == 200, getattr(response, "content", b"")
    # utf-8-sig: the admin's downloads start with a byte-order mark (for Excel), the API's do not.
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))


# --- who gets which language ------------------------------------------------------------


def test_the_login_page_follows_the_browser(client):
    swedish = client.get(reverse("admin:login"), headers={"accept-language": "sv-SE,sv;q=0.9"})
    assert html_lang(swedish) == "sv"
    assert "Användarnamn" in swedish.content.decode()  # Django's own strings
    assert "Åtgärdsportalen" in swedish.content.decode()  # the project's site header

    english = client.get(reverse("admin:login"), headers={"accept-language": "en-US,en;q=0.9"})
    assert html_lang(english) == "en"
    assert "Username" in english.content.decode()
    assert "Remediation portal" in english.content.decode()


def test_without_a_stored_choice_the_browser_decides(security_client):
    page = security_client.get(ADMIN, headers={"accept-language": "sv"})
    assert html_lang(page) == "sv"
    assert "Viktigaste åtgärdsaktiviteterna" in page.content.decode()
    assert html_lang(security_client.get(ADMIN, headers={"accept-language": "en"})) == "en"


@pytest.mark.parametrize(("stored", "browser"), [("en", "sv-SE"), ("sv", "en-US")])
def test_the_users_stored_choice_wins_over_the_browser(client, security_user, stored, browser):
    user_language_set(user=security_user, language=stored)
    client.force_login(security_user)
    page = client.get(ADMIN, headers={"accept-language": browser})
    assert html_lang(page) == stored
    assert page["Content-Language"] == stored


def test_choosing_a_language_in_the_header_stores_it_and_reloads_the_page_in_it(security_client, security_user):
    changelist = reverse("admin:remediation_remediationactivity_changelist")
    page = security_client.get(changelist, headers={"accept-language": "en"})
    body = page.content.decode()
    assert 'id="language-form"' in body
    assert f'name="next" value="{changelist}"' in body
    assert 'action="/admin/language/"' in body

    response = security_client.post(
        reverse("set-language"), {"language": "sv", "next": changelist}, headers={"accept-language": "en"}
    )
    assert response.status_code == 302
    assert response["Location"] == changelist
    assert UserPreference.objects.get(user=security_user).language == "sv"
    reloaded = security_client.get(changelist, headers={"accept-language": "en"})
    assert html_lang(reloaded) == "sv"
    assert "Åtgärdsaktiviteter" in reloaded.content.decode()
    assert '<option value="sv" lang="sv" selected>Svenska</option>' in reloaded.content.decode()

    # "Browser language" forgets the choice: the browser decides again.
    security_client.post(reverse("set-language"), {"language": "", "next": changelist})
    assert UserPreference.objects.get(user=security_user).language == ""
    assert html_lang(security_client.get(changelist, headers={"accept-language": "en"})) == "en"


def test_the_stored_choice_follows_the_user_to_a_new_session(security_user):
    user_language_set(user=security_user, language="sv")
    browser = Client(headers={"accept-language": "en"})
    browser.force_login(security_user)
    assert html_lang(browser.get(ADMIN)) == "sv"


def test_an_unknown_language_is_refused_and_changes_nothing(security_client, security_user):
    security_client.post(reverse("set-language"), {"language": "sv", "next": ADMIN})
    response = security_client.post(reverse("set-language"), {"language": "xx", "next": ADMIN}, follow=True)
    assert UserPreference.objects.get(user=security_user).language == "sv"
    assert "Välj ett av de erbjudna språken." in response.content.decode()


def test_the_language_form_needs_csrf_a_post_and_a_signed_in_staff_user(security_user):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(security_user)
    assert strict.post(reverse("set-language"), {"language": "sv"}).status_code == 403
    assert not UserPreference.objects.filter(user=security_user).exists()

    browser = Client()
    browser.force_login(security_user)
    assert browser.get(reverse("set-language")).status_code == 405
    anonymous = Client().post(reverse("set-language"), {"language": "sv"})
    assert anonymous.status_code == 302
    assert "/admin/login/" in anonymous["Location"]


def test_the_language_form_never_redirects_off_the_site(security_client):
    response = security_client.post(reverse("set-language"), {"language": "sv", "next": "https://evil.example/"})
    assert response["Location"] == reverse("admin:index")


# --- the API ----------------------------------------------------------------------------


def test_api_field_messages_follow_accept_language_and_field_names_stay_english(security_user):
    RecommendationFactory(external_id="va-_-contoso-_-app")
    body = {
        "recommendation": "va-_-contoso-_-app",
        "remediation_option": "software_update",
        "priority": "high",
        "due_on": "2001-01-01",
        "device_groups": [],
    }
    swedish = token_client(security_user, accept_language="sv-SE").post(API, body, format="json")
    assert swedish.status_code == 400
    assert swedish.json()["due_on"] == ["Förfallodatumet måste vara i dag eller senare."]
    assert swedish.json()["device_groups"] == ["Välj minst en enhetsgrupp."]

    english = token_client(security_user, accept_language="en").post(API, body, format="json")
    assert english.json()["due_on"] == ["The due date must be today or later."]

    # DRF's own messages translate too (a required field missing).
    missing = token_client(security_user, accept_language="sv").post(API, {}, format="json")
    assert missing.status_code == 400
    assert set(missing.json()) >= {"recommendation", "priority"}
    assert missing.json()["priority"] == ["Det här fältet är obligatoriskt."]
    assert not RemediationActivity.objects.exists()


def test_the_users_stored_choice_does_not_change_the_api(security_user):
    user_language_set(user=security_user, language="sv")
    response = token_client(security_user).post(API, {}, format="json")
    assert response.json()["priority"] == ["This field is required."]


# --- CSV exports ------------------------------------------------------------------------


def test_csv_exports_are_english_by_default_and_swedish_with_lang_sv(security_user):
    activity = make_activity(user=security_user, devices=2)
    client = token_client(security_user, accept_language="sv")  # the header does not change the contract
    english = read_csv(client.get(f"{API}export.csv"))
    assert english[0][:3] == ["Remediation activity", "Status", "Priority"]
    assert english[1][1:3] == ["Active", "High"]

    swedish = read_csv(client.get(f"{API}export.csv?lang=sv"))
    assert swedish[0][:3] == ["Åtgärdsaktivitet", "Status", "Prioritet"]
    assert swedish[0][9] == "Slutförd av"
    assert swedish[1][1:3] == ["Aktiv", "Hög"]

    devices = read_csv(client.get(f"{API}{activity.pk}/devices.csv?lang=sv"))
    assert devices[0] == [
        "Enhets-ID",
        "Enhetsnamn",
        "OS-plattform",
        "Enhetsgrupp",
        "Status",
        "Åtgärdad den",
        "Skickad till Intune",
    ]
    assert devices[1][4] == "Exponerad"
    assert devices[1][6] == "Nej"


def test_an_unknown_csv_language_answers_400(security_user):
    response = token_client(security_user).get(f"{API}export.csv?lang=xx")
    assert response.status_code == 400
    assert "lang" in response.json()


def test_admin_csv_downloads_take_lang_too(security_client, security_user):
    activity = make_activity(user=security_user, devices=1)
    changelist_csv = reverse("admin:remediation_remediationactivity_export")
    assert (
        read_csv(security_client.get(changelist_csv, headers={"accept-language": "sv"}))[0][0] == "Remediation activity"
    )
    assert read_csv(security_client.get(f"{changelist_csv}?lang=sv&status__exact=active"))[0][0] == "Åtgärdsaktivitet"
    devices_csv = reverse("admin:remediation_remediationactivity_devices_csv", args=[activity.pk])
    assert read_csv(security_client.get(f"{devices_csv}?lang=sv"))[0][0] == "Enhets-ID"
    assert security_client.get(f"{devices_csv}?lang=xx").status_code == 400


# --- emails -----------------------------------------------------------------------------


def test_each_recipient_gets_the_email_in_their_language(security_user):
    it_staff = Group.objects.get(name="IT staff")
    group = DeviceGroupFactory(name="Servers")
    swedish = UserFactory(username="anna", email="anna@example.com")
    english = UserFactory(username="bob", email="bob@example.com")
    for person in (swedish, english):
        person.groups.add(it_staff)
        person.user_permissions.add(*_view_all())
    user_language_set(user=swedish, language="sv")
    recommendation = RecommendationFactory()
    expose(recommendation, group, 2)
    activity = make_activity(user=security_user, recommendation=recommendation, groups=[group])
    mail.outbox.clear()
    ActivityNotification.objects.filter(activity=activity).delete()

    assert notify(activity=activity, kind=ActivityNotification.Kind.NEW_REQUEST) is True
    by_recipient = {tuple(message.to): message for message in mail.outbox}
    assert set(by_recipient) == {("anna@example.com",), ("bob@example.com",)}
    assert by_recipient[("anna@example.com",)].subject == f"Ny åtgärdsbegäran: {activity.title}"
    assert "Enhetsgrupper: Servers" in by_recipient[("anna@example.com",)].body
    assert by_recipient[("bob@example.com",)].subject == f"New remediation request: {activity.title}"
    assert "Device groups: Servers" in by_recipient[("bob@example.com",)].body


def _view_all():
    from django.contrib.auth.models import Permission

    return Permission.objects.filter(codename="view_all_device_groups")


# --- formats ----------------------------------------------------------------------------


def test_dates_times_and_numbers_follow_the_active_language(security_client, security_user):
    activity = make_activity(user=security_user, devices=3, due_on=dt.date.today() + dt.timedelta(days=30))
    RemediationActivity.objects.filter(pk=activity.pk).update(
        created_at=dt.datetime(2026, 3, 1, 15, 30, tzinfo=dt.UTC), target_devices=18511
    )
    page_url = reverse("admin:remediation_remediationactivity_change", args=[activity.pk])
    due = activity.due_on

    swedish = security_client.get(page_url, headers={"accept-language": "sv"}).content.decode()
    assert f"<dd>{due:%Y-%m-%d}</dd>" in swedish
    assert "<dd>2026-03-01 15:30</dd>" in swedish  # 24-hour clock
    assert "0 av 18\xa0511 enheter åtgärdade" in swedish  # a (non-breaking) space between thousands

    english = security_client.get(page_url, headers={"accept-language": "en"}).content.decode()
    assert "<dd>2026-03-01 15:30</dd>" in english  # the activity page's one date format (issue 17)
    assert "0 of 18,511 devices remediated" in english  # English thousands


def test_the_request_form_date_input_is_iso_and_its_hint_follows_the_language(security_client):
    recommendation = RecommendationFactory()
    url = reverse("admin:recommendations_securityrecommendation_remediation_options", args=[recommendation.pk])
    today = dt.date.today()
    swedish = security_client.get(url, headers={"accept-language": "sv"}).content.decode()
    assert 'type="date"' in swedish
    assert f'value="{today + dt.timedelta(days=14):%Y-%m-%d}"' in swedish  # what a date input needs
    assert f"Datum skrivs som {today:%Y-%m-%d} (i dag)." in swedish
    english = security_client.get(url, headers={"accept-language": "en"}).content.decode()
    assert f"Dates are written as {today:%m/%d/%Y} (today)." in english


# --- the helpers charts use -------------------------------------------------------------


def test_the_chart_helpers_write_numbers_and_dates_in_the_active_language():
    import json

    from django.template import Context, Template
    from django.utils import translation

    template = Template('{% load portal_format %}{{ n|grouped }}|{{ d|day }}|{% chart_formats "chart-formats" %}')
    context = {"n": 18511, "d": dt.date(2026, 12, 1)}
    with translation.override("sv"):
        number, day, script = template.render(Context(context)).split("|")
    assert number == "18\xa0511"
    assert day == "2026-12-01"
    formats = json.loads(script.split(">", 1)[1].rsplit("<", 1)[0])
    assert formats["locale"] == "sv-SE"
    assert formats["thousand_separator"] == "\xa0"
    assert formats["decimal_separator"] == ","
    assert formats["date_format"] == "Y-m-d"
    with translation.override("en"):
        number, day, script = template.render(Context(context)).split("|")
    assert (number, day) == ("18,511", "12/01/2026")
    assert json.loads(script.split(">", 1)[1].rsplit("<", 1)[0])["locale"] == "en-US"


def test_completed_by_is_translated_on_pages_and_stays_the_contract_value_in_the_api(security_client, security_user):
    activity = make_activity(user=security_user, devices=1)
    RemediationActivity.objects.filter(pk=activity.pk).update(
        status="completed", completion_method="automatic", completed_at=dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
    )
    changelist = reverse("admin:remediation_remediationactivity_changelist")
    swedish = security_client.get(changelist, headers={"accept-language": "sv"}).content.decode()
    assert (
        '<td class="field-completed_column">2026-03-02<br><span class="rp-quiet">Systembekräftelse</span></td>'
        in swedish
    )
    page_url = reverse("admin:remediation_remediationactivity_change", args=[activity.pk])
    assert (
        "<dd>Systembekräftelse</dd>"
        in security_client.get(page_url, headers={"accept-language": "sv"}).content.decode()
    )
    english = security_client.get(changelist, headers={"accept-language": "en"}).content.decode()
    assert (
        '<td class="field-completed_column">2026-03-02<br><span class="rp-quiet">System confirmation</span></td>'
        in english
    )

    api = token_client(security_user, accept_language="sv").get(f"{API}{activity.pk}/")
    assert api.json()["completed_by"] == "System confirmation"
    rows = read_csv(token_client(security_user).get(f"{API}export.csv?lang=sv"))
    assert rows[1][9] == "Systembekräftelse"


def test_charts_write_their_axes_descriptions_and_tables_in_the_active_language():
    from django.utils import translation

    from portal.charts import Bar, Series, bar_chart, line_chart

    days = [dt.date(2026, 11, 30), dt.date(2026, 12, 1)]
    series = [Series("Open exposures", [(days[0], 18511), (days[1], 17000)])]
    with translation.override("sv"):
        swedish = line_chart(title="t", series=series) + bar_chart(title="b", bars=[Bar("Hög", 2.5, "2,5 dagar")])
    assert ">20\xa0000</text>" in swedish  # the y axis' top label
    assert "18\xa0511 den 30 november, 17\xa0000 den 1 december" in swedish  # the description
    assert "<td>18\xa0511</td>" in swedish  # the data table
    assert "<summary>Datatabell</summary>" in swedish
    assert ">Dag</th>" in swedish
    with translation.override("en"):
        english = line_chart(title="t", series=series)
    assert ">20,000</text>" in english
    assert "18,511 on November 30, 17,000 on December 1" in english
    assert "<summary>Data table</summary>" in english


def test_the_dashboard_in_swedish_writes_its_tiles_and_charts_in_swedish(security_client, security_user):
    from remediation.services import activity_complete, daily_figures_record

    done = make_activity(user=security_user, devices=3)
    activity_complete(activity=done, user=security_user)
    make_activity(user=security_user, devices=3)
    daily_figures_record()
    swedish = security_client.get(reverse("admin:index"), headers={"accept-language": "sv"}).content.decode()
    for text in (
        "Aktiva aktiviteter",
        "Väntar på IT-beslut",
        "Förfaller inom 7 dagar",
        "Åtgärdsförlopp: öppna exponeringar i aktiva aktiviteter, de senaste 90 dagarna",
        "Genomsnittlig tid till åtgärd per allvarlighetsgrad (slutförda aktiviteter)",
        "0,0 dagar (1 aktivitet)",  # a Swedish decimal comma
        "I tid",
        "100 % (1 av 1)",
        "Alla sidor",
    ):
        assert text in swedish, text


def test_defender_pulls_and_import_jobs_name_themselves_in_the_active_language(security_client):
    """Their names are the admin page's title and breadcrumb, and each list row's checkbox label."""
    from recommendations.models import DefenderSyncRun

    run = DefenderSyncRun.objects.create(trigger="command", status="succeeded", summary={})
    url = reverse("admin:recommendations_defendersyncrun_change", args=[run.pk])
    started = f"{run.started_at:%Y-%m-%d %H:%M}"
    swedish = security_client.get(url, headers={"accept-language": "sv"}).content.decode()
    assert f"Defender-hämtning {started} (Lyckades)" in swedish
    english = security_client.get(url, headers={"accept-language": "en"}).content.decode()
    assert f"Defender pull {started} (Succeeded)" in english
