"""Reads about recommendation exceptions: which are in force, what they cover, who sees them.

When an exception is in force: recommendations.rules.in_force_q. Coverage of a
recommendation: an in-force global exception covers every device group (current and future);
otherwise, the active groups of its in-force device-group exceptions. A device-group exception
under an in-force global one is "suspended": it covers nothing more, and takes effect again
when the global one ends.

Which exceptions lower the "exposed devices after exceptions" figure (DESIGN.md section 8, as
in Defender): only `third_party_control` and `alternate_mitigation` (the devices are protected
another way). `risk_accepted` and `planned_remediation` leave the devices counted, though every
exception in force still keeps its devices out of new activities and sets the exception state.
"""

from __future__ import annotations

from django.db.models import BooleanField, Case, Exists, OuterRef, Prefetch, Q, QuerySet, Value, When
from django.utils.translation import gettext

from portal import permissions as perm

from ..filters import ExceptionFilter
from ..models import (
    DeviceGroup,
    ExceptionDeviceGroup,
    ExceptionEvent,
    RecommendationException,
    SecurityRecommendation,
)
from ..rules import in_force_q
from .scope import User, device_group_ids_for_user, user_sees_all_device_groups

# The justifications whose exceptions lower the "exposed devices after exceptions" figure.
REDUCING_JUSTIFICATIONS = (
    RecommendationException.Justification.THIRD_PARTY_CONTROL,
    RecommendationException.Justification.ALTERNATE_MITIGATION,
)


def reduces_exposure_q(prefix: str = "") -> Q:
    """The exception's justification lowers the count after exceptions; `prefix` reaches it through a relation."""
    return Q(**{f"{prefix}justification__in": REDUCING_JUSTIFICATIONS})


def can_handle_exceptions(user: User) -> bool:
    """Security staff: may file and cancel exceptions."""
    return perm.user_has(user, perm.HANDLE_EXCEPTIONS)


def active_exception_list(*, recommendation: SecurityRecommendation | None = None) -> QuerySet:
    """Exceptions in force (status active, expires_on not passed)."""
    qs = RecommendationException.objects.filter(in_force_q())
    if recommendation is not None:
        qs = qs.filter(recommendation=recommendation)
    return qs


def global_exceptions_in_force() -> QuerySet[RecommendationException]:
    """Global exceptions in force: each covers every device group of its recommendation."""
    return active_exception_list().filter(scope=RecommendationException.Scope.GLOBAL)


def global_in_force_for(recommendation_ref, *, reducing_only: bool = False) -> Exists:
    """EXISTS an in-force global exception for the recommendation `recommendation_ref` (an OuterRef).

    `reducing_only`: only one whose justification lowers the count after exceptions.
    """
    qs = global_exceptions_in_force().filter(recommendation=recommendation_ref)
    return Exists(qs.filter(reduces_exposure_q()) if reducing_only else qs)


def has_active_global_exception(*, recommendation: SecurityRecommendation) -> bool:
    return global_exceptions_in_force().filter(recommendation=recommendation).exists()


def covered_group_links(*, reducing_only: bool = False) -> QuerySet[ExceptionDeviceGroup]:
    """Active group links of in-force device-group exceptions (any recommendation).

    `reducing_only`: only those of exceptions whose justification lowers the count after exceptions.
    """
    links = ExceptionDeviceGroup.objects.filter(
        in_force_q("exception__"),
        exception__scope=RecommendationException.Scope.DEVICE_GROUPS,
        status=ExceptionDeviceGroup.Status.ACTIVE,
    )
    return links.filter(reduces_exposure_q("exception__")) if reducing_only else links


def exception_group_ids_in_use(*, recommendation: SecurityRecommendation) -> set[int]:
    """Groups that already have an active device-group exception (suspended ones included).

    A new device-group exception may not name them: the form does not offer them, the
    service refuses them.
    """
    return set(
        covered_group_links().filter(exception__recommendation=recommendation).values_list("device_group_id", flat=True)
    )


def excepted_device_group_ids(*, recommendation: SecurityRecommendation) -> set[int] | None:
    """Device groups covered by an exception in force for this recommendation.

    Returns None when a global exception covers every group, current and future.
    """
    if has_active_global_exception(recommendation=recommendation):
        return None
    return exception_group_ids_in_use(recommendation=recommendation)


def suspended_q() -> Q:
    """A device-group exception in force while a global one for the same recommendation is."""
    return (
        Q(scope=RecommendationException.Scope.DEVICE_GROUPS)
        & in_force_q()
        & Q(global_in_force_for(OuterRef("recommendation")))
    )


def exception_list(*, user: User, filters: dict | None = None) -> QuerySet[RecommendationException]:
    """Exceptions the user may see: global ones, and those touching a group in scope.

    `filters` (optional) are the API's query parameters: status, scope, justification,
    recommendation (external id), device_group (name), expiring_within (days).
    """
    qs = RecommendationException.objects.select_related("recommendation", "created_by", "canceled_by").annotate(
        is_suspended=Case(When(suspended_q(), then=Value(True)), default=Value(False), output_field=BooleanField())
    )
    if not user_sees_all_device_groups(user):
        visible = device_group_ids_for_user(user=user)
        qs = qs.filter(
            Q(scope=RecommendationException.Scope.GLOBAL)
            | Exists(ExceptionDeviceGroup.objects.filter(exception=OuterRef("pk"), device_group__in=visible))
        )
    if filters:
        qs = ExceptionFilter(filters, queryset=qs, user=user).qs
    return qs


def exception_get(*, user: User, pk) -> RecommendationException | None:
    """One exception if the user may see it, else None (callers answer 404)."""
    text = str(pk)
    if not (text.isascii() and text.isdigit() and len(text) <= 18):  # no exception has such an id
        return None
    return exception_list(user=user).filter(pk=int(text)).first()


def exception_group_links(
    *, exception: RecommendationException | None = None, user: User | None = None
) -> QuerySet[ExceptionDeviceGroup]:
    """The device groups an exception covers (all exceptions' when `exception` is None, for a
    Prefetch), by name; with `user`, only the groups that user may see."""
    qs = ExceptionDeviceGroup.objects.select_related("device_group", "canceled_by").order_by("device_group__name")
    if exception is not None:
        qs = qs.filter(exception=exception)
    if user is not None and not user_sees_all_device_groups(user):
        qs = qs.filter(device_group__in=device_group_ids_for_user(user=user))
    return qs


def exception_event_list(*, exception: RecommendationException, user: User) -> list[ExceptionEvent]:
    """An exception's history, oldest first, as `user` may see it.

    An event about device groups names only the user's groups in its `notes` (written here, on
    these read-only instances); an event about none of their groups is left out.
    """
    visible = (
        None
        if user_sees_all_device_groups(user)
        else set(device_group_ids_for_user(user=user).values_list("pk", flat=True))
    )
    events = ExceptionEvent.objects.filter(exception=exception).prefetch_related(
        Prefetch("device_groups", queryset=DeviceGroup.objects.order_by("name").only("id", "name"))
    )
    shown = []
    for event in events.order_by("at", "pk"):
        groups = list(event.device_groups.all())
        if groups:
            names = [g.name for g in groups if visible is None or g.pk in visible]
            if not names:
                continue
            label = (
                gettext("Device group: %(names)s")
                if event.kind == ExceptionEvent.Kind.GROUP_CANCELED
                else gettext("Device groups: %(names)s")
            ) % {"names": ", ".join(names)}
            event.notes = "\n".join(part for part in (label, event.notes) if part)
        shown.append(event)
    return shown


def exception_is_suspended(*, exception: RecommendationException) -> bool:
    """A device-group exception in force while a global one for the same recommendation is."""
    if hasattr(exception, "is_suspended"):  # annotated by exception_list
        return exception.is_suspended
    return RecommendationException.objects.filter(pk=exception.pk).filter(suspended_q()).exists()


def active_exception_count(*, user: User) -> int:
    """Exceptions in force that the user may see (the dashboard card)."""
    return exception_list(user=user).filter(in_force_q()).count()
