"""Every write to recommendation exceptions: file, cancel (all groups or one), expire."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from portal.errors import ConflictError, PermissionError_, ValidationError
from portal.models import Event

from ..models import DeviceGroup, ExceptionDeviceGroup, ExceptionEvent, RecommendationException, SecurityRecommendation
from ..selectors.exceptions import can_handle_exceptions, exception_group_ids_in_use, has_active_global_exception
from ..selectors.scope import device_group_ids_for_user, user_sees_all_device_groups

logger = logging.getLogger(__name__)


def _exception_event(
    exception: RecommendationException, *, kind: str, user=None, notes: str = "", groups: Iterable[DeviceGroup] = ()
) -> ExceptionEvent:
    """One history entry; `groups` are the device groups it is about (readers see only theirs)."""
    event = ExceptionEvent.objects.create(exception=exception, kind=kind, notes=notes, **Event.by(user))
    groups = list(groups)
    if groups:
        event.device_groups.set(groups)
    return event


def recommendation_lock(*, recommendation: SecurityRecommendation) -> None:
    """Serialise the decisions about one recommendation's device groups until the transaction ends.

    Filing an exception and filing a remediation request both take it: an exception created
    while an activity is being created for the same recommendation waits (or the activity does),
    so the activity never targets devices the exception covers, and two identical requests never
    both pass the duplicate check. A row lock on PostgreSQL; on SQLite every write transaction is
    already serialised (DATABASES OPTIONS transaction_mode IMMEDIATE).
    """
    SecurityRecommendation.objects.select_for_update().filter(pk=recommendation.pk).values_list("pk").first()


def _require_handle_exceptions(user, action: str) -> None:
    if not can_handle_exceptions(user):
        raise PermissionError_(f"Only security staff can {action} exceptions.")


@transaction.atomic
def exception_create(
    *,
    user,
    recommendation: SecurityRecommendation,
    justification: str,
    context: str,
    expires_on: dt.date | None,
    scope: str,
    device_groups: Iterable[DeviceGroup] = (),
) -> RecommendationException:
    """File an exception: the covered devices are not targeted by new activities until it ends.

    Rules: permission `handle_exceptions`; context required; `expires_on` after today; a global
    scope only for superusers (and one global exception in force at a time); device-group scope
    needs at least one group the user may see, none of them already covered by an active
    device-group exception for this recommendation.
    """
    _require_handle_exceptions(user, "create")
    device_groups = list(dict.fromkeys(device_groups))  # keeps order, drops repeats
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    if justification not in RecommendationException.Justification.values:
        add(
            "justification",
            f'"{justification}" is not a justification; choose one of '
            + ", ".join(RecommendationException.Justification.values)
            + ".",
        )
    context = (context or "").strip()
    if not context:
        add("context", "Explain the exception: the context is required.")
    today = timezone.localdate()
    if expires_on is None:
        add("expires_on", "An expiry date is required.")
    elif expires_on <= today:
        add("expires_on", "The expiry date must be after today.")

    # Two concurrent requests cannot cover one group twice, nor race a new activity.
    recommendation_lock(recommendation=recommendation)
    if scope == RecommendationException.Scope.GLOBAL:
        if not user.is_superuser:
            raise PermissionError_("Only superusers can file a global exception.")
        if device_groups:
            add("device_groups", "A global exception covers every device group; do not name groups.")
        if has_active_global_exception(recommendation=recommendation):
            add("scope", "A global exception is already active for this recommendation.")
    elif scope == RecommendationException.Scope.DEVICE_GROUPS:
        if not device_groups:
            add("device_groups", "Select at least one device group.")
        else:
            if not user_sees_all_device_groups(user):
                visible = set(device_group_ids_for_user(user=user).values_list("pk", flat=True))
                hidden = sorted(g.name for g in device_groups if g.pk not in visible)
                if hidden:  # answered like groups that do not exist (DESIGN.md section 5)
                    add("device_groups", "Unknown device groups: " + ", ".join(hidden) + ".")
            in_use = exception_group_ids_in_use(recommendation=recommendation)
            taken = sorted(g.name for g in device_groups if g.pk in in_use)
            if taken:
                add(
                    "device_groups",
                    "These device groups already have an active exception for this "
                    "recommendation: " + ", ".join(taken) + ".",
                )
    else:
        add("scope", f'"{scope}" is not a scope; choose "global" or "device_groups".')

    if errors:
        raise ValidationError(errors=errors)

    exception = RecommendationException.objects.create(
        recommendation=recommendation,
        justification=justification,
        context=context,
        expires_on=expires_on,
        scope=scope,
        created_by=user,
    )
    if scope == RecommendationException.Scope.DEVICE_GROUPS:
        ExceptionDeviceGroup.objects.bulk_create(
            [ExceptionDeviceGroup(exception=exception, device_group=g) for g in device_groups]
        )
        _exception_event(exception, kind=ExceptionEvent.Kind.CREATED, user=user, groups=device_groups)
    else:
        notes = "Global: every device group, current and future."
        _exception_event(exception, kind=ExceptionEvent.Kind.CREATED, user=user, notes=notes)
    logger.info("Exception %s filed for %s by %s", exception.pk, recommendation.external_id, user)
    return exception


@transaction.atomic
def exception_cancel(
    *, exception: RecommendationException, user, device_group: DeviceGroup | None = None, notes: str = ""
) -> RecommendationException:
    """Cancel an exception for all its groups, or for one group (device-group scope only).

    `notes` (optional, e.g. why) is recorded in the history with the cancellation.

    A global exception is canceled whole. Canceling the last active group cancels the exception.
    Canceled or expired exceptions cannot be canceled again (409).
    """
    _require_handle_exceptions(user, "cancel")
    exception = RecommendationException.objects.select_for_update().get(pk=exception.pk)
    if exception.status != RecommendationException.Status.ACTIVE:
        raise ConflictError(f"This exception is already {exception.status}; it cannot be canceled.")
    now = timezone.now()
    links = ExceptionDeviceGroup.objects.filter(
        exception=exception, status=ExceptionDeviceGroup.Status.ACTIVE
    ).select_related("device_group")
    sees_all = user_sees_all_device_groups(user)
    visible = None if sees_all else set(device_group_ids_for_user(user=user).values_list("pk", flat=True))

    if device_group is not None:
        if exception.scope == RecommendationException.Scope.GLOBAL:
            raise ValidationError(
                "A global exception covers every device group; it can only be canceled whole.",
                field="device_group",
            )
        link = ExceptionDeviceGroup.objects.filter(exception=exception, device_group=device_group).first()
        if link is None or (visible is not None and device_group.pk not in visible):  # the same answer
            raise ValidationError(
                f'This exception does not cover device group "{device_group.name}".', field="device_group"
            )
        if link.status != ExceptionDeviceGroup.Status.ACTIVE:
            raise ConflictError(f'The exception is already canceled for device group "{device_group.name}".')
        link.status = ExceptionDeviceGroup.Status.CANCELED
        link.canceled_by = user
        link.canceled_at = now
        link.save(update_fields=["status", "canceled_by", "canceled_at"])
        _exception_event(
            exception, kind=ExceptionEvent.Kind.GROUP_CANCELED, user=user, groups=[device_group], notes=notes
        )
        if not links.exists():
            exception.status = RecommendationException.Status.CANCELED
            exception.canceled_by = user
            exception.canceled_at = now
            exception.save(update_fields=["status", "canceled_by", "canceled_at"])
            _exception_event(
                exception,
                kind=ExceptionEvent.Kind.CANCELED,
                user=user,
                notes=_joined("Its last device group was canceled.", notes),
            )
        return exception

    if exception.scope == RecommendationException.Scope.GLOBAL and not sees_all:
        raise PermissionError_("Only people who see every device group can cancel a global exception.")
    active_links = list(links)
    if visible is not None:
        hidden = sorted(link.device_group.name for link in active_links if link.device_group_id not in visible)
        if hidden:
            raise PermissionError_(
                "This exception also covers device groups outside your scope ("
                + ", ".join(hidden)
                + "); cancel your groups one by one."
            )
    ExceptionDeviceGroup.objects.filter(pk__in=[link.pk for link in active_links]).update(
        status=ExceptionDeviceGroup.Status.CANCELED, canceled_by=user, canceled_at=now
    )
    exception.status = RecommendationException.Status.CANCELED
    exception.canceled_by = user
    exception.canceled_at = now
    exception.save(update_fields=["status", "canceled_by", "canceled_at"])
    if exception.scope == RecommendationException.Scope.GLOBAL:
        _exception_event(
            exception, kind=ExceptionEvent.Kind.CANCELED, user=user, notes=_joined("Global exception canceled.", notes)
        )
    else:
        groups = [link.device_group for link in active_links]
        _exception_event(exception, kind=ExceptionEvent.Kind.CANCELED, user=user, groups=groups, notes=notes)
    return exception


def _joined(*parts: str) -> str:
    return " ".join(part.strip() for part in parts if part and part.strip())


def exceptions_expire(*, today: dt.date | None = None) -> int:
    """Move active exceptions whose last day (expires_on) has passed to `expired`.

    Runs the day after `expires_on` (the hourly job); writes an `expired` event per exception;
    safe to run twice (a second run finds nothing). Returns how many it expired.
    """
    today = today or timezone.localdate()
    expired = 0
    due = RecommendationException.objects.filter(
        status=RecommendationException.Status.ACTIVE, expires_on__lt=today
    ).order_by("pk")
    for pk in list(due.values_list("pk", flat=True)):
        with transaction.atomic():
            exception = (
                RecommendationException.objects.select_for_update()
                .filter(pk=pk, status=RecommendationException.Status.ACTIVE, expires_on__lt=today)
                .first()
            )
            if exception is None:  # canceled or expired meanwhile
                continue
            exception.status = RecommendationException.Status.EXPIRED
            exception.expired_at = timezone.now()
            exception.save(update_fields=["status", "expired_at"])
            _exception_event(
                exception, kind=ExceptionEvent.Kind.EXPIRED, notes=f"Ended on {exception.expires_on.isoformat()}."
            )
            expired += 1
    if expired:
        logger.info("Expired %s exception(s).", expired)
    return expired
