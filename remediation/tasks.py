"""Celery tasks of the remediation app. Thin: they take ids, call a service and log.

Every task is idempotent and acknowledged late (a worker killed mid-task gets the message
redelivered). Only transient errors (database connection, mail server) are retried, with
exponential backoff and jitter capped at 10 minutes, well below the broker's visibility
timeout. When tasks run in-process (no REDIS_URL, `make run`) a transient error is logged
and not retried, so it never breaks the web request that queued the task.
"""

from __future__ import annotations

import logging
import smtplib

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.utils.time import get_exponential_backoff_interval
from django.db import InterfaceError, OperationalError

from .services import activities_refresh_progress, daily_figures_record
from .services import notify_due_activities as notify_due
from .services import purge_completed_activities as purge
from .services.notifications import notify_new_activity as notify_new

logger = logging.getLogger(__name__)

TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)
TRANSIENT_MAIL_ERRORS = (smtplib.SMTPException, ConnectionError, TimeoutError)
TRANSIENT_ERRORS = TRANSIENT_DB_ERRORS + TRANSIENT_MAIL_ERRORS
MAX_RETRIES = 5
RETRY_BACKOFF_SECONDS = 30
RETRY_BACKOFF_MAX_SECONDS = 600
LOCK_BUSY_RETRY_SECONDS = 60
# The time limits are CELERY_TASK_TIME_LIMIT / CELERY_TASK_SOFT_TIME_LIMIT (settings), read by
# the worker, which also bound the jobs' locks (portal.locks.job_lock_timeout).
JOB = {"bind": True, "acks_late": True, "ignore_result": True, "max_retries": MAX_RETRIES}


def _retry_later(task, exc: Exception) -> None:
    """Retry `task` after a transient error, with backoff; in-process, log it instead."""
    if task.request.is_eager:
        logger.error("%s failed with a transient error and runs in-process, so it is not retried: %r", task.name, exc)
        return
    countdown = get_exponential_backoff_interval(
        factor=RETRY_BACKOFF_SECONDS,
        retries=task.request.retries,
        maximum=RETRY_BACKOFF_MAX_SECONDS,
        full_jitter=True,
    )
    logger.warning(
        "%s failed with a transient error; retry %d in %ss: %r", task.name, task.request.retries + 1, countdown, exc
    )
    raise task.retry(exc=exc, countdown=countdown)


@shared_task(name="remediation.notify_new_activity", **{**JOB, "time_limit": 300, "soft_time_limit": 240})
def notify_new_activity(self, activity_id: str) -> None:
    """Email the IT staff of the activity's device groups about a new request (at most once)."""
    try:
        notify_new(activity_id=activity_id)
    except TRANSIENT_ERRORS as exc:
        _retry_later(self, exc)


@shared_task(name="remediation.refresh_activity_progress", **JOB)
def refresh_activity_progress(self, recommendation_ids: list[int] | None = None) -> None:
    """Mark activity devices remediated and auto-complete activities (all recommendations when None)."""
    try:
        result = activities_refresh_progress(recommendation_ids=recommendation_ids)
    except TRANSIENT_DB_ERRORS as exc:
        _retry_later(self, exc)
        return
    except SoftTimeLimitExceeded:
        # The batches done so far are committed; the next run (the nightly one at the latest) finishes.
        logger.warning("The refresh of %s reached its time limit; the next run finishes it.", recommendation_ids)
        return
    if not result["skipped"]:
        daily_figures_record()  # the dashboard's charts: today's figures after every refresh
    if result["skipped"] and not self.request.is_eager:
        # Another refresh holds the lock; it may have started before this change was
        # committed, so run again once it is done instead of dropping this one.
        logger.info("A refresh is already running; this one runs again in %ss.", LOCK_BUSY_RETRY_SECONDS)
        raise self.retry(countdown=LOCK_BUSY_RETRY_SECONDS, max_retries=None)


@shared_task(name="remediation.purge_completed_activities", **JOB)
def purge_completed_activities(self) -> None:
    """Delete activities completed more than COMPLETED_ACTIVITY_RETENTION_DAYS ago, in batches."""
    try:
        purge()
    except TRANSIENT_DB_ERRORS as exc:
        _retry_later(self, exc)
    except SoftTimeLimitExceeded:
        # Every batch already deleted is committed; the next run (tomorrow) carries on.
        logger.warning("The purge reached its time limit; the next run deletes the rest.")


@shared_task(name="remediation.notify_due_activities", **JOB)
def notify_due_activities(self) -> None:
    """Email IT staff about activities due soon or overdue, once per activity and kind."""
    try:
        notify_due()
    except TRANSIENT_ERRORS as exc:
        _retry_later(self, exc)
