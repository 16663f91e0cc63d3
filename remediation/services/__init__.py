"""Every write to remediation activities, one module a sub-domain.

`activities` (request, decisions, completion), `progress` (devices remediated,
auto-completion), `retention` (the purge), `notifications` (emails to IT staff) and
`schedules` (the beat entries). Each function is keyword-only, typed, and raises
portal.errors.ApplicationError when a rule forbids the action.
"""

from .activities import (
    activity_approve,
    activity_complete,
    activity_complete_from_intune,
    activity_create,
    activity_reject,
    activity_set_ticket_from_intune,
    target_exposures,
)
from .figures import daily_figures_backfill, daily_figures_record
from .notifications import it_staff_emails, notify, notify_due_activities, notify_new_activity
from .progress import activities_refresh_progress
from .retention import purge_completed_activities
from .schedules import PERIODIC_TASKS, periodic_tasks_setup

__all__ = [
    "PERIODIC_TASKS",
    "activities_refresh_progress",
    "activity_approve",
    "activity_complete",
    "activity_complete_from_intune",
    "activity_create",
    "activity_reject",
    "activity_set_ticket_from_intune",
    "daily_figures_backfill",
    "daily_figures_record",
    "it_staff_emails",
    "notify",
    "notify_due_activities",
    "notify_new_activity",
    "periodic_tasks_setup",
    "purge_completed_activities",
    "target_exposures",
]
