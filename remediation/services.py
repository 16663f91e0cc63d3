"""Every write to remediation activities. The admin, the API, tasks and commands call these."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from portal.errors import ConflictError, PermissionError_, ValidationError
from recommendations.models import DeviceGroup, Exposure, SecurityRecommendation
from recommendations.selectors import (
    device_group_ids_for_user,
    excepted_device_group_ids,
    user_sees_all_device_groups,
)

from .models import (
    SYSTEM_LABEL,
    ActivityDevice,
    ActivityEvent,
    Priority,
    RemediationActivity,
    RemediationOption,
)

logger = logging.getLogger(__name__)

SOFTWARE_OPTIONS = {
    RemediationOption.SOFTWARE_UPDATE,
    RemediationOption.SOFTWARE_UNINSTALL,
    RemediationOption.ATTENTION_REQUIRED,
}
CONFIGURATION_OPTIONS = {RemediationOption.CONFIGURATION_CHANGE, RemediationOption.ATTENTION_REQUIRED}
INSERT_BATCH = 5000


def user_label(user) -> str:
    """How a person is named in history and exports: their email, else their username."""
    if user is None:
        return SYSTEM_LABEL
    return user.email or user.get_username()


def options_for_recommendation(recommendation: SecurityRecommendation) -> list[str]:
    """The remediation options that fit a recommendation, in the order the form offers them."""
    if recommendation.is_configuration:
        return [RemediationOption.CONFIGURATION_CHANGE, RemediationOption.ATTENTION_REQUIRED]
    return [
        RemediationOption.SOFTWARE_UPDATE,
        RemediationOption.SOFTWARE_UNINSTALL,
        RemediationOption.ATTENTION_REQUIRED,
    ]


def _title_and_description(recommendation: SecurityRecommendation, option: str) -> tuple[str, str]:
    # Defender's relatedComponent is the readable name ("Microsoft Silverlight"); productName
    # and vendor are identifiers ("silverlight", "microsoft").
    software = recommendation.related_component or " ".join(
        part for part in (recommendation.vendor, recommendation.product_name) if part
    )
    software = software or recommendation.name
    if option == RemediationOption.SOFTWARE_UPDATE:
        version = f" to version {recommendation.recommended_version}" if recommendation.recommended_version else ""
        return recommendation.name, f"Update {software}{version}."
    if option == RemediationOption.SOFTWARE_UNINSTALL:
        title = (
            recommendation.name
            if recommendation.remediation_type == SecurityRecommendation.RemediationType.UNINSTALL
            else f"Uninstall {software}"
        )
        return title, f"Uninstall {software} from the affected devices."
    if option == RemediationOption.CONFIGURATION_CHANGE:
        return recommendation.name, f"Apply the configuration change: {recommendation.name}."
    return (
        f"Attention required: {recommendation.name}",
        f"No direct fix is available for {recommendation.name}; review the affected devices.",
    )


def _record_event(
    activity: RemediationActivity, *, kind: str, user=None, notes: str = "", label: str | None = None
) -> ActivityEvent:
    return ActivityEvent.objects.create(
        activity=activity,
        kind=kind,
        actor=user,
        actor_label=label or user_label(user),
        notes=notes,
    )


def _intune_enabled() -> bool:
    from intune.models import IntuneConnection

    return IntuneConnection.load().enabled


def target_exposures(*, recommendation: SecurityRecommendation, device_groups: Iterable[DeviceGroup]):
    """Open exposures in the given groups, minus the groups an active exception covers.

    Returns (queryset, reason) where reason says why it is empty when an exception is the cause.
    """
    group_ids = {g.pk for g in device_groups}
    excepted = excepted_device_group_ids(recommendation=recommendation)
    if excepted is None:
        return Exposure.objects.none(), "a global exception is active for this recommendation"
    targeted = group_ids - excepted
    qs = Exposure.objects.filter(
        recommendation=recommendation,
        remediated_at__isnull=True,
        device__device_group_id__in=targeted,
    )
    reason = "every selected device group is covered by an active exception" if not targeted else ""
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
) -> RemediationActivity:
    """File a remediation request. Changes no device: it records the activity and its targets."""
    if not user.has_perm("remediation.add_remediationactivity"):
        raise PermissionError_("Only security staff can create remediation activities.")

    device_groups = list(device_groups)
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    if remediation_option not in RemediationOption.values:
        add("remediation_option", f'"{remediation_option}" is not a remediation option.')
    elif remediation_option not in options_for_recommendation(recommendation):
        kind = "configuration" if recommendation.is_configuration else "software"
        add(
            "remediation_option",
            f'"{remediation_option}" does not fit a {kind} recommendation; choose one of '
            + ", ".join(options_for_recommendation(recommendation))
            + ".",
        )
    if priority not in Priority.values:
        add("priority", f'"{priority}" is not a priority; choose high, medium or low.')

    if remediation_option == RemediationOption.ATTENTION_REQUIRED:
        if due_on is not None:
            add("due_on", "Attention-required activities have no due date; leave it empty.")
    elif due_on is None:
        add("due_on", "A due date is required.")
    elif due_on < timezone.localdate():
        add("due_on", "The due date must be today or later.")

    if not device_groups:
        add("device_groups", "Select at least one device group.")
    elif not user_sees_all_device_groups(user):
        visible = set(device_group_ids_for_user(user=user).values_list("pk", flat=True))
        hidden = [g.name for g in device_groups if g.pk not in visible]
        if hidden:
            add("device_groups", "You may not target these device groups: " + ", ".join(sorted(hidden)) + ".")

    if create_intune_task and remediation_option == RemediationOption.ATTENTION_REQUIRED:
        add(
            "create_intune_task",
            "Attention-required activities have no fix to deploy; an Intune security task cannot be created.",
        )
    elif create_intune_task and not _intune_enabled():
        add(
            "create_intune_task",
            "The Microsoft Intune connection is off; an Intune security task cannot be created.",
        )

    if errors:
        raise ValidationError(errors=errors)

    exposures, reason = target_exposures(recommendation=recommendation, device_groups=device_groups)
    device_ids = list(exposures.values_list("device_id", flat=True).order_by("device_id"))
    if not device_ids:
        why = f" ({reason})" if reason else ""
        raise ValidationError(
            "No device in the selected device groups is exposed to this recommendation"
            f"{why}; there is nothing to remediate.",
            field="device_groups",
        )

    title, description = _title_and_description(recommendation, remediation_option)
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
        target_devices=len(device_ids),
    )
    activity.device_groups.set(device_groups)
    for start in range(0, len(device_ids), INSERT_BATCH):
        ActivityDevice.objects.bulk_create(
            [ActivityDevice(activity=activity, device_id=d) for d in device_ids[start : start + INSERT_BATCH]]
        )
    _record_event(activity, kind=ActivityEvent.Kind.CREATED, user=user, notes=requester_notes)

    activity_id = str(activity.pk)
    transaction.on_commit(lambda: _queue_after_create(activity_id, create_intune_task))
    return activity


def _queue_after_create(activity_id: str, create_intune_task: bool) -> None:
    from remediation.tasks import notify_new_activity

    notify_new_activity.delay(activity_id)
    if create_intune_task:
        from intune.tasks import intune_push_activity

        intune_push_activity.delay(activity_id)


def _lock(activity: RemediationActivity) -> RemediationActivity:
    """Re-read the activity under a row lock so two deciders cannot both act."""
    return RemediationActivity.objects.select_for_update().get(pk=activity.pk)


def _ensure_open(activity: RemediationActivity, action: str) -> None:
    if activity.is_completed:
        raise ConflictError(f"This activity is already completed; it cannot be {action}.")


def _decide(*, activity: RemediationActivity, user, notes: str, decision: str) -> RemediationActivity:
    if not user.has_perm("remediation.decide_activity"):
        raise PermissionError_("Only IT staff can approve or reject remediation requests.")
    verb = "approved" if decision == RemediationActivity.TicketStatus.APPROVED else "rejected"
    activity = _lock(activity)
    _ensure_open(activity, verb)
    if activity.is_attention_required:
        raise ConflictError(f"Attention-required activities have no ticket; it cannot be {verb}.")
    if activity.ticket_status != RemediationActivity.TicketStatus.PENDING:
        raise ConflictError(f"This request was already {activity.ticket_status}; it cannot be {verb}.")
    if decision == RemediationActivity.TicketStatus.APPROVED and activity.created_by_id == user.pk:
        raise PermissionError_("You filed this request; someone else must approve it.")
    if decision == RemediationActivity.TicketStatus.REJECTED and not notes.strip():
        raise ValidationError("Notes are required to reject a request.", field="notes")

    activity.ticket_status = decision
    activity.it_notes = notes
    activity.save(update_fields=["ticket_status", "it_notes"])
    _record_event(activity, kind=decision, user=user, notes=notes)
    _send_decision_to_intune(activity, decision=decision, note=notes)
    return activity


def _send_decision_to_intune(activity: RemediationActivity, *, decision: str, note: str) -> None:
    from intune.services import intune_task_record_decision

    intune_task_record_decision(activity=activity, decision=decision, note=note)


@transaction.atomic
def activity_approve(*, activity: RemediationActivity, user, notes: str = "") -> RemediationActivity:
    return _decide(activity=activity, user=user, notes=notes, decision=RemediationActivity.TicketStatus.APPROVED)


@transaction.atomic
def activity_reject(*, activity: RemediationActivity, user, notes: str = "") -> RemediationActivity:
    return _decide(activity=activity, user=user, notes=notes, decision=RemediationActivity.TicketStatus.REJECTED)


@transaction.atomic
def activity_complete(*, activity: RemediationActivity, user, notes: str = "") -> RemediationActivity:
    """A person marks the activity complete (method manual)."""
    if not user.has_perm("remediation.complete_activity"):
        raise PermissionError_("You may not mark remediation activities complete.")
    activity = _lock(activity)
    _ensure_open(activity, "completed again")
    activity.status = RemediationActivity.Status.COMPLETED
    activity.completion_method = RemediationActivity.CompletionMethod.MANUAL
    activity.completed_by = user
    activity.completer_email = user_label(user)
    activity.completed_at = timezone.now()
    activity.save(update_fields=["status", "completion_method", "completed_by", "completer_email", "completed_at"])
    _record_event(activity, kind=ActivityEvent.Kind.COMPLETED, user=user, notes=notes)
    _send_decision_to_intune(activity, decision="completed", note=notes)
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


def default_due_date() -> dt.date:
    return timezone.localdate() + dt.timedelta(days=getattr(settings, "DEFAULT_DUE_DAYS", 14))


# --------------------------------------------------------------------------------------
# Jobs: auto-completion, purge, due-date notifications and their beat schedules.
#
# Every job takes a named lock (portal.locks.job_lock): a second run that starts while the
# first is still working returns {"skipped": True} at once and changes nothing. The lock
# expires after JOB_TIME_LIMIT, the tasks' hard time limit, which is shorter than the
# broker's visibility timeout, so a message redelivered after a killed worker never finds
# the dead run's lock still held. Every job is idempotent and commits in bounded batches,
# so a run killed half-way leaves consistent rows and the next run finishes the work.
# --------------------------------------------------------------------------------------

from collections import defaultdict  # noqa: E402

from django.db.models import Count, Exists, F, OuterRef, Subquery, Value  # noqa: E402
from django.db.models.functions import Coalesce  # noqa: E402

from portal.locks import job_lock  # noqa: E402

from .models import SYSTEM_CONFIRMATION, ActivityNotification  # noqa: E402

JOB_TIME_LIMIT = settings.CELERY_TASK_TIME_LIMIT
REFRESH_BATCH_SIZE = 5000
ACTIVITY_CHUNK = 500


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _update_in_batches(queryset, *, batch_size: int, **values) -> int:
    """UPDATE the rows of `queryset`, at most `batch_size` rows per transaction.

    The matching ids are read once (one scan, not one per batch), then updated chunk by
    chunk; the queryset's filter is applied again inside each UPDATE, so rows that changed
    in the meantime are left alone.
    """
    total = 0
    pks = list(queryset.order_by("pk").values_list("pk", flat=True))
    for chunk in _chunks(pks, batch_size):
        with transaction.atomic():
            total += queryset.filter(pk__in=chunk).update(**values)
    return total


def _refresh_devices(*, recommendation_id: int, activity_ids: list, batch_size: int) -> tuple[int, int]:
    """Align the activities' device rows with the recommendation's exposures. Returns (fixed, reopened)."""
    open_exposure = Exposure.objects.filter(
        recommendation_id=recommendation_id, device_id=OuterRef("device_id"), remediated_at__isnull=True
    )
    exposure_remediated_at = Exposure.objects.filter(
        recommendation_id=recommendation_id, device_id=OuterRef("device_id")
    ).values("remediated_at")[:1]
    rows = ActivityDevice.objects.filter(activity_id__in=activity_ids)
    # No open exposure any more (remediated, or the exposure is gone): the device is fixed,
    # as of the exposure's remediation time (now when the exposure row no longer exists).
    fixed = _update_in_batches(
        rows.filter(status=ActivityDevice.Status.EXPOSED).filter(~Exists(open_exposure)),
        batch_size=batch_size,
        status=ActivityDevice.Status.REMEDIATED,
        remediated_at=Coalesce(Subquery(exposure_remediated_at), Value(timezone.now())),
    )
    # The device is exposed again (the fix was rolled back, the old version reinstalled):
    # the activity is not done on it, so it counts as exposed again.
    reopened = _update_in_batches(
        rows.filter(status=ActivityDevice.Status.REMEDIATED).filter(Exists(open_exposure)),
        batch_size=batch_size,
        status=ActivityDevice.Status.EXPOSED,
        remediated_at=None,
    )
    return fixed, reopened


def _recount_fixed_devices(activity_ids: list) -> int:
    """Set fixed_devices from the device rows, for the activities whose counter is off. Returns how many."""
    remediated = (
        ActivityDevice.objects.filter(activity_id=OuterRef("pk"), status=ActivityDevice.Status.REMEDIATED)
        .order_by()
        .values("activity_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    actual = Coalesce(Subquery(remediated), Value(0))
    changed = 0
    for chunk in _chunks(activity_ids, ACTIVITY_CHUNK):
        with transaction.atomic():
            stale = list(
                RemediationActivity.objects.filter(pk__in=chunk)
                .annotate(actual=actual)
                .exclude(fixed_devices=F("actual"))
                .values_list("pk", flat=True)
            )
            if stale:
                changed += RemediationActivity.objects.filter(pk__in=stale).update(fixed_devices=actual)
    return changed


def _auto_complete(activity_ids: list) -> int:
    """Complete (method automatic) the activities whose every target device is remediated."""
    from intune.services import intune_task_record_decision

    completed = 0
    for chunk in _chunks(activity_ids, ACTIVITY_CHUNK):
        with transaction.atomic():
            ids = list(
                RemediationActivity.objects.select_for_update()
                .filter(
                    pk__in=chunk,
                    status=RemediationActivity.Status.ACTIVE,
                    target_devices__gt=0,
                    fixed_devices=F("target_devices"),
                )
                .exclude(remediation_option=RemediationOption.ATTENTION_REQUIRED)
                .values_list("pk", flat=True)
            )
            if not ids:
                continue
            now = timezone.now()
            completed += RemediationActivity.objects.filter(pk__in=ids).update(
                status=RemediationActivity.Status.COMPLETED,
                completion_method=RemediationActivity.CompletionMethod.AUTOMATIC,
                completed_by=None,
                completer_email=SYSTEM_CONFIRMATION,
                completed_at=now,
            )
            ActivityEvent.objects.bulk_create(
                [
                    ActivityEvent(
                        activity_id=pk,
                        kind=ActivityEvent.Kind.COMPLETED,
                        actor=None,
                        actor_label=SYSTEM_LABEL,
                        notes="Every target device is remediated (System confirmation).",
                        at=now,
                    )
                    for pk in ids
                ]
            )
            for pk in ids:
                intune_task_record_decision(
                    activity=RemediationActivity(pk=pk), decision="completed", note=SYSTEM_CONFIRMATION
                )
    return completed


def activities_refresh_progress(
    *, recommendation_ids: Iterable[int] | None = None, batch_size: int = REFRESH_BATCH_SIZE
) -> dict:
    """Bring the active activities of these recommendations (all when None) up to date with the exposures.

    Device rows whose exposure is no longer open become remediated (at the exposure's
    remediated_at); rows whose device is exposed again go back to exposed; fixed_devices is
    recounted; an activity whose every target device is remediated completes itself
    ("System confirmation"), except attention-required ones, which never auto-complete.
    Works in set-based UPDATEs of at most `batch_size` rows per transaction.
    """
    counts = {
        "skipped": False,
        "activities": 0,
        "devices_remediated": 0,
        "devices_exposed_again": 0,
        "counters_updated": 0,
        "activities_completed": 0,
    }
    if recommendation_ids is not None:
        try:
            recommendation_ids = sorted({int(pk) for pk in recommendation_ids})
        except (TypeError, ValueError):
            raise ValidationError(
                "recommendation_ids must be a list of recommendation ids (integers).", field="recommendation_ids"
            ) from None
    if batch_size < 1:
        raise ValidationError("batch_size must be at least 1.", field="batch_size")

    with job_lock("refresh_activity_progress", timeout=JOB_TIME_LIMIT) as acquired:
        if not acquired:
            return {**counts, "skipped": True}
        active = RemediationActivity.objects.filter(status=RemediationActivity.Status.ACTIVE)
        if recommendation_ids is not None:
            active = active.filter(recommendation_id__in=recommendation_ids)
        by_recommendation: dict[int, list] = defaultdict(list)
        for recommendation_id, pk in active.order_by("recommendation_id", "pk").values_list("recommendation_id", "pk"):
            by_recommendation[recommendation_id].append(pk)
        all_ids = [pk for ids in by_recommendation.values() for pk in ids]
        counts["activities"] = len(all_ids)

        for recommendation_id, ids in by_recommendation.items():
            fixed, reopened = _refresh_devices(
                recommendation_id=recommendation_id, activity_ids=ids, batch_size=batch_size
            )
            counts["devices_remediated"] += fixed
            counts["devices_exposed_again"] += reopened
        counts["counters_updated"] = _recount_fixed_devices(all_ids)
        counts["activities_completed"] = _auto_complete(all_ids)

    logger.info("Activity progress refreshed: %s", counts)
    return counts


def purge_completed_activities(
    *, now: dt.datetime | None = None, dry_run: bool = False, batch_size: int | None = None
) -> dict:
    """Delete the activities completed COMPLETED_ACTIVITY_RETENTION_DAYS days ago or earlier.

    An activity goes once the full retention period has passed since `completed_at`
    (with 180 days: completed 180 days ago goes, 179 days and 23 hours stays). Device rows
    go first, at most `batch_size` per transaction, then the activities with their events,
    notifications and Intune task, a few hundred per transaction. Active activities are
    never touched. `dry_run` only counts.
    """
    batch_size = settings.PURGE_BATCH_SIZE if batch_size is None else batch_size
    if batch_size < 1:
        raise ValidationError("batch_size must be at least 1.", field="batch_size")
    cutoff = (now or timezone.now()) - dt.timedelta(days=settings.COMPLETED_ACTIVITY_RETENTION_DAYS)
    expired = RemediationActivity.objects.filter(status=RemediationActivity.Status.COMPLETED, completed_at__lte=cutoff)
    counts = {"skipped": False, "dry_run": dry_run, "cutoff": cutoff.isoformat(), "activities": 0, "devices": 0}
    if dry_run:
        counts["activities"] = expired.count()
        counts["devices"] = ActivityDevice.objects.filter(activity__in=expired).count()
        logger.info("Purge dry run: %(activities)d activities and %(devices)d devices would be deleted.", counts)
        return counts

    activity_chunk = max(1, min(ACTIVITY_CHUNK, batch_size // 10))
    with job_lock("purge_completed_activities", timeout=JOB_TIME_LIMIT) as acquired:
        if not acquired:
            return {**counts, "skipped": True}
        while True:
            ids = list(expired.order_by("completed_at", "pk").values_list("pk", flat=True)[:activity_chunk])
            if not ids:
                break
            while True:
                pks = list(ActivityDevice.objects.filter(activity_id__in=ids).values_list("pk", flat=True)[:batch_size])
                if not pks:
                    break
                with transaction.atomic():
                    deleted, _ = ActivityDevice.objects.filter(pk__in=pks).delete()
                counts["devices"] += deleted
            with transaction.atomic():
                _, per_model = expired.filter(pk__in=ids).delete()
            counts["activities"] += per_model.get(RemediationActivity._meta.label, 0)
            logger.info("Purge: %(activities)d activities and %(devices)d devices deleted so far.", counts)
    logger.info(
        "Purged %(activities)d activities completed on or before %(cutoff)s and %(devices)d activity devices.",
        counts,
    )
    return counts


def notify_due_activities(*, today: dt.date | None = None) -> dict:
    """Email IT staff about activities due within DUE_SOON_DAYS days and about overdue ones.

    Each kind goes out at most once per activity. Only active activities with a due date
    (so never attention-required ones) and whose request was not rejected. An activity that
    is already overdue when first seen gets the overdue email only.
    """
    today = today or timezone.localdate()
    soon_until = today + dt.timedelta(days=settings.DUE_SOON_DAYS)
    candidates = (
        RemediationActivity.objects.filter(status=RemediationActivity.Status.ACTIVE, due_on__isnull=False)
        .exclude(remediation_option=RemediationOption.ATTENTION_REQUIRED)
        .exclude(ticket_status=RemediationActivity.TicketStatus.REJECTED)
        .select_related("recommendation")
        .prefetch_related("device_groups")
        .order_by("due_on", "pk")
    )
    kinds = [
        (ActivityNotification.Kind.OVERDUE, candidates.filter(due_on__lt=today)),
        (ActivityNotification.Kind.DUE_SOON, candidates.filter(due_on__gte=today, due_on__lte=soon_until)),
    ]
    counts = {"skipped": False, ActivityNotification.Kind.OVERDUE: 0, ActivityNotification.Kind.DUE_SOON: 0}
    from .notifications import notify

    with job_lock("notify_due_activities", timeout=JOB_TIME_LIMIT) as acquired:
        if not acquired:
            return {**counts, "skipped": True}
        for kind, queryset in kinds:
            for activity in queryset.exclude(notifications__kind=kind).iterator(chunk_size=200):
                if notify(activity=activity, kind=kind):
                    counts[kind] += 1
    logger.info("Due-date notifications sent: %s", counts)
    return counts


# Beat entries of DESIGN.md section 10, by name. Only created when missing: a schedule an
# admin edited (or disabled) is kept as it is.
PERIODIC_TASKS = [
    {"name": "intune_sync", "task": "intune.sync", "interval": {"every": 15, "period": "minutes"}},
    {
        "name": "purge_completed_activities",
        "task": "remediation.purge_completed_activities",
        "crontab": {"minute": "30", "hour": "3"},
    },
    {
        "name": "expire_exceptions",
        "task": "recommendations.expire_exceptions",
        "crontab": {"minute": "5", "hour": "*"},
    },
    {
        "name": "notify_due_activities",
        "task": "remediation.notify_due_activities",
        "crontab": {"minute": "0", "hour": "7"},
    },
    {
        # Event-driven after each import; this nightly run is a safety net for missed events.
        "name": "refresh_activity_progress",
        "task": "remediation.refresh_activity_progress",
        "crontab": {"minute": "45", "hour": "2"},
    },
]


def periodic_tasks_setup(*, apps=None) -> dict:
    """Create the missing beat entries of PERIODIC_TASKS, by name. Idempotent; never deletes.

    An existing entry keeps its schedule, arguments and enabled flag (admin edits survive);
    only its task name is corrected if it differs. `apps` is a migration's app registry.
    """
    if apps is None:
        from django.apps import apps
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")

    counts = {"created": 0, "updated": 0, "unchanged": 0}
    with transaction.atomic():
        for entry in PERIODIC_TASKS:
            existing = PeriodicTask.objects.filter(name=entry["name"]).first()
            if existing is not None:
                if existing.task != entry["task"]:
                    existing.task = entry["task"]
                    existing.save(update_fields=["task"])
                    counts["updated"] += 1
                else:
                    counts["unchanged"] += 1
                continue
            schedule = {}
            if "interval" in entry:
                schedule["interval"], _ = IntervalSchedule.objects.get_or_create(**entry["interval"])
            else:
                spec = {"day_of_week": "*", "day_of_month": "*", "month_of_year": "*", **entry["crontab"]}
                schedule["crontab"] = CrontabSchedule.objects.filter(**spec, timezone=settings.TIME_ZONE).first()
                if schedule["crontab"] is None:
                    schedule["crontab"] = CrontabSchedule.objects.create(**spec, timezone=settings.TIME_ZONE)
            PeriodicTask.objects.create(
                name=entry["name"], task=entry["task"], description=entry.get("description", ""), **schedule
            )
            counts["created"] += 1
        if counts["created"] or counts["updated"]:
            # Tell a running beat (DatabaseScheduler) to reload its schedule.
            PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})
    return counts
