"""Reads about remediation activities, scoped to the caller's device groups."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Count, Exists, F, IntegerField, OuterRef, Prefetch, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from recommendations.models import DeviceGroup
from recommendations.selectors import (
    User,
    device_group_ids_for_user,
    device_group_list,
    user_sees_all_device_groups,
)

from .filters import ActivityFilter
from .hooks import integration
from .models import ActivityDevice, ActivityEvent, RemediationActivity
from .rules import progress_expression


def _scope(qs: QuerySet[RemediationActivity], user: User) -> QuerySet[RemediationActivity]:
    if user_sees_all_device_groups(user):
        return qs
    through = RemediationActivity.device_groups.through
    return qs.filter(
        Exists(
            through.objects.filter(
                remediationactivity_id=OuterRef("pk"),
                devicegroup_id__in=device_group_ids_for_user(user=user),
            )
        )
    )


def _devices_in_scope(group_ids, **filters) -> Coalesce:
    """How many of the outer activity's devices are in `group_ids` (with `filters`), read from the
    activity's own rows (scope_group_id: their copy of each device's group, no join)."""
    rows = (
        ActivityDevice.objects.filter(activity=OuterRef("pk"), scope_group_id__in=group_ids, **filters)
        .order_by()
        .values("activity")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(rows, output_field=IntegerField()), Value(0))


def activity_list(*, user: User, filters: dict | None = None) -> QuerySet[RemediationActivity]:
    """Activities the user may see, with what lists show, filtered like the API list.

    For a user who does not see every device group, what an activity shows is that of their
    groups (DESIGN.md section 5): `device_groups` holds only theirs, and `target_devices_in_scope` /
    `fixed_devices_in_scope` (read through `shown_target_devices` / `shown_fixed_devices` and
    `progress`) count only their devices; others read the stored counters.
    """
    qs = RemediationActivity.objects.select_related("recommendation")
    if user_sees_all_device_groups(user):
        groups = DeviceGroup.objects.only("id", "name")
        qs = qs.annotate(progress_value=F("progress_stored"))  # stored and indexed (rules.progress_expression)
    else:
        groups = device_group_list(user=user).only("id", "name")
        group_ids = device_group_ids_for_user(user=user)  # uncorrelated: the database reads it once
        qs = qs.annotate(
            target_devices_in_scope=_devices_in_scope(group_ids),
            fixed_devices_in_scope=_devices_in_scope(group_ids, status=ActivityDevice.Status.REMEDIATED),
        ).annotate(progress_value=progress_expression(fixed="fixed_devices_in_scope", target="target_devices_in_scope"))
    qs = qs.prefetch_related(Prefetch("device_groups", queryset=groups))
    qs = _scope(integration().prepare_activities(qs), user)
    if filters:
        qs = ActivityFilter(filters, queryset=qs, user=user).qs
    return qs


def activity_get(*, user: User, pk) -> RemediationActivity | None:
    """One activity if the user may see it, else None (callers answer 404)."""
    try:
        return activity_list(user=user).get(pk=pk)
    except (RemediationActivity.DoesNotExist, ValueError, TypeError, DjangoValidationError):  # not a UUID
        return None


def activity_device_list(
    *, activity: RemediationActivity, user: User | None = None, status: str | None = None, search: str = ""
) -> QuerySet[ActivityDevice]:
    """An activity's devices; with `user`, only those in the device groups the user may see;
    with `search`, only those whose name contains it (any letter case)."""
    qs = (
        ActivityDevice.objects.filter(activity=activity)
        .select_related("device", "device__device_group")
        .order_by("device_name", "pk")  # the copied name: indexes (activity[, status], device_name, id)
    )
    if user is not None and not user_sees_all_device_groups(user):
        qs = qs.filter(device__device_group__in=device_group_ids_for_user(user=user))
    if status:
        qs = qs.filter(status=status)
    if search:
        qs = qs.filter(device_name__icontains=search)
    return qs


def activity_event_list(*, activity: RemediationActivity) -> QuerySet[ActivityEvent]:
    return ActivityEvent.objects.filter(activity=activity).order_by("at", "pk")


def top_activity_list(*, user: User, limit: int = 5) -> QuerySet[RemediationActivity]:
    """Active activities ranked by severity of their recommendation, then nearest due date."""
    return (
        activity_list(user=user)
        .filter(status=RemediationActivity.Status.ACTIVE)
        .order_by(
            F("recommendation__severity_score").desc(),
            F("due_on").asc(nulls_last=True),
            "-created_at",
        )[:limit]
    )


def annotate_open_activities(qs: QuerySet) -> QuerySet:
    """Adds `open_activities` to a recommendation queryset: its active remediation activities."""
    open_activities = (
        RemediationActivity.objects.filter(recommendation=OuterRef("pk"), status=RemediationActivity.Status.ACTIVE)
        .order_by()
        .values("recommendation")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return qs.annotate(open_activities=Coalesce(Subquery(open_activities), 0))
