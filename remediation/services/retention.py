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
    (with 180 days: completed 180 days ago goes, 179 days and 23 hours stays). Activities go
    in groups whose stored `target_devices` add up to about `batch_size`: their device rows in
    one `DELETE ... WHERE activity_id IN (group)` (an activity larger than `batch_size` in
    statements of `batch_size` rows), then the activities with their events, notifications and
    Intune task; each statement its own short transaction. Active activities are never
    touched. `dry_run` only counts.
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

    with job_lock("purge_completed_activities", timeout=job_lock_timeout()) as acquired:
        if not acquired:
            return {**counts, "skipped": True}
        while True:
            candidates = list(
                expired.order_by("completed_at", "pk").values_list("pk", "target_devices")[:ACTIVITY_CHUNK]
            )
            if not candidates:
                break
            ids, rows = _next_group(candidates, batch_size)
            counts["devices"] += _delete_devices(ids, rows=rows, batch_size=batch_size)
            with transaction.atomic():  # events, notifications and the rest go with the activities
                _, per_model = expired.filter(pk__in=ids).delete()
            counts["activities"] += per_model.get(RemediationActivity._meta.label, 0)
            logger.info("Purge: %(activities)d activities and %(devices)d devices deleted so far.", counts)
    logger.info(
        "Purged %(activities)d activities completed on or before %(cutoff)s and %(devices)d activity devices.",
        counts,
    )
    return counts


def _next_group(candidates: list[tuple], batch_size: int) -> tuple[list, int]:
    """The first activities whose device rows add up to at most `batch_size` (at least one)."""
    ids, rows = [], 0
    for pk, devices in candidates:
        if ids and rows + devices > batch_size:
            break
        ids.append(pk)
        rows += devices
    return ids, rows


def _delete_devices(ids: list, *, rows: int, batch_size: int) -> int:
    """Delete the device rows of activities `ids` (about `rows` of them), `batch_size` a transaction."""
    devices = ActivityDevice.objects.filter(activity_id__in=ids)
    if rows <= batch_size:  # every row of these activities, however many their counters say
        with transaction.atomic():
            return devices.delete()[0]
    deleted = 0
    while True:  # an activity larger than a batch: by bounded statements
        with transaction.atomic():
            n = ActivityDevice.objects.filter(pk__in=devices.values("pk")[:batch_size]).delete()[0]
        deleted += n
        if n < batch_size:
            return deleted
