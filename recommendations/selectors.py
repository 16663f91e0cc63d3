"""Reads about device groups, devices, recommendations and exceptions, scoped to the caller."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from .models import (
    Device,
    DeviceGroup,
    ExceptionDeviceGroup,
    Exposure,
    RecommendationException,
    SecurityRecommendation,
)

User = AbstractBaseUser | AnonymousUser


def user_sees_all_device_groups(user: User) -> bool:
    return bool(
        user.is_active
        and (user.is_superuser or user.has_perm("recommendations.view_all_device_groups"))
    )


def device_group_list(*, user: User) -> QuerySet[DeviceGroup]:
    """The device groups the user may see (every group for superusers and 'view all')."""
    groups = DeviceGroup.objects.all()
    if user_sees_all_device_groups(user):
        return groups
    if not user.is_authenticated:
        return groups.none()
    return groups.filter(
        Exists(DeviceGroup.user_groups.through.objects.filter(
            devicegroup_id=OuterRef("pk"), group__user=user
        ))
    )


def device_group_ids_for_user(*, user: User) -> QuerySet:
    return device_group_list(user=user).values("pk")


def device_list(*, user: User) -> QuerySet[Device]:
    qs = Device.objects.select_related("device_group")
    if user_sees_all_device_groups(user):
        return qs
    return qs.filter(device_group__in=device_group_ids_for_user(user=user))


def recommendation_list(*, user: User) -> QuerySet[SecurityRecommendation]:
    """Recommendations with `open_activities` annotated (one subquery, not a query per row)."""
    from remediation.models import RemediationActivity

    open_activities = (
        RemediationActivity.objects.filter(recommendation=OuterRef("pk"), status="active")
        .order_by()
        .values("recommendation")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return SecurityRecommendation.objects.annotate(
        open_activities=Coalesce(Subquery(open_activities), 0)
    )


def exposed_devices_for_recommendation(
    *, recommendation: SecurityRecommendation, user: User
) -> QuerySet[Exposure]:
    """Open exposures of a recommendation on the devices the user may see."""
    qs = Exposure.objects.filter(recommendation=recommendation, remediated_at__isnull=True).select_related(
        "device", "device__device_group"
    )
    if not user_sees_all_device_groups(user):
        qs = qs.filter(device__device_group__in=device_group_ids_for_user(user=user))
    return qs


def exposed_counts_by_group(*, recommendation: SecurityRecommendation) -> dict[int, int]:
    """{device_group_id: open exposures} for one recommendation, in one query."""
    rows = (
        Exposure.objects.filter(recommendation=recommendation, remediated_at__isnull=True)
        .values("device__device_group")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return {row["device__device_group"]: row["n"] for row in rows}


def active_exception_list(*, recommendation: SecurityRecommendation | None = None) -> QuerySet:
    qs = RecommendationException.objects.filter(status=RecommendationException.Status.ACTIVE)
    if recommendation is not None:
        qs = qs.filter(recommendation=recommendation)
    return qs


def has_active_global_exception(*, recommendation: SecurityRecommendation) -> bool:
    return active_exception_list(recommendation=recommendation).filter(
        scope=RecommendationException.Scope.GLOBAL
    ).exists()


def excepted_device_group_ids(*, recommendation: SecurityRecommendation) -> set[int] | None:
    """Device groups covered by an active exception for this recommendation.

    Returns None when a global exception covers every group, current and future.
    """
    if has_active_global_exception(recommendation=recommendation):
        return None
    return set(
        ExceptionDeviceGroup.objects.filter(
            exception__recommendation=recommendation,
            exception__status=RecommendationException.Status.ACTIVE,
            exception__scope=RecommendationException.Scope.DEVICE_GROUPS,
            status=ExceptionDeviceGroup.Status.ACTIVE,
        ).values_list("device_group_id", flat=True)
    )


def exception_list(*, user: User) -> QuerySet[RecommendationException]:
    """Exceptions the user may see: global ones, and those touching a group in scope."""
    qs = RecommendationException.objects.select_related("recommendation", "created_by")
    if user_sees_all_device_groups(user):
        return qs
    visible = device_group_ids_for_user(user=user)
    return qs.filter(
        Q(scope=RecommendationException.Scope.GLOBAL)
        | Exists(ExceptionDeviceGroup.objects.filter(exception=OuterRef("pk"), device_group__in=visible))
    )


def active_exception_count() -> int:
    today = timezone.localdate()
    return active_exception_list().filter(expires_on__gte=today).count()
