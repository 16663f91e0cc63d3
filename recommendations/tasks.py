"""Celery tasks of the recommendations app (thin: they call services)."""

from celery import shared_task


@shared_task(name="recommendations.expire_exceptions", time_limit=600, ignore_result=True)
def expire_exceptions() -> int | None:
    """Hourly: move exceptions past their `expires_on` to expired (idempotent).

    Returns how many were expired, or None when another run holds the lock.
    """
    from portal.locks import job_lock

    from .services import exceptions_expire

    with job_lock("expire_exceptions", timeout=600) as acquired:
        if not acquired:
            return None
        return exceptions_expire()
