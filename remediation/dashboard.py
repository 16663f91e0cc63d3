"""Reads for the admin's dashboard: the tiles' counts and the charts' figures, in the viewer's scope.

The charts read the stored daily figures (remediation.models.DailyFigure), per device group,
summed over the groups the viewer may see; the tiles count activities (a small table) through
selectors.activity_list and the newest stored exposed-device figure. Nothing here scans exposures.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from django.db.models import QuerySet, Sum
from django.utils import timezone

from recommendations.selectors import User, device_group_ids_for_user, user_sees_all_device_groups

from .models import DailyFigure, RemediationActivity, SeverityBand
from .rules import overdue_q, severity_band
from .selectors import activity_list

Metric = DailyFigure.Metric
DUE_SOON_DAYS = 7
CHART_DAYS = 90


def _figures(user: User, metric: str) -> QuerySet[DailyFigure]:
    qs = DailyFigure.objects.filter(metric=metric)
    if not user_sees_all_device_groups(user):
        qs = qs.filter(device_group__in=device_group_ids_for_user(user=user))
    return qs


def _days(days: int) -> list[dt.date]:
    today = timezone.localdate()
    return [today - dt.timedelta(days=back) for back in range(days - 1, -1, -1)]


def _series(qs: QuerySet[DailyFigure], days: list[dt.date]) -> list[tuple[dt.date, int | None]]:
    """One value a day, summed over the device groups; None where no figure was stored that day."""
    totals = dict(qs.filter(day__gte=days[0]).values_list("day").annotate(total=Sum("value")).order_by())
    return [(day, totals.get(day)) for day in days]


def burn_down(*, user: User, days: int = CHART_DAYS) -> list[tuple[dt.date, int | None]]:
    """Open exposures of the active activities' target devices, a value a day."""
    return _series(_figures(user, Metric.OPEN_TARGETS), _days(days))


def exposed_by_band(*, user: User, days: int = CHART_DAYS) -> dict[str, list[tuple[dt.date, int | None]]]:
    """Exposed devices per severity band, highest band first, a value a day each."""
    day_list = _days(days)
    qs = _figures(user, Metric.EXPOSED_DEVICES)
    return {band: _series(qs.filter(band=band), day_list) for band in reversed(SeverityBand.values)}


def activity_fixed(*, activity: RemediationActivity, user: User) -> list[tuple[dt.date, int | None]]:
    """One activity's fixed devices a day, from its creation day to today (or its completion), on an axis
    that runs to its due date when that is later (at most CHART_DAYS days)."""
    start = timezone.localtime(activity.created_at).date()
    end = timezone.localdate()
    if activity.completed_at:
        end = min(end, timezone.localtime(activity.completed_at).date())
    elif activity.due_on and activity.due_on > end:
        end = activity.due_on  # the axis runs to the due date; the days to come have no figure yet
    span = max(2, min(CHART_DAYS, (end - start).days + 1))
    days = [end - dt.timedelta(days=back) for back in range(span - 1, -1, -1)]
    return _series(_figures(user, Metric.ACTIVITY_FIXED).filter(activity=activity), days)


def time_to_remediate(*, user: User) -> list[tuple[str, float | None, int]]:
    """Mean days from request to completion of the completed activities, per severity band:
    (band, mean days or None, activities)."""
    done = activity_list(user=user).filter(status=RemediationActivity.Status.COMPLETED)
    spans: dict[str, list[float]] = defaultdict(list)
    for score, created, completed in done.values_list("recommendation__severity_score", "created_at", "completed_at"):
        spans[severity_band(score)].append(max(0.0, (completed - created).total_seconds() / 86400))
    return [
        (band, (sum(spans[band]) / len(spans[band])) if spans[band] else None, len(spans[band]))
        for band in reversed(SeverityBand.values)
    ]


def completed_on_time(*, user: User) -> tuple[int, int]:
    """(completed by their due date, completed with a due date) among the completed activities."""
    done = activity_list(user=user).filter(status=RemediationActivity.Status.COMPLETED, due_on__isnull=False)
    on_time = total = 0
    for due_on, completed in done.values_list("due_on", "completed_at"):
        total += 1
        on_time += timezone.localtime(completed).date() <= due_on
    return on_time, total


def exposed_devices_now(*, user: User) -> int | None:
    """Devices exposed to at least one recommendation, from the newest stored day (None before the first)."""
    qs = _figures(user, Metric.EXPOSED_DEVICES).filter(band="")
    newest = qs.order_by("-day").values_list("day", flat=True).first()
    if newest is None:
        return None
    return qs.filter(day=newest).aggregate(total=Sum("value"))["total"] or 0


def tile_counts(*, user: User) -> dict[str, int]:
    """The activity tiles: active, awaiting IT's decision, overdue, due within DUE_SOON_DAYS days."""
    today = timezone.localdate()
    active = activity_list(user=user).filter(status=RemediationActivity.Status.ACTIVE).order_by()
    return {
        "active": active.count(),
        "awaiting_decision": active.filter(ticket_status=RemediationActivity.TicketStatus.PENDING).count(),
        "overdue": active.filter(overdue_q(today)).count(),
        "due_soon": active.filter(due_on__gte=today, due_on__lte=today + dt.timedelta(days=DUE_SOON_DAYS)).count(),
    }
