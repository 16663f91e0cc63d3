"""The beat entries of DESIGN.md section 10, upserted by name (data in django-celery-beat)."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from recommendations.defender import credentials_configured as defender_configured

# The description of a beat entry that waits for credentials: while an entry still says this,
# it was switched off by this code, not by an admin, and the next setup switches it on once the
# credentials are there.
WAITING_FOR_DEFENDER = (
    "Off until DEFENDER_TENANT_ID, DEFENDER_CLIENT_ID and DEFENDER_CLIENT_SECRET are set; "
    "`manage.py setup_periodic_tasks` then turns it on."
)
DEFENDER_DESCRIPTION = "Pull recommendations, machines and exposed devices from the Defender for Endpoint API."

# Beat entries of DESIGN.md section 10, by name. Only created when missing: a schedule an
# admin edited (or disabled) is kept as it is.
PERIODIC_TASKS = [
    {"name": "intune_sync", "task": "intune.sync", "interval": {"every": 15, "period": "minutes"}},
    {
        "name": "purge_completed_activities",
        "task": "remediation.purge_completed_activities",
        "crontab": {"minute": "30", "hour": "3"},
    },
    {
        "name": "expire_exceptions",
        "task": "recommendations.expire_exceptions",
        "crontab": {"minute": "5", "hour": "*"},
    },
    {
        "name": "notify_due_activities",
        "task": "remediation.notify_due_activities",
        "crontab": {"minute": "0", "hour": "7"},
    },
    {
        # The database keeps the exposure counters; this nightly check logs and repairs any drift.
        "name": "recount_exposures",
        "task": "recommendations.recount_exposures",
        "crontab": {"minute": "15", "hour": "2"},
    },
    {
        # Event-driven after each import; this nightly run is a safety net for missed events.
        "name": "refresh_activity_progress",
        "task": "remediation.refresh_activity_progress",
        "crontab": {"minute": "45", "hour": "2"},
    },
    {
        "name": "defender_sync",
        "task": "recommendations.defender_sync",
        "interval": {"every": 6, "period": "hours"},
        "description": DEFENDER_DESCRIPTION,
        # Off until the credentials are configured (DESIGN.md section 12).
        "configured": defender_configured,
        "waiting_description": WAITING_FOR_DEFENDER,
    },
]


def periodic_tasks_setup(*, apps=None) -> dict:
    """Create the missing beat entries of PERIODIC_TASKS, by name. Idempotent; never deletes.

    An existing entry keeps its schedule, arguments and enabled flag (admin edits survive);
    only its task name is corrected if it differs. An entry that needs credentials (`configured`)
    is created off while they are missing, and switched on by a later run once they are there,
    unless an admin changed it meanwhile. `apps` is a migration's app registry.
    """
    if apps is None:
        from django.apps import apps
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")

    counts = {"created": 0, "updated": 0, "unchanged": 0}
    with transaction.atomic():
        for entry in PERIODIC_TASKS:
            configured = entry["configured"]() if "configured" in entry else True
            existing = PeriodicTask.objects.filter(name=entry["name"]).first()
            if existing is not None:
                changed = []
                if existing.task != entry["task"]:
                    existing.task = entry["task"]
                    changed.append("task")
                waiting = "waiting_description" in entry and existing.description == entry["waiting_description"]
                if waiting and configured and not existing.enabled:
                    existing.enabled = True
                    existing.description = entry.get("description", "")
                    changed += ["enabled", "description"]
                if changed:
                    existing.save(update_fields=changed)
                    counts["updated"] += 1
                else:
                    counts["unchanged"] += 1
                continue
            schedule = {}
            if "interval" in entry:
                schedule["interval"], _ = IntervalSchedule.objects.get_or_create(**entry["interval"])
            else:
                spec = {"day_of_week": "*", "day_of_month": "*", "month_of_year": "*", **entry["crontab"]}
                schedule["crontab"] = CrontabSchedule.objects.filter(**spec, timezone=settings.TIME_ZONE).first()
                if schedule["crontab"] is None:
                    schedule["crontab"] = CrontabSchedule.objects.create(**spec, timezone=settings.TIME_ZONE)
            description = entry.get("description", "") if configured else entry["waiting_description"]
            PeriodicTask.objects.create(
                name=entry["name"], task=entry["task"], description=description, enabled=configured, **schedule
            )
            counts["created"] += 1
        if counts["created"] or counts["updated"]:
            # Tell a running beat (DatabaseScheduler) to reload its schedule.
            PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})
    return counts
