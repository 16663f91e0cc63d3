"""Reads about device groups, devices, recommendations and exceptions, scoped to the caller."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import (
    BooleanField,
    Case,
    CharField,
    Count,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from .models import (
    Device,
    DeviceGroup,
    ExceptionDeviceGroup,
    Exposure,
    RecommendationException,
    RecommendationGroupExposure,
    SecurityRecommendation,
)

User = AbstractBaseUser | AnonymousUser


def user_sees_all_device_groups(user: User) -> bool:
    return bool(user.is_active and (user.is_superuser or user.has_perm("recommendations.view_all_device_groups")))


def device_group_list(*, user: User) -> QuerySet[DeviceGroup]:
    """The device groups the user may see (every group for superusers and 'view all')."""
    groups = DeviceGroup.objects.all()
    if user_sees_all_device_groups(user):
        return groups
    if not user.is_authenticated:
        return groups.none()
    return groups.filter(
        Exists(DeviceGroup.user_groups.through.objects.filter(devicegroup_id=OuterRef("pk"), group__user=user))
    )


def device_group_ids_for_user(*, user: User) -> QuerySet:
    return device_group_list(user=user).values("pk")


def device_list(*, user: User) -> QuerySet[Device]:
    qs = Device.objects.select_related("device_group")
    if user_sees_all_device_groups(user):
        return qs
    return qs.filter(device_group__in=device_group_ids_for_user(user=user))


def recommendation_list(*, user: User) -> QuerySet[SecurityRecommendation]:
    """Recommendations with `open_activities`, `exception_state` and `exposed_after_exceptions`.

    Annotated with subqueries (see annotate_exception_state), not a query per row; for a scoped
    user `exposed_after_exceptions` counts only the devices of their groups.
    """
    from remediation.models import RemediationActivity

    open_activities = (
        RemediationActivity.objects.filter(recommendation=OuterRef("pk"), status="active")
        .order_by()
        .values("recommendation")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return annotate_exception_state(
        SecurityRecommendation.objects.annotate(open_activities=Coalesce(Subquery(open_activities), 0)),
        visible_groups=None if user_sees_all_device_groups(user) else device_group_ids_for_user(user=user),
    )


def exposed_devices_for_recommendation(*, recommendation: SecurityRecommendation, user: User) -> QuerySet[Exposure]:
    """Open exposures of a recommendation on the devices the user may see."""
    qs = Exposure.objects.filter(recommendation=recommendation, remediated_at__isnull=True).select_related(
        "device", "device__device_group"
    )
    if not user_sees_all_device_groups(user):
        qs = qs.filter(device__device_group__in=device_group_ids_for_user(user=user))
    return qs


def exposed_counts_by_group(*, recommendation: SecurityRecommendation) -> dict[int, int]:
    """{device_group_id: open exposures} for one recommendation (the stored per-group counters)."""
    return dict(
        RecommendationGroupExposure.objects.filter(recommendation=recommendation, exposed_devices__gt=0)
        .order_by()
        .values_list("device_group_id", "exposed_devices")
    )


def recommendation_ids_exposed_on(*, device_ids) -> set[int]:
    """Recommendations with an open exposure on these devices (ids or a values("pk") queryset)."""
    return set(
        Exposure.objects.filter(device_id__in=device_ids, remediated_at__isnull=True)
        .order_by()
        .values_list("recommendation_id", flat=True)
        .distinct()
    )


def _group_exposure_rows(
    *, visible_groups: QuerySet | None = None, uncovered_only: bool = False
) -> QuerySet[RecommendationGroupExposure]:
    """Per-group counter rows of the outer recommendation (OuterRef("pk")) with open exposures.

    `visible_groups`: only these device groups; `uncovered_only`: only the groups no active
    device-group exception in force covers.
    """
    rows = RecommendationGroupExposure.objects.filter(recommendation=OuterRef("pk"), exposed_devices__gt=0)
    if uncovered_only:
        rows = rows.filter(
            ~Exists(
                _covered_group_links().filter(
                    exception__recommendation=OuterRef("recommendation_id"),
                    device_group_id=OuterRef("device_group_id"),
                )
            )
        )
    if visible_groups is not None:
        rows = rows.filter(device_group__in=visible_groups)
    return rows


def _summed(rows: QuerySet[RecommendationGroupExposure]) -> Coalesce:
    total = rows.order_by().values("recommendation").annotate(n=Sum("exposed_devices")).values("n")
    return Coalesce(Subquery(total, output_field=IntegerField()), Value(0))


def annotate_exposed_in_scope(
    qs: QuerySet[SecurityRecommendation], *, user: User, name: str = "exposed_in_scope"
) -> QuerySet:
    """Adds `name` (default `exposed_in_scope`): open exposures on the devices of the user's groups.

    The stored total for users who see every group; else the sum of the stored per-group
    counters over their groups (one subquery on the small counter table, not a count of
    exposures per row).
    """
    if user_sees_all_device_groups(user):
        return qs.annotate(**{name: F("exposed_devices")})
    visible = device_group_ids_for_user(user=user)
    return qs.annotate(**{name: _summed(_group_exposure_rows(visible_groups=visible))})


# --- Exceptions -----------------------------------------------------------------------
#
# An exception is "in force" while its status is active and its last day (expires_on) has not
# passed: the hourly expiry job records the change of status, but coverage never outlives the
# date even if the job runs late. Coverage of a recommendation: an in-force global exception
# covers every device group (current and future); otherwise, the active groups of its in-force
# device-group exceptions. A device-group exception under an in-force global one is
# "suspended": it covers nothing more, and takes effect again when the global one ends.

EXCEPTION_STATE_FULL = "exception"
EXCEPTION_STATE_PARTIAL = "partial"
EXCEPTION_STATE_NONE = "none"
EXCEPTION_STATE_LABELS = {
    EXCEPTION_STATE_FULL: "Exception",
    EXCEPTION_STATE_PARTIAL: "Partial exception",
    EXCEPTION_STATE_NONE: "",
}


def _in_force_q(prefix: str = "") -> Q:
    return Q(
        **{
            f"{prefix}status": RecommendationException.Status.ACTIVE,
            f"{prefix}expires_on__gte": timezone.localdate(),
        }
    )


def active_exception_list(*, recommendation: SecurityRecommendation | None = None) -> QuerySet:
    """Exceptions in force (status active, expires_on not passed)."""
    qs = RecommendationException.objects.filter(_in_force_q())
    if recommendation is not None:
        qs = qs.filter(recommendation=recommendation)
    return qs


def has_active_global_exception(*, recommendation: SecurityRecommendation) -> bool:
    return (
        active_exception_list(recommendation=recommendation).filter(scope=RecommendationException.Scope.GLOBAL).exists()
    )


def _covered_group_links() -> QuerySet[ExceptionDeviceGroup]:
    """Active group links of in-force device-group exceptions (any recommendation)."""
    return ExceptionDeviceGroup.objects.filter(
        _in_force_q("exception__"),
        exception__scope=RecommendationException.Scope.DEVICE_GROUPS,
        status=ExceptionDeviceGroup.Status.ACTIVE,
    )


def excepted_device_group_ids(*, recommendation: SecurityRecommendation) -> set[int] | None:
    """Device groups covered by an active exception for this recommendation.

    Returns None when a global exception covers every group, current and future.
    """
    if has_active_global_exception(recommendation=recommendation):
        return None
    return set(
        _covered_group_links()
        .filter(exception__recommendation=recommendation)
        .values_list("device_group_id", flat=True)
    )


def exception_group_ids_in_use(*, recommendation: SecurityRecommendation) -> set[int]:
    """Groups that already have an active device-group exception (suspended ones included).

    A new device-group exception may not name them: the form does not offer them, the
    service refuses them.
    """
    return set(
        _covered_group_links()
        .filter(exception__recommendation=recommendation)
        .values_list("device_group_id", flat=True)
    )


def annotate_exception_state(
    qs: QuerySet[SecurityRecommendation], *, visible_groups: QuerySet | None = None
) -> QuerySet[SecurityRecommendation]:
    """Adds `exception_state` ("exception" | "partial" | "none") and `exposed_after_exceptions`.

    Subqueries in the one SELECT, not a query per row. "exception": a global exception is in
    force, or every device group with exposed devices is covered; "partial": some groups are
    covered; "none": no exception in force. The count after exceptions is computed only for
    recommendations that have device-group exceptions (the others keep the stored counter).
    With `visible_groups` (a scoped user's device groups) the count covers only their devices;
    the state stays that of the whole recommendation.
    """
    global_in_force = Exists(
        RecommendationException.objects.filter(
            _in_force_q(), recommendation=OuterRef("pk"), scope=RecommendationException.Scope.GLOBAL
        )
    )
    group_links = _covered_group_links().filter(exception__recommendation=OuterRef("pk"))
    # Stored per-group counters (RecommendationGroupExposure), not a count of exposures per row.
    uncovered_groups = _group_exposure_rows(uncovered_only=True)
    uncovered_count = _summed(_group_exposure_rows(visible_groups=visible_groups, uncovered_only=True))
    scoped_count = None if visible_groups is None else _summed(_group_exposure_rows(visible_groups=visible_groups))
    return (
        qs.annotate(
            has_global_exception=global_in_force,
            has_group_exception=Exists(group_links),
        )
        .annotate(
            exposed_after_exceptions=Case(
                When(has_global_exception=True, then=Value(0)),
                When(has_group_exception=True, then=uncovered_count),
                default=F("exposed_devices") if scoped_count is None else scoped_count,
                output_field=IntegerField(),
            ),
        )
        .annotate(
            exception_state=Case(
                When(has_global_exception=True, then=Value(EXCEPTION_STATE_FULL)),
                When(
                    Q(has_group_exception=True) & ~Exists(uncovered_groups),
                    then=Value(EXCEPTION_STATE_FULL),
                ),
                When(has_group_exception=True, then=Value(EXCEPTION_STATE_PARTIAL)),
                default=Value(EXCEPTION_STATE_NONE),
                output_field=CharField(),
            ),
        )
    )


def recommendation_exception_state(*, recommendation: SecurityRecommendation) -> dict:
    """{"state", "label", "exposed_devices", "exposed_after_exceptions"} for one recommendation."""
    row = (
        annotate_exception_state(SecurityRecommendation.objects.filter(pk=recommendation.pk))
        .values("exception_state", "exposed_devices", "exposed_after_exceptions")
        .first()
    )
    if row is None:
        return {"state": EXCEPTION_STATE_NONE, "label": "", "exposed_devices": 0, "exposed_after_exceptions": 0}
    return {
        "state": row["exception_state"],
        "label": EXCEPTION_STATE_LABELS[row["exception_state"]],
        "exposed_devices": row["exposed_devices"],
        "exposed_after_exceptions": row["exposed_after_exceptions"],
    }


def exception_list(*, user: User, filters: dict | None = None) -> QuerySet[RecommendationException]:
    """Exceptions the user may see: global ones, and those touching a group in scope.

    `filters` (optional) are the API's query parameters: status, scope, justification,
    recommendation (external id), device_group (name), expiring_within (days).
    """
    qs = RecommendationException.objects.select_related("recommendation", "created_by", "canceled_by").annotate(
        is_suspended=Case(
            When(
                Q(scope=RecommendationException.Scope.DEVICE_GROUPS)
                & _in_force_q()
                & Exists(
                    RecommendationException.objects.filter(
                        _in_force_q(),
                        recommendation=OuterRef("recommendation"),
                        scope=RecommendationException.Scope.GLOBAL,
                    )
                ),
                then=Value(True),
            ),
            default=Value(False),
            output_field=BooleanField(),
        )
    )
    if not user_sees_all_device_groups(user):
        visible = device_group_ids_for_user(user=user)
        qs = qs.filter(
            Q(scope=RecommendationException.Scope.GLOBAL)
            | Exists(ExceptionDeviceGroup.objects.filter(exception=OuterRef("pk"), device_group__in=visible))
        )
    if filters:
        from .filters import ExceptionFilter

        qs = ExceptionFilter(filters, queryset=qs).qs
    return qs


def exception_get(*, user: User, pk) -> RecommendationException | None:
    """One exception if the user may see it, else None (callers answer 404)."""
    try:
        return exception_list(user=user).get(pk=int(pk))
    except (RecommendationException.DoesNotExist, ValueError, TypeError):
        return None


def exception_group_links(*, exception: RecommendationException) -> QuerySet[ExceptionDeviceGroup]:
    return (
        ExceptionDeviceGroup.objects.filter(exception=exception)
        .select_related("device_group", "canceled_by")
        .order_by("device_group__name")
    )


def exception_is_suspended(*, exception: RecommendationException) -> bool:
    """A device-group exception in force while a global one for the same recommendation is."""
    if hasattr(exception, "is_suspended"):  # annotated by exception_list
        return exception.is_suspended
    return (
        exception.scope == RecommendationException.Scope.DEVICE_GROUPS
        and exception.status == RecommendationException.Status.ACTIVE
        and exception.expires_on >= timezone.localdate()
        and has_active_global_exception(recommendation=exception.recommendation)
    )


def active_exception_count() -> int:
    """Exceptions in force (the dashboard card)."""
    return active_exception_list().count()
