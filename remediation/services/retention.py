"""Retention: completed activities are deleted COMPLETED_ACTIVITY_RETENTION_DAYS days after completion."""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from portal.errors import ValidationError
from portal.locks import job_lock, job_lock_timeout

from ..models import ActivityDevice, RemediationActivity
from .progress import ACTIVITY_CHUNK

logger = logging.getLogger(__name__)


def purge_completed_activities(
    *, now: dt.datetime | None = None, dry_run: bool = False, batch_size: int | None = None
) -> dict:
    """Delete the activities completed COMPLETED_ACTIVITY_RETENTION_DAYS days ago or earlier.

    An activity goes once the full retention period has passed since `completed_at`
    (with 180 days: completed 180 days ago goes, 179 days and 23 hours stays). Device rows
    go first, at most `batch_size` per transaction, then the activities with their events,
    notifications and Intune task, a few hundred per transaction. Active activities are
    never touched. `dry_run` only counts.
    """
    batch_size = settings.PURGE_BATCH_SIZE if batch_size is None else batch_size
    if batch_size < 1:
        raise ValidationError("batch_size must be at least 1.", field="batch_size")
    cutoff = (now or timezone.now()) - dt.timedelta(days=settings.COMPLETED_ACTIVITY_RETENTION_DAYS)
    expired = RemediationActivity.objects.filter(status=RemediationActivity.Status.COMPLETED, completed_at__lte=cutoff)
    counts = {"skipped": False, "dry_run": dry_run, "cutoff": cutoff.isoformat(), "activities": 0, "devices": 0}
    if dry_run:
        counts["activities"] = expired.count()
        counts["devices"] = ActivityDevice.objects.filter(activity__in=expired).count()
        logger.info("Purge dry run: %(activities)d activities and %(devices)d devices would be deleted.", counts)
        return counts

    activity_chunk = max(1, min(ACTIVITY_CHUNK, batch_size // 10))
    with job_lock("purge_completed_activities", timeout=job_lock_timeout()) as acquired:
        if not acquired:
            return {**counts, "skipped": True}
        while True:
            ids = list(expired.order_by("completed_at", "pk").values_list("pk", flat=True)[:activity_chunk])
            if not ids:
                break
            while True:
                pks = list(ActivityDevice.objects.filter(activity_id__in=ids).values_list("pk", flat=True)[:batch_size])
                if not pks:
                    break
                with transaction.atomic():
                    deleted, _ = ActivityDevice.objects.filter(pk__in=pks).delete()
                counts["devices"] += deleted
            with transaction.atomic():
                _, per_model = expired.filter(pk__in=ids).delete()
            counts["activities"] += per_model.get(RemediationActivity._meta.label, 0)
            logger.info("Purge: %(activities)d activities and %(devices)d devices deleted so far.", counts)
    logger.info(
        "Purged %(activities)d activities completed on or before %(cutoff)s and %(devices)d activity devices.",
        counts,
    )
    return counts
