"""Every write to a remediation activity's request and decisions: create, approve, reject, complete.

The admin, the API, tasks and commands call these. An integration (Intune) hears of new
activities and decisions through `remediation.hooks`, never by being imported here.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from portal import permissions as perm
from portal.errors import ConflictError, PermissionError_, ValidationError
from portal.queue import enqueue_on_commit
from portal.users import actor_label
from recommendations.models import DeviceGroup, Exposure, SecurityRecommendation
from recommendations.selectors import (
    device_group_ids_for_user,
    excepted_device_group_ids,
    user_sees_all_device_groups,
)
from recommendations.services import recommendation_lock

from ..hooks import integration
from ..models import ActivityDevice, ActivityEvent, Priority, RemediationActivity, RemediationOption
from ..rules import options_for_recommendation, title_and_description

logger = logging.getLogger(__name__)

INSERT_BATCH = 5000
NOTIFY_NEW_TASK = "remediation.notify_new_activity"


def _record_event(
    activity: RemediationActivity, *, kind: str, user=None, notes: str = "", label: str | None = None
) -> ActivityEvent:
    return ActivityEvent.objects.create(
        activity=activity, kind=kind, notes=notes, **ActivityEvent.by(user, label=label)
    )


def target_exposures(*, recommendation: SecurityRecommendation, device_groups: Iterable[DeviceGroup]):
    """Open exposures in the given groups, minus the groups an active exception covers.

    Returns (queryset, reason) where reason says why it is empty when an exception is the cause.
    """
    group_ids = {g.pk for g in device_groups}
    excepted = excepted_device_group_ids(recommendation=recommendation)
    if excepted is None:
        return Exposure.objects.none(), _("a global exception is active for this recommendation")
    targeted = group_ids - excepted
    qs = Exposure.objects.filter(
        recommendation=recommendation,
        remediated_at__isnull=True,
        device__device_group_id__in=targeted,
    )
    reason = _("every selected device group is covered by an active exception") if not targeted else ""
    return qs, reason


@transaction.atomic
def activity_create(
    *,
    user,
    recommendation: SecurityRecommendation,
    remediation_option: str,
    priority: str,
    device_groups: Iterable[DeviceGroup],
    due_on: dt.date | None = None,
    requester_notes: str = "",
    create_intune_task: bool = False,
    confirm_duplicate: bool = False,
) -> RemediationActivity:
    """File a remediation request. Changes no device: it records the activity and its targets.

    A second active activity for the same recommendation and an overlapping device group is
    most likely a mistake (DESIGN.md section 4): ConflictError (409) naming the existing one
    (`extra["existing_activity_id"]`) unless `confirm_duplicate`. The recommendation is locked
    first (recommendation_lock, as exception_create does), so two identical requests never both
    pass that check and an exception filed meanwhile is never bypassed.
    """
    if not perm.user_has(user, perm.ADD_ACTIVITY):
        raise PermissionError_(_("Only security staff can create remediation activities."))

    device_groups = list(device_groups)
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    if remediation_option not in RemediationOption.values:
        add("remediation_option", _('"%(value)s" is not a remediation option.') % {"value": remediation_option})
    elif remediation_option not in options_for_recommendation(recommendation):
        template = (
            _('"%(value)s" does not fit a configuration recommendation; choose one of %(options)s.')
            if recommendation.is_configuration
            else _('"%(value)s" does not fit a software recommendation; choose one of %(options)s.')
        )
        add(
            "remediation_option",
            template % {"value": remediation_option, "options": ", ".join(options_for_recommendation(recommendation))},
        )
    if priority not in Priority.values:
        add("priority", _('"%(value)s" is not a priority; choose high, medium or low.') % {"value": priority})

    if remediation_option == RemediationOption.ATTENTION_REQUIRED:
        if due_on is not None:
            add("due_on", _("Attention-required activities have no due date; leave it empty."))
    elif due_on is None:
        add("due_on", _("A due date is required."))
    elif due_on < timezone.localdate():
        add("due_on", _("The due date must be today or later."))

    if not device_groups:
        add("device_groups", _("Select at least one device group."))
    elif not user_sees_all_device_groups(user):
        visible = set(device_group_ids_for_user(user=user).values_list("pk", flat=True))
        hidden = [g.name for g in device_groups if g.pk not in visible]
        if hidden:  # answered like groups that do not exist (DESIGN.md section 5)
            add("device_groups", _("Unknown device groups: %(names)s.") % {"names": ", ".join(sorted(hidden))})

    if create_intune_task and remediation_option == RemediationOption.ATTENTION_REQUIRED:
        add(
            "create_intune_task",
            _("Attention-required activities have no fix to deploy; an Intune security task cannot be created."),
        )
    elif create_intune_task and not integration().enabled():
        add(
            "create_intune_task",
            integration().unavailable_reason()
            or _("No device-management integration is set up; no task can be created."),
        )

    if errors:
        raise ValidationError(errors=errors)

    recommendation_lock(recommendation=recommendation)
    exposures, reason = target_exposures(recommendation=recommendation, device_groups=device_groups)
    # With each device's name: the rows carry a copy, so device pages sort on an index.
    devices = list(
        exposures.values_list("device_id", "device__computer_dns_name", "device__device_group_id").order_by("device_id")
    )
    if not devices:
        message = (
            _(
                "No device in the selected device groups is exposed to this recommendation (%(reason)s); "
                "there is nothing to remediate."
            )
            % {"reason": reason}
            if reason
            else _(
                "No device in the selected device groups is exposed to this recommendation; "  # noqa: ISC001
                "there is nothing to remediate."
            )
        )
        raise ValidationError(message, field="device_groups")
    if not confirm_duplicate:
        _refuse_duplicate(recommendation=recommendation, device_groups=device_groups)

    title, description = title_and_description(recommendation, remediation_option)
    activity = RemediationActivity.objects.create(
        recommendation=recommendation,
        title=title,
        description=description,
        remediation_option=remediation_option,
        category=(
            RemediationActivity.Category.SECURITY_CONFIGURATION
            if recommendation.is_configuration
            else RemediationActivity.Category.SOFTWARE
        ),
        priority=priority,
        due_on=due_on,
        requester_notes=requester_notes,
        created_by=user,
        requester_email=user.email,
        ticket_status=(
            RemediationActivity.TicketStatus.NONE
            if remediation_option == RemediationOption.ATTENTION_REQUIRED
            else RemediationActivity.TicketStatus.PENDING
        ),
        create_intune_task=create_intune_task,
        target_devices=len(devices),
    )
    activity.device_groups.set(device_groups)
    for start in range(0, len(devices), INSERT_BATCH):
        ActivityDevice.objects.bulk_create(
            [
                ActivityDevice(activity=activity, device_id=pk, device_name=name, scope_group_id=group_id)
                for pk, name, group_id in devices[start : start + INSERT_BATCH]
            ]
        )
    _record_event(activity, kind=ActivityEvent.Kind.CREATED, user=user, notes=requester_notes)

    activity_id = str(activity.pk)
    enqueue_on_commit(NOTIFY_NEW_TASK, activity_id)
    if create_intune_task:
        transaction.on_commit(lambda: integration().activity_created(activity_id=activity_id))
    return activity


def active_duplicate(
    *, recommendation: SecurityRecommendation, device_groups: Iterable[DeviceGroup]
) -> RemediationActivity | None:
    """The newest active activity for this recommendation sharing a device group with `device_groups`."""
    return (
        RemediationActivity.objects.filter(
            recommendation=recommendation,
            status=RemediationActivity.Status.ACTIVE,
            device_groups__in=[g.pk for g in device_groups],
        )
        .order_by("-created_at", "-pk")
        .first()
    )


def _refuse_duplicate(*, recommendation: SecurityRecommendation, device_groups: list[DeviceGroup]) -> None:
    existing = active_duplicate(recommendation=recommendation, device_groups=device_groups)
    if existing is None:
        return
    shared = sorted(set(existing.device_groups.values_list("name", flat=True)) & {g.name for g in device_groups})
    message = ngettext(
        "“%(title)s” is already active for this recommendation and device group %(groups)s. "
        "Confirm to file another request anyway.",
        "“%(title)s” is already active for this recommendation and device groups %(groups)s. "
        "Confirm to file another request anyway.",
        len(shared),
    ) % {"title": existing.title, "groups": ", ".join(shared)}
    raise ConflictError(message, extra={"existing_activity_id": str(existing.pk)})


def _lock(activity: RemediationActivity) -> RemediationActivity:
    """Re-read the activity under a row lock so two deciders cannot both act."""
    return RemediationActivity.objects.select_for_update().get(pk=activity.pk)


_ALREADY_COMPLETED = {
    "approved": _("This activity is already completed; it cannot be approved."),
    "rejected": _("This activity is already completed; it cannot be rejected."),
    "completed again": _("This activity is already completed; it cannot be completed again."),
}
_NO_TICKET = {
    "approved": _("Attention-required activities have no ticket; it cannot be approved."),
    "rejected": _("Attention-required activities have no ticket; it cannot be rejected."),
}
_ALREADY_DECIDED = {
    ("approved", "approved"): _("This request was already approved; it cannot be approved."),
    ("approved", "rejected"): _("This request was already approved; it cannot be rejected."),
    ("rejected", "approved"): _("This request was already rejected; it cannot be approved."),
    ("rejected", "rejected"): _("This request was already rejected; it cannot be rejected."),
}


def _ensure_open(activity: RemediationActivity, action: str) -> None:
    if activity.is_completed:
        raise ConflictError(_ALREADY_COMPLETED[action])


def _decide(*, activity: RemediationActivity, user, notes: str, decision: str) -> RemediationActivity:
    if not perm.user_has(user, perm.DECIDE_ACTIVITY):
        raise PermissionError_(_("Only IT staff can approve or reject remediation requests."))
    verb = "approved" if decision == RemediationActivity.TicketStatus.APPROVED else "rejected"
    activity = _lock(activity)
    _ensure_open(activity, verb)
    if activity.is_attention_required:
        raise ConflictError(_NO_TICKET[verb])
    if activity.ticket_status != RemediationActivity.TicketStatus.PENDING:
        raise ConflictError(
            _ALREADY_DECIDED.get((activity.ticket_status, verb))
            or f"This request was already {activity.ticket_status}; it cannot be {verb}."
        )
    if decision == RemediationActivity.TicketStatus.APPROVED and activity.created_by_id == user.pk:
        raise PermissionError_(_("You filed this request; someone else must approve it."))
    if decision == RemediationActivity.TicketStatus.REJECTED and not notes.strip():
        raise ValidationError(_("Notes are required to reject a request."), field="notes")

    activity.ticket_status = decision
    activity.it_notes = notes
    activity.save(update_fields=["ticket_status", "it_notes"])
    _record_event(activity, kind=decision, user=user, notes=notes)
    integration().decision_taken(activity=activity, decision=decision, note=notes)
    return activity


@transaction.atomic
def activity_approve(*, activity: RemediationActivity, user, notes: str = "") -> RemediationActivity:
    return _decide(activity=activity, user=user, notes=notes, decision=RemediationActivity.TicketStatus.APPROVED)


@transaction.atomic
def activity_reject(*, activity: RemediationActivity, user, notes: str = "") -> RemediationActivity:
    return _decide(activity=activity, user=user, notes=notes, decision=RemediationActivity.TicketStatus.REJECTED)


@transaction.atomic
def activity_complete(*, activity: RemediationActivity, user, notes: str = "") -> RemediationActivity:
    """A person marks the activity complete (method manual)."""
    if not perm.user_has(user, perm.COMPLETE_ACTIVITY):
        raise PermissionError_(_("You may not mark remediation activities complete."))
    activity = _lock(activity)
    _ensure_open(activity, "completed again")
    activity.status = RemediationActivity.Status.COMPLETED
    activity.completion_method = RemediationActivity.CompletionMethod.MANUAL
    activity.completed_by = user
    activity.completer_email = actor_label(user)
    activity.completed_at = timezone.now()
    activity.save(update_fields=["status", "completion_method", "completed_by", "completer_email", "completed_at"])
    _record_event(activity, kind=ActivityEvent.Kind.COMPLETED, user=user, notes=notes)
    integration().decision_taken(activity=activity, decision="completed", note=notes)
    return activity


@transaction.atomic
def activity_complete_from_intune(
    *, activity: RemediationActivity, completer: str, notes: str = ""
) -> RemediationActivity:
    """Intune reports the task completed: manual completion by the assignee (or 'Intune')."""
    activity = _lock(activity)
    if activity.is_completed:
        return activity
    activity.status = RemediationActivity.Status.COMPLETED
    activity.completion_method = RemediationActivity.CompletionMethod.MANUAL
    activity.completer_email = completer or "Intune"
    activity.completed_at = timezone.now()
    activity.save(update_fields=["status", "completion_method", "completer_email", "completed_at"])
    _record_event(activity, kind=ActivityEvent.Kind.COMPLETED, label=activity.completer_email, notes=notes)
    return activity


@transaction.atomic
def activity_set_ticket_from_intune(
    *, activity: RemediationActivity, decision: str, notes: str = "", actor_label: str = "Intune"
) -> bool:
    """Intune reports a decision. Returns True when it changed the activity (once per change)."""
    activity = _lock(activity)
    if activity.is_completed or activity.is_attention_required or activity.ticket_status == decision:
        return False
    activity.ticket_status = decision
    if notes:
        activity.it_notes = notes
    activity.save(update_fields=["ticket_status", "it_notes"])
    _record_event(activity, kind=decision, label=actor_label, notes=notes)
    return True
