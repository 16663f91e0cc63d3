"""Creating an activity's Intune security task, exactly once (DESIGN.md section 9).

The push is marked as started (and committed) before anything is sent, so a push whose
answer was lost is recovered by looking the task up, never repeated.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from portal.locks import job_lock
from portal.users import SYSTEM_LABEL
from remediation.models import ActivityDevice, ActivityEvent, RemediationActivity

from ..graph import GraphClient, GraphError, GraphNoAnswer, GraphNotConfigured, GraphStopped
from ..models import IntuneTask
from ..payload import REFERENCE_PREFIX, Selection, reference, select_devices, task_body
from .connection import DECISION_TO_GRAPH, intune_enabled

logger = logging.getLogger(__name__)

PUSH_LOCK_TIMEOUT = 15 * 60
SENT_UPDATE_BATCH = 2000


def client_for_sync() -> GraphClient:
    return GraphClient.from_settings(should_continue=intune_enabled)


def intune_push(*, activity_id, client: GraphClient | None = None) -> IntuneTask | None:
    """Create the Intune security task of one activity, once. Safe to call again at any time.

    Returns the IntuneTask, or None when there is nothing to do (connection off, activity gone,
    no task asked for, another run pushing it right now).
    """
    if not intune_enabled():
        return None
    with job_lock(f"intune_push:{activity_id}", timeout=PUSH_LOCK_TIMEOUT) as acquired:
        if not acquired:
            return None
        own_client = client is None
        try:
            client = client or client_for_sync()
        except GraphNotConfigured as exc:
            task = _task_for_push(activity_id)
            if task is not None:
                record_failure(task, str(exc.message), keep_started=True)
            raise
        try:
            return _push(activity_id=activity_id, client=client)
        finally:
            if own_client:
                client.close()


def _task_for_push(activity_id) -> IntuneTask | None:
    activity = RemediationActivity.objects.filter(pk=activity_id, create_intune_task=True).first()
    if activity is None:
        return None
    # The total is known from the start, so the panel never reads "0 of 0 devices".
    return IntuneTask.objects.get_or_create(activity=activity, defaults={"devices_total": activity.target_devices})[0]


def _push(*, activity_id, client: GraphClient) -> IntuneTask | None:
    # 1. Mark the push as started and commit, before anything is sent.
    with transaction.atomic():
        activity = (
            RemediationActivity.objects.select_related("recommendation")
            .filter(pk=activity_id, create_intune_task=True)
            .first()
        )
        if activity is None:
            return None
        task = IntuneTask.objects.select_for_update().get_or_create(
            activity=activity, defaults={"devices_total": activity.target_devices}
        )[0]
        if task.graph_id or activity.is_completed:
            return task
        recovering = task.push_started_at is not None
        if not recovering:
            task.push_started_at = timezone.now()
        task.devices_total = activity.target_devices  # so the panel reads "0 of N sent" until it succeeds
        task.save(update_fields=["push_started_at", "devices_total"])

    # Until Graph has answered a create, a failure keeps the mark only if a task may exist already.
    looking_up = recovering
    try:
        selection = select_devices(activity, client)  # the managed-device look-ups
        body = task_body(activity, selection)
        if recovering:
            # A previous push was sent but its answer was lost (crash, timeout): find it, never repeat it.
            found = _find_existing(client, activity, body)
            if found is not None:
                return _store_created(task, activity, found, selection, recovered=True)
            looking_up = False
        created = client.create_task(body)
    except GraphNoAnswer as exc:
        record_failure(task, exc.message, keep_started=True)
        raise
    except GraphStopped:
        raise
    except GraphError as exc:
        # Graph answered the create with an error, so no task exists and the next push starts
        # afresh. A failed look-up keeps the mark: the task may still exist.
        record_failure(task, exc.message, keep_started=looking_up)
        raise
    return _store_created(task, activity, created, selection, recovered=False)


def _find_existing(client: GraphClient, activity: RemediationActivity, body: dict) -> dict | None:
    candidates = client.find_tasks(display_name=body["displayName"], creator=body["creator"])
    ids = [str(c["id"]) for c in candidates if c.get("id")]
    known = set(IntuneTask.objects.filter(graph_id__in=ids).values_list("graph_id", flat=True))  # other activities'
    candidates = [c for c in candidates if c.get("id") and str(c["id"]) not in known]
    marker = reference(activity)
    ours = [c for c in candidates if marker in (c.get("description") or "")]
    if ours:
        return ours[0]
    # A task without any portal reference (a Graph that does not echo descriptions) is ours too.
    unmarked = [c for c in candidates if REFERENCE_PREFIX not in (c.get("description") or "")]
    return unmarked[0] if unmarked else None


def _store_created(
    task: IntuneTask, activity: RemediationActivity, created: dict, selection: Selection, *, recovered: bool
) -> IntuneTask:
    now = timezone.now()
    with transaction.atomic():
        task = IntuneTask.objects.select_for_update().get(pk=task.pk)
        task.graph_id = str(created["id"])
        task.status = created.get("status") or "pending"
        task.devices_sent = len(selection.device_pks)
        task.devices_total = activity.target_devices
        task.devices_without_aad_id = selection.without_aad_id
        task.devices_not_managed = selection.not_managed
        task.last_pushed_at = now
        task.last_synced_at = now
        task.last_error = ""
        task.attempts = 0
        # A decision taken in the portal before the task existed still has to reach Intune.
        current = RemediationActivity.objects.only("ticket_status", "status").get(pk=activity.pk)
        if not task.pending_status:
            if current.is_completed:
                task.pending_status = "completed"
            elif current.ticket_status in ("approved", "rejected"):
                task.pending_status = DECISION_TO_GRAPH[current.ticket_status]
                task.pending_note = RemediationActivity.objects.values_list("it_notes", flat=True).get(pk=activity.pk)
        task.save()
        for start in range(0, len(selection.device_pks), SENT_UPDATE_BATCH):
            ActivityDevice.objects.filter(pk__in=selection.device_pks[start : start + SENT_UPDATE_BATCH]).update(
                sent_to_intune=True
            )
        sent = f"{task.devices_sent:,} of {task.devices_total:,} devices sent"
        if task.devices_not_managed:
            sent += f"; {task.devices_not_managed:,} not managed by Intune were not sent"
        if task.devices_without_aad_id:
            sent += f"; {task.devices_without_aad_id:,} without an Entra ID device ID were not sent"
        ActivityEvent.objects.create(
            activity=activity,
            kind=ActivityEvent.Kind.INTUNE_TASK_CREATED,
            actor_label=SYSTEM_LABEL,
            notes=f"Intune security task {task.graph_id} {'found again' if recovered else 'created'} ({sent}).",
        )
    task.push_outcome = "recovered" if recovered else "created"
    return task


def record_failure(task: IntuneTask, message: str, *, keep_started: bool) -> None:
    """Store the error on the task (shown in the admin); an event marks the start of a failure streak."""
    with transaction.atomic():
        locked = IntuneTask.objects.select_for_update().get(pk=task.pk)
        first_failure = not locked.last_error
        locked.last_error = message[:2000]
        locked.attempts += 1
        if not keep_started and not locked.graph_id:
            locked.push_started_at = None
        locked.save(update_fields=["last_error", "attempts", "push_started_at"])
        if first_failure:
            ActivityEvent.objects.create(
                activity_id=locked.activity_id,
                kind=ActivityEvent.Kind.INTUNE_ERROR,
                actor_label=SYSTEM_LABEL,
                notes=message[:2000],
            )
    logger.warning("Intune task of activity %s: %s", task.activity_id, message)
