"""Every project template renders in English and in Swedish, and the main pages in Swedish show
none of the project's English source strings.

The English strings looked for are built from the catalogue itself (its msgids that are
distinctive English phrases), so strings added later are checked as soon as they are in it.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from pathlib import Path

import polib
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from portal.preferences import user_language_set
from recommendations.models import DefenderSyncRun, ImportJob
from recommendations.services import exception_create
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, expose
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
    return {
        "recommendation": recommendation,
        "activity": activity,
        "attention": attention,
        "exception": exception,
        "job": job,
    }


def main_pages(data) -> dict[str, str]:
    rec, activity = data["recommendation"], data["activity"]
    return {
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
    }


@pytest.mark.parametrize("language", ["en", "sv"])
def test_every_project_template_renders_in_both_languages(client, superuser, portal_data, language):
    user_language_set(user=superuser, language=language)
    client.force_login(superuser)
    rendered = set()
    for name, url in main_pages(portal_data).items():
        response = client.get(url)
        assert response.status_code == 200, f"{name} ({url}) answered {response.status_code}"
        assert f'<html lang="{language}"' in response.content.decode(), name
        rendered |= {t.name for t in response.templates if t.name}
    missing = project_templates() - rendered
    assert not missing, f"no page walked renders {sorted(missing)}"


def test_the_main_pages_in_swedish_show_no_english_source_string(client, superuser, portal_data):
    phrases = english_phrases()
    assert len(phrases) > 100  # the check looks for something
    user_language_set(user=superuser, language="sv")
    client.force_login(superuser)
    found = {}
    for name, url in main_pages(portal_data).items():
        page = html.unescape(client.get(url).content.decode())
        assert "Logga ut" in page, name  # Django's own strings are Swedish too
        leftovers = [phrase for phrase in phrases if phrase in page]
        if leftovers:
            found[name] = leftovers
    assert found == {}


def test_the_walk_would_see_an_english_string(client, superuser, portal_data):
    """The check itself: an English page holds phrases of the list (so an untranslated one is caught)."""
    user_language_set(user=superuser, language="en")
    client.force_login(superuser)
    page = html.unescape(client.get(main_pages(portal_data)["activity"]).content.decode())
    seen = [phrase for phrase in english_phrases() if phrase in page]
    assert "Device remediation status" in seen
    assert "Mark as complete" in seen
    importer = html.unescape(client.get(main_pages(portal_data)["device import"]).content.decode())
    assert "This importer will import the following fields" in [p for p in english_phrases() if p in importer]
