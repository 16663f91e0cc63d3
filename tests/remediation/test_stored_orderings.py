"""The stored priority rank and progress behind ?ordering=priority / progress: right after every
kind of change (they are computed by the database from the row, so they cannot go stale)."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from recommendations.models import Exposure
from remediation.models import RemediationActivity
from remediation.services import activities_refresh_progress, activity_complete
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db


def stored(activity) -> tuple[int, int]:
    return RemediationActivity.objects.values_list("priority_rank", "progress_stored").get(pk=activity.pk)


def test_rank_follows_the_priority(security_user):
    ranks = {p: stored(make_activity(user=security_user, priority=p))[0] for p in ("high", "medium", "low")}
    assert ranks == {"high": 0, "medium": 1, "low": 2}
    activity = make_activity(user=security_user, priority="low")
    RemediationActivity.objects.filter(pk=activity.pk).update(priority="high")
    assert stored(activity)[0] == 0


def test_progress_follows_the_remediated_devices_and_completion(security_user):
    activity = make_activity(user=security_user, devices=3)
    assert stored(activity)[1] == 0
    device_ids = list(activity.devices.order_by("pk").values_list("device_id", flat=True))
    Exposure.objects.filter(recommendation=activity.recommendation, device_id=device_ids[0]).delete()
    activities_refresh_progress(recommendation_ids=[activity.recommendation_id])
    assert stored(activity)[1] == 33  # 1 of 3, rounded down like the list shows
    Exposure.objects.filter(recommendation=activity.recommendation).delete()
    activities_refresh_progress(recommendation_ids=[activity.recommendation_id])
    activity.refresh_from_db()
    assert activity.is_completed
    assert stored(activity)[1] == 100


def test_attention_required_sorts_before_zero_and_an_empty_activity_is_zero(security_user):
    attention = make_activity(user=security_user, remediation_option="attention_required")
    assert stored(attention)[1] == -1
    empty = make_activity(user=security_user)
    RemediationActivity.objects.filter(pk=empty.pk).update(target_devices=0, fixed_devices=0)
    assert stored(empty)[1] == 0
    activity_complete(activity=attention, user=security_user)
    assert stored(attention)[1] == -1


def test_api_orders_by_the_stored_values(security_user):
    low = make_activity(user=security_user, priority="low", devices=2)
    high = make_activity(user=security_user, priority="high", devices=2)
    medium = make_activity(user=security_user, priority="medium", devices=2)
    RemediationActivity.objects.filter(pk=medium.pk).update(fixed_devices=1)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.get_or_create(user=security_user)[0].key)
    by_priority = [a["id"] for a in client.get("/api/v1/remediation-activities/?ordering=priority").json()["results"]]
    assert by_priority == [str(high.pk), str(medium.pk), str(low.pk)]
    by_progress = [a["id"] for a in client.get("/api/v1/remediation-activities/?ordering=-progress").json()["results"]]
    assert by_progress[0] == str(medium.pk)
    assert by_progress[1:] == [str(high.pk), str(low.pk)]  # ties: newest first
