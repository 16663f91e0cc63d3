"""Celery tasks of the remediation app. Thin: they take ids, call a service and log.

Every task is idempotent and acknowledged late (a worker killed mid-task gets the message
redelivered); only transient errors (database connection, mail server) are retried, with
exponential backoff capped well below the broker's visibility timeout.
"""

from __future__ import annotations

import logging
import smtplib

from celery import shared_task
from django.db import InterfaceError, OperationalError

from .services import JOB_TIME_LIMIT

logger = logging.getLogger(__name__)

TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)
TRANSIENT_MAIL_ERRORS = (smtplib.SMTPException, ConnectionError, TimeoutError)
RETRY = {
    "retry_backoff": 30,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "max_retries": 5,
}
JOB = {
    "bind": True,
    "acks_late": True,
    "ignore_result": True,
    "time_limit": JOB_TIME_LIMIT,
    "soft_time_limit": max(JOB_TIME_LIMIT - 60, JOB_TIME_LIMIT * 9 // 10),
    **RETRY,
}
LOCK_BUSY_RETRY_SECONDS = 60


@shared_task(
    name="remediation.notify_new_activity",
    bind=True,
    acks_late=True,
    ignore_result=True,
    time_limit=300,
    soft_time_limit=240,
    autoretry_for=TRANSIENT_DB_ERRORS + TRANSIENT_MAIL_ERRORS,
    **RETRY,
)
def notify_new_activity(self, activity_id: str) -> None:
    """Email the IT staff of the activity's device groups about a new request (at most once)."""
    from .notifications import notify_new_activity as notify

    notify(activity_id=activity_id)


@shared_task(name="remediation.refresh_activity_progress", autoretry_for=TRANSIENT_DB_ERRORS, **JOB)
def refresh_activity_progress(self, recommendation_ids: list[int] | None = None) -> None:
    """Mark activity devices remediated and auto-complete activities (all recommendations when None)."""
    from .services import activities_refresh_progress

    result = activities_refresh_progress(recommendation_ids=recommendation_ids)
    if result["skipped"] and not self.request.is_eager:
        # Another refresh holds the lock; it may have started before this change was
        # committed, so run again once it is done instead of dropping this one.
        logger.info("A refresh is already running; retrying in %ss.", LOCK_BUSY_RETRY_SECONDS)
        raise self.retry(countdown=LOCK_BUSY_RETRY_SECONDS, max_retries=None)


@shared_task(name="remediation.purge_completed_activities", autoretry_for=TRANSIENT_DB_ERRORS, **JOB)
def purge_completed_activities(self) -> None:
    """Delete activities completed more than COMPLETED_ACTIVITY_RETENTION_DAYS ago, in batches."""
    from .services import purge_completed_activities as purge

    purge()


@shared_task(
    name="remediation.notify_due_activities",
    autoretry_for=TRANSIENT_DB_ERRORS + TRANSIENT_MAIL_ERRORS,
    **JOB,
)
def notify_due_activities(self) -> None:
    """Email IT staff about activities due soon or overdue, once per activity and kind."""
    from .services import notify_due_activities as notify_due

    notify_due()
