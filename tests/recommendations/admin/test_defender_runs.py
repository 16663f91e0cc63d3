"""The Defender pulls in the admin: the last runs, their summary and their errors."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from recommendations.models import DefenderSyncRun
from recommendations.services import defender_sync

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:recommendations_defendersyncrun_changelist"


def test_security_staff_see_the_last_runs_with_their_summary_or_error(client, security_user, defender):
    defender.recommendations = []
    good = defender_sync()
    defender.fail("GET", "/api/recommendations", status=500, times=3)
    bad = defender_sync()
    assert (good.status, bad.status) == ("succeeded", "failed")
    client.force_login(security_user)

    response = client.get(reverse(CHANGELIST))

    assert response.status_code == 200
    page = response.content.decode()
    assert [r.pk for r in response.context["cl"].result_list] == [bad.pk, good.pk]  # newest first
    assert "created 0, updated 0, remediated 0, re-exposed 0, rejected 0" in page
    assert "Reading the recommendations failed after 3 attempts: HTTP 500" in page
    assert "The DEFENDER_* credentials are configured." in page


def test_a_run_page_shows_its_progress_counts_and_error(client, security_user, defender):
    defender.recommendations = []
    run = defender_sync()
    client.force_login(security_user)

    page = client.get(reverse("admin:recommendations_defendersyncrun_change", args=[run.pk])).content.decode()

    assert "Recommendations: 0 read (1 page(s)), 0 with exposed devices." in page
    assert "Exposures: 0 new, 0 still exposed, 0 remediated, 0 exposed again." in page
    assert 'name="_save"' not in page


def test_the_page_says_when_credentials_and_the_schedule_are_missing(client, superuser, settings):
    settings.DEFENDER_TENANT_ID = ""
    started = timezone.now()
    DefenderSyncRun.objects.create(
        trigger="schedule",
        status="failed",
        started_at=started,
        finished_at=started + dt.timedelta(seconds=3),
        error="Defender credentials are not configured: set DEFENDER_TENANT_ID, DEFENDER_CLIENT_ID and "
        "DEFENDER_CLIENT_SECRET.",
    )
    client.force_login(superuser)
    page = client.get(reverse(CHANGELIST)).content.decode()
    assert "The beat entry defender_sync is off." in page
    assert "The DEFENDER_* credentials are not configured" in page
    assert "0:00:03" in page


def test_it_staff_do_not_see_the_runs(client, it_user):
    client.force_login(it_user)
    assert client.get(reverse(CHANGELIST)).status_code == 403
