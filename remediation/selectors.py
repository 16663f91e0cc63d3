"""Reads about remediation activities, scoped to the caller's device groups."""

from __future__ import annotations

from django.db.models import Case, Exists, F, IntegerField, OuterRef, Prefetch, QuerySet, Value, When
from django.db.models.functions import Cast

from recommendations.models import DeviceGroup
from recommendations.selectors import User, device_group_ids_for_user, user_sees_all_device_groups

from .models import ActivityDevice, ActivityEvent, RemediationActivity

PRIORITY_RANK = Case(
    When(priority="high", then=Value(0)),
    When(priority="medium", then=Value(1)),
    default=Value(2),
    output_field=IntegerField(),
)


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


def activity_list(*, user: User, filters: dict | None = None) -> QuerySet[RemediationActivity]:
    """Activities the user may see, with what lists show, filtered like the API list."""
    qs = (
        RemediationActivity.objects.select_related("recommendation", "intune_task")
        .prefetch_related(Prefetch("device_groups", queryset=DeviceGroup.objects.only("id", "name")))
        .annotate(
            priority_rank=PRIORITY_RANK,
            progress_value=Case(
                When(remediation_option="attention_required", then=Value(-1)),
                When(target_devices=0, then=Value(0)),
                default=Cast(F("fixed_devices") * 100 / F("target_devices"), IntegerField()),
                output_field=IntegerField(),
            ),
        )
    )
    qs = _scope(qs, user)
    if filters:
        from .filters import ActivityFilter

        qs = ActivityFilter(filters, queryset=qs).qs
    return qs


def activity_get(*, user: User, pk) -> RemediationActivity | None:
    """One activity if the user may see it, else None (callers answer 404)."""
    try:
        return activity_list(user=user).get(pk=pk)
    except (RemediationActivity.DoesNotExist, ValueError, TypeError):
        return None
    except Exception as exc:  # an id that is not a UUID
        from django.core.exceptions import ValidationError

        if isinstance(exc, ValidationError):
            return None
        raise


def activity_device_list(
    *, activity: RemediationActivity, user: User | None = None, status: str | None = None
) -> QuerySet[ActivityDevice]:
    """An activity's devices; with `user`, only those in the device groups the user may see."""
    qs = (
        ActivityDevice.objects.filter(activity=activity)
        .select_related("device", "device__device_group")
        .order_by("device__computer_dns_name", "pk")
    )
    if user is not None and not user_sees_all_device_groups(user):
        qs = qs.filter(device__device_group__in=device_group_ids_for_user(user=user))
    if status:
        qs = qs.filter(status=status)
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
