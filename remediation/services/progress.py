"""Progress of the active activities: devices remediated (or exposed again), counters, auto-completion.

Runs after every exposure import (remediation.receivers hears `exposures_changed`) and nightly.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable

from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from portal.errors import ValidationError
from portal.locks import job_lock, job_lock_timeout
from recommendations.models import Exposure

from ..hooks import integration
from ..models import (
    SYSTEM_CONFIRMATION,
    SYSTEM_LABEL,
    ActivityDevice,
    ActivityEvent,
    RemediationActivity,
    RemediationOption,
)

logger = logging.getLogger(__name__)

REFRESH_BATCH_SIZE = 5000
ACTIVITY_CHUNK = 500


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _update_in_batches(queryset, *, batch_size: int, **values) -> int:
    """UPDATE the rows of `queryset`, at most `batch_size` rows per transaction.

    The matching ids are read once (one scan, not one per batch), then updated chunk by
    chunk; the queryset's filter is applied again inside each UPDATE, so rows that changed
    in the meantime are left alone.
    """
    total = 0
    pks = list(queryset.order_by("pk").values_list("pk", flat=True))
    for chunk in _chunks(pks, batch_size):
        with transaction.atomic():
            total += queryset.filter(pk__in=chunk).update(**values)
    return total


def _refresh_devices(*, recommendation_id: int, activity_ids: list, batch_size: int) -> tuple[int, int]:
    """Align the activities' device rows with the recommendation's exposures. Returns (fixed, reopened)."""
    open_exposure = Exposure.objects.filter(
        recommendation_id=recommendation_id, device_id=OuterRef("device_id"), remediated_at__isnull=True
    )
    exposure_remediated_at = Exposure.objects.filter(
        recommendation_id=recommendation_id, device_id=OuterRef("device_id")
    ).values("remediated_at")[:1]
    rows = ActivityDevice.objects.filter(activity_id__in=activity_ids)
    # No open exposure any more (remediated, or the exposure is gone): the device is fixed,
    # as of the exposure's remediation time (now when the exposure row no longer exists).
    fixed = _update_in_batches(
        rows.filter(status=ActivityDevice.Status.EXPOSED).filter(~Exists(open_exposure)),
        batch_size=batch_size,
        status=ActivityDevice.Status.REMEDIATED,
        remediated_at=Coalesce(Subquery(exposure_remediated_at), Value(timezone.now())),
    )
    # The device is exposed again (the fix was rolled back, the old version reinstalled):
    # the activity is not done on it, so it counts as exposed again.
    reopened = _update_in_batches(
        rows.filter(status=ActivityDevice.Status.REMEDIATED).filter(Exists(open_exposure)),
        batch_size=batch_size,
        status=ActivityDevice.Status.EXPOSED,
        remediated_at=None,
    )
    return fixed, reopened


def _recount_fixed_devices(activity_ids: list) -> int:
    """Set fixed_devices from the device rows, for the activities whose counter is off. Returns how many."""
    remediated = (
        ActivityDevice.objects.filter(activity_id=OuterRef("pk"), status=ActivityDevice.Status.REMEDIATED)
        .order_by()
        .values("activity_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    actual = Coalesce(Subquery(remediated), Value(0))
    changed = 0
    for chunk in _chunks(activity_ids, ACTIVITY_CHUNK):
        with transaction.atomic():
            stale = list(
                RemediationActivity.objects.filter(pk__in=chunk)
                .annotate(actual=actual)
                .exclude(fixed_devices=F("actual"))
                .values_list("pk", flat=True)
            )
            if stale:
                changed += RemediationActivity.objects.filter(pk__in=stale).update(fixed_devices=actual)
    return changed


def _auto_complete(activity_ids: list) -> int:
    """Complete (method automatic) the activities whose every target device is remediated."""
    completed = 0
    for chunk in _chunks(activity_ids, ACTIVITY_CHUNK):
        with transaction.atomic():
            ids = list(
                RemediationActivity.objects.select_for_update()
                .filter(
                    pk__in=chunk,
                    status=RemediationActivity.Status.ACTIVE,
                    target_devices__gt=0,
                    fixed_devices=F("target_devices"),
                )
                .exclude(remediation_option=RemediationOption.ATTENTION_REQUIRED)
                .values_list("pk", flat=True)
            )
            if not ids:
                continue
            now = timezone.now()
            completed += RemediationActivity.objects.filter(pk__in=ids).update(
                status=RemediationActivity.Status.COMPLETED,
                completion_method=RemediationActivity.CompletionMethod.AUTOMATIC,
                completed_by=None,
                completer_email=SYSTEM_CONFIRMATION,
                completed_at=now,
            )
            ActivityEvent.objects.bulk_create(
                [
                    ActivityEvent(
                        activity_id=pk,
                        kind=ActivityEvent.Kind.COMPLETED,
                        actor=None,
                        actor_label=SYSTEM_LABEL,
                        notes="Every target device is remediated (System confirmation).",
                        at=now,
                    )
                    for pk in ids
                ]
            )
            for pk in ids:
                integration().decision_taken(
                    activity=RemediationActivity(pk=pk), decision="completed", note=SYSTEM_CONFIRMATION
                )
    return completed


def activities_refresh_progress(
    *, recommendation_ids: Iterable[int] | None = None, batch_size: int = REFRESH_BATCH_SIZE
) -> dict:
    """Bring the active activities of these recommendations (all when None) up to date with the exposures.

    Device rows whose exposure is no longer open become remediated (at the exposure's
    remediated_at); rows whose device is exposed again go back to exposed; fixed_devices is
    recounted; an activity whose every target device is remediated completes itself
    ("System confirmation"), except attention-required ones, which never auto-complete.
    Works in set-based UPDATEs of at most `batch_size` rows per transaction.
    """
    counts = {
        "skipped": False,
        "activities": 0,
        "devices_remediated": 0,
        "devices_exposed_again": 0,
        "counters_updated": 0,
        "activities_completed": 0,
    }
    if recommendation_ids is not None:
        try:
            recommendation_ids = sorted({int(pk) for pk in recommendation_ids})
        except (TypeError, ValueError):
            raise ValidationError(
                "recommendation_ids must be a list of recommendation ids (integers).", field="recommendation_ids"
            ) from None
    if batch_size < 1:
        raise ValidationError("batch_size must be at least 1.", field="batch_size")

    with job_lock("refresh_activity_progress", timeout=job_lock_timeout()) as acquired:
        if not acquired:
            return {**counts, "skipped": True}
        active = RemediationActivity.objects.filter(status=RemediationActivity.Status.ACTIVE)
        if recommendation_ids is not None:
            active = active.filter(recommendation_id__in=recommendation_ids)
        by_recommendation: dict[int, list] = defaultdict(list)
        for recommendation_id, pk in active.order_by("recommendation_id", "pk").values_list("recommendation_id", "pk"):
            by_recommendation[recommendation_id].append(pk)
        all_ids = [pk for ids in by_recommendation.values() for pk in ids]
        counts["activities"] = len(all_ids)

        for recommendation_id, ids in by_recommendation.items():
            fixed, reopened = _refresh_devices(
                recommendation_id=recommendation_id, activity_ids=ids, batch_size=batch_size
            )
            counts["devices_remediated"] += fixed
            counts["devices_exposed_again"] += reopened
        counts["counters_updated"] = _recount_fixed_devices(all_ids)
        counts["activities_completed"] = _auto_complete(all_ids)

    logger.info("Activity progress refreshed: %s", counts)
    return counts
