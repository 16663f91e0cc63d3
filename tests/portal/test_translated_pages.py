"""Every project template renders in English and in Swedish, and the main pages in Swedish show
none of the project's English source strings.

The English strings looked for are built from the catalogue itself (its msgids that are
distinctive English phrases), so strings added later are checked as soon as they are in it.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import polib
import pytest
from django.contrib.admin import helpers
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from portal.preferences import user_language_set
from recommendations.models import DefenderSyncRun, ImportJob
from recommendations.services import exception_create
from remediation.services import activity_complete, daily_figures_record
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, UserFactory, expose
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
PROJECT_APPS = ["portal", "recommendations", "remediation", "intune"]
# The project's catalogue, and the Swedish of third-party apps that ship none (django-import-export).
CATALOGUES = [
    ROOT / "locale" / "sv" / "LC_MESSAGES" / "django.po",
    ROOT / "locale_vendor" / "sv" / "LC_MESSAGES" / "django.po",
]
PLACEHOLDER = re.compile(r"%\(\w+\)[sdr]|%[sd]|\{\}|<[^>]+>")


def project_templates() -> set[str]:
    names = set()
    for app in PROJECT_APPS:
        base = ROOT / app / "templates"
        names |= {str(path.relative_to(base)) for path in base.rglob("*.html")}
    return names


def english_phrases() -> list[str]:
    """Distinctive English phrases of the catalogue: each msgid's literal parts of three words or
    more, where the Swedish differs (so "Status", the same in both, is never looked for)."""
    phrases = set()
    entries = [entry for catalogue in CATALOGUES for entry in polib.pofile(str(catalogue))]
    for entry in entries:
        if entry.obsolete:
            continue
        translation = entry.msgstr_plural.get(0, "") if entry.msgid_plural else entry.msgstr
        for msgid in filter(None, [entry.msgid, entry.msgid_plural]):
            for part in PLACEHOLDER.split(msgid):
                part = part.strip(" .,:;()—")
                if len(part.split()) >= 3 and part not in translation:
                    phrases.add(part)
    return sorted(phrases)


@pytest.fixture
def portal_data(superuser, tmp_path, settings):
    """One of everything the main pages show."""
    settings.MEDIA_ROOT = tmp_path
    servers = DeviceGroupFactory(name="Servers")
    recommendation = RecommendationFactory(name="Update Contoso Reader", public_exploit=True)
    expose(recommendation, servers, 3)
    activity = make_activity(user=superuser, recommendation=recommendation, groups=[servers])
    attention = make_activity(
        user=superuser, recommendation=recommendation, groups=[servers], remediation_option="attention_required"
    )
    excepted = RecommendationFactory(name="Disable SMBv1")
    expose(excepted, servers, 2)
    exception = exception_create(
        user=superuser,
        recommendation=excepted,
        justification="risk_accepted",
        context="Legacy scanners need it until June.",
        expires_on=dt.date.today() + dt.timedelta(days=30),
        scope="device_groups",
        device_groups=[servers],
    )
    job = ImportJob.objects.create(
        kind="exposures",
        file=SimpleUploadedFile("e.csv", b"x"),
        original_name="e.csv",
        total=10,
        processed=10,
        status=ImportJob.Status.SUCCEEDED,
        summary={"created": 3, "updated": 1, "remediated": 0, "re_exposed": 0, "rejected": 0},
    )
    DefenderSyncRun.objects.create(trigger="command", status="succeeded", summary={"created": 1, "updated": 0})
    # The dashboard's charts draw something: a completed activity (time to remediate, on time) and
    # today's figures (burn-down, exposed devices per severity, the activity page's chart).
    done = make_activity(user=superuser, recommendation=recommendation, groups=[servers])
    activity_complete(activity=done, user=superuser, notes="Patched by hand.")
    daily_figures_record()
    return {
        "superuser": superuser,
        "no role": UserFactory(username="no-role", is_staff=True),  # sees the 403 page
        "recommendation": recommendation,
        "activity": activity,
        "attention": attention,
        "exception": exception,
        "job": job,
    }


@dataclass(frozen=True)
class Page:
    """A page of the walk: a GET, or a POST (a changelist action's intermediate page), as a user."""

    url: str
    post: dict = field(default_factory=dict)
    status: int = 200
    user: str = "superuser"


def open_page(client, data, page: Page):
    client.force_login(data[page.user])
    response = client.post(page.url, page.post) if page.post else client.get(page.url)
    assert response.status_code == page.status, f"{page.url} answered {response.status_code}"
    return response


def main_pages(data) -> dict[str, Page]:
    rec, activity = data["recommendation"], data["activity"]
    activities = reverse("admin:remediation_remediationactivity_changelist")
    urls = {
        "dashboard": reverse("admin:index"),
        "recommendations": reverse("admin:recommendations_securityrecommendation_changelist"),
        "recommendation": reverse("admin:recommendations_securityrecommendation_change", args=[rec.pk]),
        "activities": reverse("admin:remediation_remediationactivity_changelist"),
        "activity": reverse("admin:remediation_remediationactivity_change", args=[activity.pk]),
        "attention activity": reverse("admin:remediation_remediationactivity_change", args=[data["attention"].pk]),
        "request form": reverse("admin:recommendations_securityrecommendation_remediation_options", args=[rec.pk]),
        "exceptions": reverse("admin:recommendations_recommendationexception_changelist"),
        "exception": reverse("admin:recommendations_recommendationexception_change", args=[data["exception"].pk]),
        "exception options": reverse("admin:recommendations_recommendationexception_options", args=[rec.pk]),
        "device import": reverse("admin:recommendations_device_import"),
        "import jobs": reverse("admin:recommendations_importjob_changelist"),
        "import job": reverse("admin:recommendations_importjob_change", args=[data["job"].pk]),
        "defender pulls": reverse("admin:recommendations_defendersyncrun_changelist"),
        "advanced features": reverse("admin:intune_advanced_features"),
        "mark as complete": reverse("admin:remediation_remediationactivity_complete", args=[activity.pk]),
        "cancel exception": reverse(
            "admin:recommendations_recommendationexception_cancel", args=[data["exception"].pk]
        ),
    }
    pages = {name: Page(url) for name, url in urls.items()}
    selected = {helpers.ACTION_CHECKBOX_NAME: [str(activity.pk), str(data["attention"].pk)]}
    pages["bulk approve"] = Page(activities, post={"action": "approve_selected", **selected})
    pages["bulk reject"] = Page(activities, post={"action": "reject_selected", **selected})
    pages["403"] = Page(activities, status=403, user="no role")
    pages["404"] = Page(reverse("admin:remediation_remediationactivity_change", args=["not-an-activity"]), status=404)
    return pages


def sign_in_language(data, language: str) -> None:
    for user in (data["superuser"], data["no role"]):
        user_language_set(user=user, language=language)


@pytest.mark.parametrize("language", ["en", "sv"])
def test_every_project_template_renders_in_both_languages(client, portal_data, language):
    sign_in_language(portal_data, language)
    rendered = set()
    for name, page in main_pages(portal_data).items():
        response = open_page(client, portal_data, page)
        assert f'<html lang="{language}"' in response.content.decode(), name
        rendered |= {t.name for t in response.templates if t.name}
    missing = project_templates() - rendered
    assert not missing, f"no page walked renders {sorted(missing)}"


def test_the_main_pages_in_swedish_show_no_english_source_string(client, portal_data):
    phrases = english_phrases()
    assert len(phrases) > 100  # the check looks for something
    sign_in_language(portal_data, "sv")
    found = {}
    for name, spec in main_pages(portal_data).items():
        page = html.unescape(open_page(client, portal_data, spec).content.decode())
        assert "Logga ut" in page, name  # Django's own strings are Swedish too
        leftovers = [phrase for phrase in phrases if phrase in page]
        if leftovers:
            found[name] = leftovers
    assert found == {}


def test_the_walk_would_see_an_english_string(client, portal_data):
    """The check itself: an English page holds phrases of the list (so an untranslated one is caught)."""
    sign_in_language(portal_data, "en")
    pages = main_pages(portal_data)

    def seen(name):
        page = html.unescape(open_page(client, portal_data, pages[name]).content.decode())
        return [phrase for phrase in english_phrases() if phrase in page]

    assert "Device remediation status" in seen("activity")
    assert "Mark as complete" in seen("activity")
    assert "Activities completed by their due date" in seen("dashboard")
    assert "Those whose state forbids it are left unchanged and named after" in seen("bulk approve")
    assert "You may not open this page" in seen("403")
    importer = html.unescape(open_page(client, portal_data, pages["device import"]).content.decode())
    assert "This importer will import the following fields" in [p for p in english_phrases() if p in importer]


def test_third_party_apps_without_a_swedish_catalogue_are_named_in_swedish(client, portal_data):
    """django-celery-beat and django-axes ship no Swedish: locale_vendor names their pages."""
    sign_in_language(portal_data, "sv")
    page = html.unescape(open_page(client, portal_data, main_pages(portal_data)["dashboard"]).content.decode())
    for swedish in ("Periodiska uppgifter", "Crontab-scheman", "Åtkomstförsök", "Åtkomstloggar"):
        assert swedish in page, swedish
    for english in ("Periodic Tasks", "Crontabs", "Access attempts", "Access logs"):
        assert english not in page, english
