"""Celery tasks of the Intune sync. Thin: they call intune.services; failures are recorded there."""

import logging

from celery import shared_task

from .graph import GraphError
from .services import intune_push, intune_sync, intune_sync_activity

logger = logging.getLogger(__name__)


@shared_task(name="intune.push_activity", time_limit=600, soft_time_limit=570, ignore_result=True)
def intune_push_activity(activity_id: str) -> None:
    """Create the Intune security task of one activity (idempotent).

    A failure is recorded on the activity's IntuneTask and retried by the next `intune.sync`.
    """
    try:
        intune_push(activity_id=activity_id)
    except GraphError as exc:
        logger.warning("Intune push of activity %s failed: %s", activity_id, exc.message)


@shared_task(name="intune.sync", time_limit=25 * 60, soft_time_limit=24 * 60, ignore_result=True)
def intune_sync_task() -> str:
    """One sync run (beat entry `intune_sync`, every 15 minutes). Overlapping runs do nothing."""
    result = intune_sync()
    (logger.info if result.ok else logger.warning)(result.summary())
    return result.summary()


@shared_task(name="intune.sync_activity", time_limit=600, soft_time_limit=570, ignore_result=True)
def intune_sync_activity_task(activity_id: str) -> dict:
    """Retry now: push, send back and read the task of one activity."""
    result = intune_sync_activity(activity_id=activity_id)
    (logger.info if result.ok else logger.warning)(result.summary())
    return {"ok": result.ok, "summary": result.summary()}
