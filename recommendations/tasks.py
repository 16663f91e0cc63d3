"""Celery tasks of the recommendations app (thin: they call services)."""

from celery import shared_task

from portal.locks import job_lock, job_lock_timeout

from .models import DefenderSyncRun
from .services import defender_sync, exceptions_expire, exposure_counters_check, import_job_run

EXPIRE_LOCK_SECONDS = 600


@shared_task(name="recommendations.expire_exceptions", time_limit=600, ignore_result=True)
def expire_exceptions() -> int | None:
    """Hourly: move exceptions past their `expires_on` to expired (idempotent).

    Returns how many were expired, or None when another run holds the lock.
    """
    with job_lock("expire_exceptions", timeout=EXPIRE_LOCK_SECONDS) as acquired:
        if not acquired:
            return None
        return exceptions_expire()


@shared_task(name="recommendations.run_import_job", bind=True, acks_late=True, ignore_result=True)
def run_import_job(self, job_id: int) -> None:
    """Run an admin import in the background (all or nothing; the ImportJob shows progress and result)."""
    import_job_run(job_id=job_id)


@shared_task(name="recommendations.defender_sync", ignore_result=True)
def defender_sync_task() -> str:
    """Beat entry `defender_sync` (every 6 hours once credentials are configured): one pull from the
    Defender API. Failures are recorded on the run (admin: Defender pulls); overlapping runs do nothing."""
    run = defender_sync(trigger=DefenderSyncRun.Trigger.SCHEDULE)
    if run is None:
        return "Another Defender pull is running; this run did nothing."
    return run.status


@shared_task(name="recommendations.recount_exposures", ignore_result=True)
def recount_exposures(repair: bool = True) -> dict | None:
    """Nightly: find stored exposure counters that differ from the exposures, log and repair them.

    Returns the check's result, or None when another run holds the lock.
    """
    with job_lock("recount_exposures", timeout=job_lock_timeout()) as acquired:
        if not acquired:
            return None
        return exposure_counters_check(repair=repair)
