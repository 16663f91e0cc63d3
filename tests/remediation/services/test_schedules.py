"""Beat schedules of DESIGN.md section 10, created by the migration and `setup_periodic_tasks`."""

import pytest
from django.core.management import call_command
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

pytestmark = pytest.mark.django_db

EXPECTED = {
    "intune_sync": "intune.sync",
    "purge_completed_activities": "remediation.purge_completed_activities",
    "expire_exceptions": "recommendations.expire_exceptions",
    "notify_due_activities": "remediation.notify_due_activities",
    "refresh_activity_progress": "remediation.refresh_activity_progress",
    "recount_exposures": "recommendations.recount_exposures",
    "defender_sync": "recommendations.defender_sync",
}


def test_the_migration_creates_every_job_of_section_10():
    tasks = {p.name: p for p in PeriodicTask.objects.select_related("interval", "crontab")}

    assert {name: p.task for name, p in tasks.items() if name in EXPECTED} == EXPECTED
    assert all(tasks[name].enabled for name in EXPECTED if name != "defender_sync")
    assert tasks["defender_sync"].enabled is False  # off until the DEFENDER_* credentials are configured
    assert (tasks["intune_sync"].interval.every, tasks["intune_sync"].interval.period) == (15, "minutes")
    hourly = tasks["expire_exceptions"].crontab
    assert (hourly.hour, hourly.day_of_month) == ("*", "*")
    for daily in ("purge_completed_activities", "notify_due_activities", "recount_exposures"):
        crontab = tasks[daily].crontab
        assert crontab.hour.isdigit()
        assert crontab.minute.isdigit()
        assert (crontab.day_of_week, crontab.day_of_month, crontab.month_of_year) == ("*", "*", "*")


def test_rerunning_keeps_admin_edits_and_creates_no_duplicates(capsys):
    purge = PeriodicTask.objects.get(name="purge_completed_activities")
    purge.crontab = CrontabSchedule.objects.create(minute="15", hour="1")
    purge.enabled = False
    purge.save()
    sync = PeriodicTask.objects.get(name="intune_sync")
    sync.interval = IntervalSchedule.objects.create(every=5, period="minutes")
    sync.save()

    call_command("setup_periodic_tasks")
    call_command("setup_periodic_tasks")

    purge.refresh_from_db()
    sync.refresh_from_db()
    assert (purge.crontab.minute, purge.crontab.hour, purge.enabled) == ("15", "1", False)
    assert sync.interval.every == 5
    assert PeriodicTask.objects.filter(name__in=EXPECTED).count() == len(EXPECTED)
    assert capsys.readouterr().out.splitlines()[-1] == "Beat schedules: 0 created, 0 updated, 7 unchanged."


def test_a_deleted_entry_is_recreated_and_a_wrong_task_name_corrected(capsys):
    PeriodicTask.objects.filter(name="notify_due_activities").delete()
    PeriodicTask.objects.filter(name="expire_exceptions").update(task="recommendations.old_name")
    untouched = PeriodicTask.objects.get(name="intune_sync").pk

    call_command("setup_periodic_tasks")

    assert PeriodicTask.objects.get(name="notify_due_activities").task == "remediation.notify_due_activities"
    assert PeriodicTask.objects.get(name="expire_exceptions").task == "recommendations.expire_exceptions"
    assert PeriodicTask.objects.get(name="intune_sync").pk == untouched
    assert "1 created, 1 updated, 5 unchanged" in capsys.readouterr().out


def test_schedules_of_other_jobs_are_never_wiped():
    mine = PeriodicTask.objects.create(
        name="someone_elses_job",
        task="other.task",
        interval=IntervalSchedule.objects.create(every=1, period="days"),
    )

    call_command("setup_periodic_tasks")

    assert PeriodicTask.objects.filter(pk=mine.pk, task="other.task").exists()


def test_defender_sync_runs_every_6_hours_and_stays_off_until_credentials_are_configured(settings, capsys):
    settings.DEFENDER_TENANT_ID = settings.DEFENDER_CLIENT_ID = settings.DEFENDER_CLIENT_SECRET = ""
    PeriodicTask.objects.filter(name="defender_sync").delete()
    call_command("setup_periodic_tasks")  # as the migration does on an installation without credentials

    entry = PeriodicTask.objects.select_related("interval").get(name="defender_sync")
    assert entry.task == "recommendations.defender_sync"
    assert (entry.interval.every, entry.interval.period) == (6, "hours")
    assert entry.enabled is False
    assert "Off until DEFENDER_TENANT_ID" in entry.description

    call_command("setup_periodic_tasks")  # still no credentials: still off
    assert PeriodicTask.objects.get(name="defender_sync").enabled is False

    settings.DEFENDER_TENANT_ID, settings.DEFENDER_CLIENT_ID, settings.DEFENDER_CLIENT_SECRET = "t", "c", "s"
    call_command("setup_periodic_tasks")

    entry.refresh_from_db()
    assert entry.enabled is True
    assert entry.description.startswith("Pull recommendations, machines and exposed devices")
    assert capsys.readouterr().out.splitlines()[-1] == "Beat schedules: 0 created, 1 updated, 6 unchanged."


def test_defender_sync_switched_off_by_an_admin_stays_off(settings):
    settings.DEFENDER_TENANT_ID, settings.DEFENDER_CLIENT_ID, settings.DEFENDER_CLIENT_SECRET = "t", "c", "s"
    PeriodicTask.objects.filter(name="defender_sync").delete()
    call_command("setup_periodic_tasks")
    entry = PeriodicTask.objects.get(name="defender_sync")
    assert entry.enabled is True  # created on: the credentials are there
    entry.enabled = False
    entry.save()

    call_command("setup_periodic_tasks")

    entry.refresh_from_db()
    assert entry.enabled is False
