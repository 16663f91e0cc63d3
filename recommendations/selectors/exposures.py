"""Reads about exposures and the recommendations they belong to, counted in the caller's scope.

Counts come from the stored counters (`SecurityRecommendation.exposed_devices` and the
per-device-group rows of `RecommendationGroupExposure`), never from a count of exposures per row.
"""

from __future__ import annotations

from django.db.models import Case, CharField, Exists, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce
from django.utils.translation import gettext_lazy as _

from ..models import Exposure, RecommendationGroupExposure, SecurityRecommendation
from .exceptions import covered_group_links, global_in_force_for
from .scope import User, device_group_ids_for_user, user_sees_all_device_groups

EXCEPTION_STATE_FULL = "exception"
EXCEPTION_STATE_PARTIAL = "partial"
EXCEPTION_STATE_NONE = "none"
EXCEPTION_STATE_LABELS = {
    EXCEPTION_STATE_FULL: _("Exception"),
    EXCEPTION_STATE_PARTIAL: _("Partial exception"),
    EXCEPTION_STATE_NONE: "",
}


def recommendation_list(*, user: User) -> QuerySet[SecurityRecommendation]:
    """Recommendations with `exception_state` and `exposed_after_exceptions`.

    Annotated with subqueries (see annotate_exception_state), not a query per row; for a scoped
    user `exposed_after_exceptions` counts only the devices of their groups.
    """
    return annotate_exception_state(
        SecurityRecommendation.objects.all(),
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
    *, visible_groups: QuerySet | None = None, uncovered_only: bool = False, reducing_only: bool = False
) -> QuerySet[RecommendationGroupExposure]:
    """Per-group counter rows of the outer recommendation (OuterRef("pk")) with open exposures.

    `visible_groups`: only these device groups; `uncovered_only`: only the groups no active
    device-group exception in force covers (`reducing_only`: none whose justification lowers
    the count after exceptions).
    """
    rows = RecommendationGroupExposure.objects.filter(recommendation=OuterRef("pk"), exposed_devices__gt=0)
    if uncovered_only:
        rows = rows.filter(
            ~Exists(
                covered_group_links(reducing_only=reducing_only).filter(
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


def annotate_exception_state(
    qs: QuerySet[SecurityRecommendation], *, visible_groups: QuerySet | None = None
) -> QuerySet[SecurityRecommendation]:
    """Adds `exception_state` ("exception" | "partial" | "none") and `exposed_after_exceptions`.

    Subqueries in the one SELECT, not a query per row. The state counts every exception in
    force: "exception": a global one, or every device group with exposed devices covered;
    "partial": some groups covered; "none": no exception in force. The count after exceptions
    drops only the devices covered by exceptions whose justification lowers it (DESIGN.md
    section 8: third_party_control, alternate_mitigation): 0 under such a global exception; the
    full count under another global one (the device-group exceptions are then suspended);
    otherwise the groups not covered by such a device-group exception. It is computed only for
    recommendations that have them (the others keep the stored counter). With `visible_groups`
    (a scoped user's device groups) the count covers only their devices; the state stays that
    of the whole recommendation.
    """
    global_in_force = global_in_force_for(OuterRef("pk"))
    reducing_global = global_in_force_for(OuterRef("pk"), reducing_only=True)
    group_links = covered_group_links().filter(exception__recommendation=OuterRef("pk"))
    reducing_links = covered_group_links(reducing_only=True).filter(exception__recommendation=OuterRef("pk"))
    # Stored per-group counters (RecommendationGroupExposure), not a count of exposures per row.
    uncovered_groups = _group_exposure_rows(uncovered_only=True)
    uncovered_count = _summed(
        _group_exposure_rows(visible_groups=visible_groups, uncovered_only=True, reducing_only=True)
    )
    full_count = (
        F("exposed_devices") if visible_groups is None else _summed(_group_exposure_rows(visible_groups=visible_groups))
    )
    return (
        qs.annotate(
            has_global_exception=global_in_force,
            has_group_exception=Exists(group_links),
        )
        .annotate(
            exposed_after_exceptions=Case(
                When(Q(reducing_global), then=Value(0)),
                When(has_global_exception=True, then=full_count),
                When(Q(Exists(reducing_links)), then=uncovered_count),
                default=full_count,
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


def recommendation_exception_state(*, recommendation: SecurityRecommendation, user: User | None = None) -> dict:
    """{"state", "label", "exposed_devices", "exposed_after_exceptions"} for one recommendation.

    With `user` (who does not see every group) both counts cover only their device groups; the
    state stays that of the whole recommendation.
    """
    visible = None if user is None or user_sees_all_device_groups(user) else device_group_ids_for_user(user=user)
    qs = annotate_exception_state(SecurityRecommendation.objects.filter(pk=recommendation.pk), visible_groups=visible)
    if visible is not None:
        qs = qs.annotate(shown_exposed=_summed(_group_exposure_rows(visible_groups=visible)))
    else:
        qs = qs.annotate(shown_exposed=F("exposed_devices"))
    row = qs.values("exception_state", "shown_exposed", "exposed_after_exceptions").first()
    if row is None:
        return {"state": EXCEPTION_STATE_NONE, "label": "", "exposed_devices": 0, "exposed_after_exceptions": 0}
    return {
        "state": row["exception_state"],
        "label": EXCEPTION_STATE_LABELS[row["exception_state"]],
        "exposed_devices": row["shown_exposed"],
        "exposed_after_exceptions": row["exposed_after_exceptions"],
    }
