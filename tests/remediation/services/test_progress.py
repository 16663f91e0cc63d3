"""Auto-completion: `activities_refresh_progress`, its task and its command."""

import datetime as dt

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from portal.errors import ValidationError
from portal.locks import job_lock
from recommendations.models import Exposure
from remediation.exports import activity_rows
from remediation.models import ActivityDevice, ActivityEvent, RemediationActivity
from remediation.services import activities_refresh_progress, activity_complete
from remediation.tasks import refresh_activity_progress
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db

FIXED_AT = timezone.now().replace(microsecond=0) - dt.timedelta(hours=5)


def remediate(activity, count=None, at=FIXED_AT):
    """Mark `count` (default all) of the activity's exposures remediated, as an import would."""
    device_ids = list(activity.devices.order_by("device_id").values_list("device_id", flat=True))[:count]
    Exposure.objects.filter(recommendation=activity.recommendation, device_id__in=device_ids).update(remediated_at=at)
    return device_ids


def statuses(activity):
    return sorted(activity.devices.values_list("status", flat=True))


def test_nothing_remediated_changes_nothing(security_user):
    activity = make_activity(user=security_user, devices=3)

    result = activities_refresh_progress(recommendation_ids=[activity.recommendation_id])

    activity.refresh_from_db()
    assert result["devices_remediated"] == 0
    assert result["activities_completed"] == 0
    assert activity.status == "active"
    assert activity.fixed_devices == 0
    assert statuses(activity) == ["exposed"] * 3


def test_some_devices_remediated_updates_progress_but_does_not_complete(security_user):
    activity = make_activity(user=security_user, devices=4)
    fixed = remediate(activity, 2)

    result = activities_refresh_progress(recommendation_ids=[activity.recommendation_id])

    activity.refresh_from_db()
    assert result["devices_remediated"] == 2
    assert activity.status == "active"
    assert activity.fixed_devices == 2
    assert activity.progress == 50
    rows = {row.device_id: row for row in activity.devices.all()}
    assert {pk for pk, row in rows.items() if row.status == "remediated"} == set(fixed)
    assert all(rows[pk].remediated_at == FIXED_AT for pk in fixed)
    assert not activity.events.filter(kind="completed").exists()


def test_all_devices_remediated_completes_with_system_confirmation(security_user, superuser):
    activity = make_activity(user=security_user, devices=3)
    remediate(activity)

    result = activities_refresh_progress(recommendation_ids=[activity.recommendation_id])

    activity.refresh_from_db()
    assert result["activities_completed"] == 1
    assert activity.status == "completed"
    assert activity.completion_method == "automatic"
    assert activity.completed_by is None
    assert activity.completed_by_label == "System confirmation"
    assert activity.completed_at is not None
    assert activity.fixed_devices == 3
    assert activity.progress == 100
    event = activity.events.get(kind="completed")
    assert event.actor is None
    assert event.actor_label == "System"
    # As the CSV export and the API show it.
    row = next(activity_rows(RemediationActivity.objects.filter(pk=activity.pk).prefetch_related("device_groups")))
    assert row[9] == "System confirmation"
    client = APIClient()
    client.force_authenticate(superuser)
    body = client.get(f"/api/v1/remediation-activities/{activity.pk}/").json()
    assert body["completed_by"] == "System confirmation"
    assert body["completion_method"] == "automatic"
    assert body["status"] == "completed"


def test_exposure_that_disappeared_counts_as_remediated(security_user):
    activity = make_activity(user=security_user, devices=2)
    Exposure.objects.filter(recommendation=activity.recommendation).delete()
    before = timezone.now()

    activities_refresh_progress(recommendation_ids=[activity.recommendation_id])

    activity.refresh_from_db()
    assert activity.status == "completed"
    assert all(row.remediated_at >= before for row in activity.devices.all())


def test_device_exposed_again_goes_back_to_exposed(security_user):
    activity = make_activity(user=security_user, devices=3)
    fixed = remediate(activity, 2)
    activities_refresh_progress(recommendation_ids=[activity.recommendation_id])

    Exposure.objects.filter(recommendation=activity.recommendation, device_id=fixed[0]).update(remediated_at=None)
    result = activities_refresh_progress(recommendation_ids=[activity.recommendation_id])

    activity.refresh_from_db()
    assert result["devices_exposed_again"] == 1
    assert activity.fixed_devices == 1
    row = activity.devices.get(device_id=fixed[0])
    assert (row.status, row.remediated_at) == ("exposed", None)


def test_attention_required_is_never_auto_completed_but_devices_update(security_user):
    activity = make_activity(user=security_user, devices=2, remediation_option="attention_required")
    remediate(activity)

    result = activities_refresh_progress()

    activity.refresh_from_db()
    assert result["activities_completed"] == 0
    assert activity.status == "active"
    assert activity.fixed_devices == 2
    assert statuses(activity) == ["remediated", "remediated"]
    assert not activity.events.filter(kind="completed").exists()


def test_completed_activities_and_other_recommendations_are_left_alone(security_user, it_user):
    done = make_activity(user=security_user, devices=2)
    activity_complete(activity=done, user=it_user)
    remediate(done)
    other = make_activity(user=security_user, devices=2)
    remediate(other)

    activities_refresh_progress(recommendation_ids=[done.recommendation_id])

    done.refresh_from_db()
    other.refresh_from_db()
    assert (done.completion_method, done.fixed_devices) == ("manual", 0)
    assert statuses(done) == ["exposed", "exposed"]
    assert (other.status, other.fixed_devices) == ("active", 0)


def test_second_run_changes_nothing(security_user):
    activity = make_activity(user=security_user, devices=4)
    remediate(activity, 4)
    activities_refresh_progress()
    snapshot = list(ActivityDevice.objects.order_by("pk").values_list("pk", "status", "remediated_at"))
    activity.refresh_from_db()

    result = activities_refresh_progress()

    assert result == {
        "skipped": False,
        "activities": 0,
        "devices_remediated": 0,
        "devices_exposed_again": 0,
        "counters_updated": 0,
        "activities_completed": 0,
    }
    assert list(ActivityDevice.objects.order_by("pk").values_list("pk", "status", "remediated_at")) == snapshot
    assert ActivityEvent.objects.filter(activity=activity, kind="completed").count() == 1
    completed_at = activity.completed_at
    activity.refresh_from_db()
    assert activity.completed_at == completed_at


def test_large_changes_are_applied_in_set_based_batches(security_user, django_assert_max_num_queries):
    activity = make_activity(user=security_user, devices=1200)
    remediate(activity, 1150)

    # Row by row would take more than 1,150 queries; batches of 500 take a few dozen.
    with django_assert_max_num_queries(40):
        result = activities_refresh_progress(recommendation_ids=[activity.recommendation_id], batch_size=500)

    activity.refresh_from_db()
    assert result["devices_remediated"] == 1150
    assert activity.fixed_devices == 1150
    assert activity.status == "active"


def test_a_run_while_another_holds_the_lock_does_nothing(security_user):
    activity = make_activity(user=security_user, devices=2)
    remediate(activity)

    with job_lock("refresh_activity_progress") as acquired:
        assert acquired
        result = activities_refresh_progress()

    activity.refresh_from_db()
    assert result["skipped"] is True
    assert (activity.status, activity.fixed_devices) == ("active", 0)
    # Once the first run is over, the next one does the work.
    assert activities_refresh_progress()["activities_completed"] == 1


def test_bad_recommendation_ids_are_refused_and_change_nothing(security_user):
    activity = make_activity(user=security_user, devices=2)
    remediate(activity)

    with pytest.raises(ValidationError) as exc:
        activities_refresh_progress(recommendation_ids=["not-a-number"])

    assert "recommendation_ids" in exc.value.errors
    activity.refresh_from_db()
    assert (activity.status, activity.fixed_devices) == ("active", 0)


def test_task_takes_recommendation_ids(security_user):
    activity = make_activity(user=security_user, devices=2)
    remediate(activity)

    refresh_activity_progress.delay([activity.recommendation_id])

    activity.refresh_from_db()
    assert activity.status == "completed"


def test_command_refreshes_one_recommendation_by_external_id(security_user, capsys):
    activity = make_activity(user=security_user, devices=2)
    remediate(activity)

    call_command("refresh_activity_progress", "--recommendation", activity.recommendation.external_id)

    activity.refresh_from_db()
    assert activity.status == "completed"
    assert "1 activity(ies) completed automatically" in capsys.readouterr().out


def test_command_refuses_unknown_recommendation_and_changes_nothing(security_user):
    activity = make_activity(user=security_user, devices=2)
    remediate(activity)

    with pytest.raises(CommandError, match="va-_-nope"):
        call_command("refresh_activity_progress", "--recommendation", "va-_-nope")

    activity.refresh_from_db()
    assert activity.status == "active"


def test_auto_completion_is_sent_back_to_the_intune_task(security_user):
    from intune.models import IntuneTask

    activity = make_activity(user=security_user, devices=2)
    IntuneTask.objects.create(activity=activity, graph_id="graph-1", status="active")
    remediate(activity)

    activities_refresh_progress()

    task = IntuneTask.objects.get(activity=activity)
    assert (task.pending_status, task.pending_note) == ("completed", "System confirmation")


def test_second_run_on_a_partly_remediated_activity_changes_nothing(security_user):
    activity = make_activity(user=security_user, devices=4)
    remediate(activity, 1)
    first = activities_refresh_progress()

    second = activities_refresh_progress()

    assert (first["devices_remediated"], first["counters_updated"]) == (1, 1)
    assert (second["devices_remediated"], second["devices_exposed_again"], second["counters_updated"]) == (0, 0, 0)
    activity.refresh_from_db()
    assert (activity.status, activity.fixed_devices) == ("active", 1)
