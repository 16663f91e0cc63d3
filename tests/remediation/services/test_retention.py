"""The 180-day purge: `purge_completed_activities`, its task and its command."""

import datetime as dt
import logging

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from portal.errors import ValidationError
from portal.locks import job_lock
from remediation.models import ActivityDevice, ActivityEvent, ActivityNotification, RemediationActivity
from remediation.services import purge_completed_activities
from remediation.tasks import purge_completed_activities as purge_task
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def completed(user, *, days_ago, devices=2, now=NOW, **extra):
    activity = make_activity(user=user, devices=devices)
    RemediationActivity.objects.filter(pk=activity.pk).update(
        status="completed",
        completion_method="manual",
        completer_email=user.email,
        completed_at=now - dt.timedelta(days=days_ago, **extra),
    )
    ActivityEvent.objects.create(activity=activity, kind="completed", actor_label=user.email)
    ActivityNotification.objects.create(activity=activity, kind="new_request", recipients=1)
    return activity


def remaining():
    return set(RemediationActivity.objects.values_list("pk", flat=True))


def test_boundaries_179_180_181_days_and_active_activities(security_user):
    kept_179 = completed(security_user, days_ago=179)
    kept_almost = completed(security_user, days_ago=179, hours=23, minutes=59)
    gone_180 = completed(security_user, days_ago=180)
    gone_181 = completed(security_user, days_ago=181)
    active = make_activity(user=security_user, devices=2)
    RemediationActivity.objects.filter(pk=active.pk).update(created_at=NOW - dt.timedelta(days=400))

    result = purge_completed_activities(now=NOW)

    assert remaining() == {kept_179.pk, kept_almost.pk, active.pk}
    assert (result["activities"], result["devices"]) == (2, 4)
    purged = [gone_180.pk, gone_181.pk]
    assert not ActivityDevice.objects.filter(activity_id__in=purged).exists()
    assert not ActivityEvent.objects.filter(activity_id__in=purged).exists()
    assert not ActivityNotification.objects.filter(activity_id__in=purged).exists()
    for kept in (kept_179, kept_almost, active):
        assert ActivityDevice.objects.filter(activity=kept).count() == 2
        assert ActivityEvent.objects.filter(activity=kept).exists()


def test_retention_comes_from_the_setting(security_user, settings):
    settings.COMPLETED_ACTIVITY_RETENTION_DAYS = 30
    young = completed(security_user, days_ago=29)
    completed(security_user, days_ago=31)

    purge_completed_activities(now=NOW)

    assert remaining() == {young.pk}


def test_dry_run_counts_and_deletes_nothing(security_user, capsys):
    completed(security_user, days_ago=200, devices=3)
    completed(security_user, days_ago=190, devices=2)
    completed(security_user, days_ago=10)
    before = ActivityDevice.objects.count()

    result = purge_completed_activities(dry_run=True)
    call_command("purge_completed_activities", "--dry-run")

    assert (result["activities"], result["devices"]) == (2, 5)
    assert "2 activities (5 activity devices)" in capsys.readouterr().out
    assert RemediationActivity.objects.count() == 3
    assert ActivityDevice.objects.count() == before


def test_devices_are_deleted_in_bounded_batches(security_user):
    old = completed(security_user, days_ago=200, devices=7)

    with CaptureQueriesContext(connection) as ctx:
        result = purge_completed_activities(batch_size=3)

    device_table = ActivityDevice._meta.db_table
    batches = [
        q["sql"]
        for q in ctx.captured_queries
        if q["sql"].startswith("DELETE FROM") and device_table in q["sql"].split()[2] and '"id" IN' in q["sql"]
    ]
    # 7 rows, at most 3 per statement and transaction: three batches.
    assert len(batches) == 3
    assert all(sql.count(",") <= 2 for sql in batches)
    assert result == {**result, "activities": 1, "devices": 7}
    assert not RemediationActivity.objects.filter(pk=old.pk).exists()


def test_second_run_deletes_nothing_more(security_user):
    completed(security_user, days_ago=200)
    kept = completed(security_user, days_ago=20)
    purge_completed_activities()

    result = purge_completed_activities()

    assert (result["activities"], result["devices"]) == (0, 0)
    assert remaining() == {kept.pk}


def test_a_run_while_another_holds_the_lock_does_nothing(security_user, capsys):
    old = completed(security_user, days_ago=200)

    with job_lock("purge_completed_activities"):
        result = purge_completed_activities()
        call_command("purge_completed_activities")

    assert result["skipped"] is True
    assert "Another purge is running" in capsys.readouterr().out
    assert remaining() == {old.pk}


def test_command_and_task_log_how_many_they_removed(security_user, capsys, caplog):
    completed(security_user, days_ago=200, devices=3)
    completed(security_user, days_ago=300, devices=1)

    with caplog.at_level(logging.INFO, logger="remediation.services"):
        call_command("purge_completed_activities")

    assert "Deleted 2 activities (4 activity devices)" in capsys.readouterr().out
    assert any(
        "Purged 2 activities" in r.getMessage() and "4 activity devices" in r.getMessage() for r in caplog.records
    )
    completed(security_user, days_ago=200)
    purge_task.delay()
    assert RemediationActivity.objects.count() == 0


def test_bad_batch_size_is_refused_and_deletes_nothing(security_user):
    completed(security_user, days_ago=200)

    with pytest.raises(ValidationError):
        purge_completed_activities(batch_size=0)
    with pytest.raises(CommandError, match="batch_size"):
        call_command("purge_completed_activities", "--batch-size", "0")

    assert RemediationActivity.objects.count() == 1


def test_small_activities_go_together_by_activity_in_batches_sized_from_their_counters(security_user):
    old = [completed(security_user, days_ago=200, devices=2) for _ in range(4)]
    active = make_activity(user=security_user, devices=2)

    with CaptureQueriesContext(connection) as ctx:
        result = purge_completed_activities(batch_size=5)

    device_table = ActivityDevice._meta.db_table
    by_activity = [
        q["sql"]
        for q in ctx.captured_queries
        if q["sql"].startswith("DELETE FROM") and device_table in q["sql"].split()[2] and '"activity_id" IN' in q["sql"]
    ]
    # 2 + 2 rows fit in 5, a third activity would not: the statements name two activities each.
    named = [{str(a.pk.hex) for a in old if a.pk.hex in sql.replace("-", "")} for sql in by_activity]
    assert by_activity
    assert all(len(ids) == 2 for ids in named)
    assert set().union(*named) == {a.pk.hex for a in old}
    assert result == {**result, "activities": 4, "devices": 8}
    assert remaining() == {active.pk}
    assert ActivityDevice.objects.filter(activity=active).count() == 2
    assert not ActivityEvent.objects.filter(activity_id__in=[a.pk for a in old]).exists()
    assert not ActivityNotification.objects.filter(activity_id__in=[a.pk for a in old]).exists()


def test_rows_beyond_a_stale_counter_are_deleted_too(security_user):
    old = completed(security_user, days_ago=200, devices=6)
    RemediationActivity.objects.filter(pk=old.pk).update(target_devices=1, fixed_devices=0)

    result = purge_completed_activities(batch_size=4)

    assert result == {**result, "activities": 1, "devices": 6}
    assert not ActivityDevice.objects.exists()
