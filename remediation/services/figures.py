"""The daily figures the dashboard's charts draw (remediation.models.DailyFigure).

`daily_figures_record` counts today's numbers per device group, once, with a few grouped
queries, and replaces the day's rows: the refresh job calls it after every import and nightly,
so a chart reads a few hundred stored rows and never scans exposures. `daily_figures_backfill`
gives the demo data set a plausible history (seed_demo only).
"""

from __future__ import annotations

import datetime as dt
import math

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from recommendations.models import Exposure

from ..models import ActivityDevice, DailyFigure, RemediationActivity
from ..rules import severity_band_expression

Metric = DailyFigure.Metric


def _today_rows(day: dt.date) -> list[DailyFigure]:
    rows: list[DailyFigure] = []
    active_devices = ActivityDevice.objects.filter(activity__status=RemediationActivity.Status.ACTIVE).order_by()

    # Burn-down: the active activities' target devices still exposed, per device group.
    for group_id, n in (
        active_devices.filter(status=ActivityDevice.Status.EXPOSED)
        .values_list("device__device_group_id")
        .annotate(n=Count("pk"))
    ):
        rows.append(DailyFigure(day=day, metric=Metric.OPEN_TARGETS, device_group_id=group_id, value=n))

    # Each active activity's fixed devices, per device group (0 too: the line starts somewhere).
    fixed = (
        active_devices.values_list("activity_id", "device__device_group_id")
        .annotate(n=Count("pk", filter=Q(status=ActivityDevice.Status.REMEDIATED)))
        .order_by()
    )
    for activity_id, group_id, n in fixed:
        rows.append(
            DailyFigure(
                day=day, metric=Metric.ACTIVITY_FIXED, device_group_id=group_id, activity_id=activity_id, value=n
            )
        )

    # Exposed devices per severity band, and in any band (a device counts once in each).
    open_exposures = Exposure.objects.filter(remediated_at__isnull=True).order_by()
    for group_id, band, n in (
        open_exposures.annotate(band=severity_band_expression())
        .values_list("device__device_group_id", "band")
        .annotate(n=Count("device_id", distinct=True))
    ):
        rows.append(DailyFigure(day=day, metric=Metric.EXPOSED_DEVICES, device_group_id=group_id, band=band, value=n))
    for group_id, n in open_exposures.values_list("device__device_group_id").annotate(
        n=Count("device_id", distinct=True)
    ):
        rows.append(DailyFigure(day=day, metric=Metric.EXPOSED_DEVICES, device_group_id=group_id, band="", value=n))
    return rows


@transaction.atomic
def daily_figures_record(*, day: dt.date | None = None) -> int:
    """Count today's figures (or `day`'s, from today's data) and replace that day's rows. Returns the row count."""
    day = day or timezone.localdate()
    rows = _today_rows(day)
    DailyFigure.objects.filter(day=day).delete()
    DailyFigure.objects.bulk_create(rows, batch_size=2000)
    return len(rows)


def _wiggle(seed: int, days_back: int) -> float:
    """A small deterministic ripple, so a demo line is not a ruler."""
    return 1 + 0.04 * math.sin(seed * 1.7 + days_back / 3.0)


@transaction.atomic
def daily_figures_backfill(*, days: int = 90) -> int:
    """Demo history: the `days` days before today drawn from today's figures (seed_demo only).

    Exposures were higher in the past and fall towards today; an activity's fixed devices rise
    from 0 on its creation day to today's count. Days that already have figures are left alone,
    so a rerun only tops up. Returns the rows written.
    """
    today = timezone.localdate()
    current = list(DailyFigure.objects.filter(day=today))
    if not current:
        return 0
    filled = set(DailyFigure.objects.filter(day__lt=today).values_list("day", flat=True).distinct())
    created_on = {
        pk: timezone.localtime(at).date()
        for pk, at in RemediationActivity.objects.filter(
            pk__in={f.activity_id for f in current if f.activity_id}
        ).values_list("pk", "created_at")
    }
    rows = []
    for back in range(1, days + 1):
        day = today - dt.timedelta(days=back)
        if day in filled:
            continue
        for figure in current:
            value = figure.value
            if figure.metric == Metric.ACTIVITY_FIXED:
                start = created_on.get(figure.activity_id, today)
                age = (today - start).days
                if day < start:
                    continue
                value = round(figure.value * ((day - start).days / age)) if age else figure.value
            elif figure.metric == Metric.OPEN_TARGETS:
                value = round(figure.value * (1 + 0.9 * back / days) * _wiggle(figure.device_group_id, back))
            else:
                value = round(figure.value * (1 + 0.35 * back / days) * _wiggle(figure.device_group_id + 7, back))
            rows.append(
                DailyFigure(
                    day=day,
                    metric=figure.metric,
                    device_group_id=figure.device_group_id,
                    band=figure.band,
                    activity_id=figure.activity_id,
                    value=max(0, value),
                )
            )
    DailyFigure.objects.bulk_create(rows, batch_size=2000)
    return len(rows)
