"""The admin index's 'Top remediation activities' card."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from recommendations.models import RecommendationException
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, expose
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db
TODAY = timezone.localdate()


def activity_with(user, *, severity, due_in, name):
    rec = RecommendationFactory(name=name, severity_score=severity)
    group = DeviceGroupFactory(name="Servers")
    expose(rec, group, 2)
    return make_activity(user=user, recommendation=rec, groups=[group], due_on=TODAY + dt.timedelta(days=due_in))


def test_card_ranks_active_activities_by_severity_then_due_date(client, security_user):
    low = activity_with(security_user, severity=3.0, due_in=1, name="Low severity")
    high_late = activity_with(security_user, severity=9.0, due_in=20, name="High severity, due late")
    high_soon = activity_with(security_user, severity=9.0, due_in=2, name="High severity, due soon")
    done = activity_with(security_user, severity=10.0, due_in=1, name="Already done")
    client.force_login(security_user)
    client.post(reverse("admin:remediation_remediationactivity_complete", args=[done.pk]))

    html = client.get(reverse("admin:index")).content.decode()

    card = html[html.index('id="top-remediation-activities"') :]
    card = card[: card.index("</p>", card.index("rp-card-footer"))]
    positions = [
        card.index(reverse("admin:remediation_remediationactivity_change", args=[a.pk]))
        for a in (high_soon, high_late, low)
    ]
    assert positions == sorted(positions)
    assert "Already done" not in card
    assert "0 / 2" in card  # progress
    assert reverse("admin:remediation_remediationactivity_changelist") + "?status__exact=active" in card
    assert "Show more" in card
    assert "active exception" not in card


def test_card_counts_active_exceptions_when_there_are_some(admin_client, superuser):
    rec = RecommendationFactory()
    RecommendationException.objects.create(
        recommendation=rec,
        justification="risk_accepted",
        context="Accepted by the CISO",
        expires_on=TODAY + dt.timedelta(days=30),
        scope="global",
    )
    RecommendationException.objects.create(
        recommendation=rec,
        justification="risk_accepted",
        context="Old",
        expires_on=TODAY - dt.timedelta(days=3),
        scope="global",
        status="expired",
    )
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert "1 active exception" in html
    assert "No active remediation activities." in html


def test_index_renders_for_it_staff(client, it_user):
    client.force_login(it_user)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    assert "Top remediation activities" in response.content.decode()


def test_index_links_to_advanced_features(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:intune_advanced_features") in html
