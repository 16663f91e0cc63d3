"""The sync: push new tasks, send back the portal's decisions, read the open tasks' statuses.

Activity changes coming from Intune go through remediation.services (one event per change, once).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from portal.locks import job_lock
from remediation.models import RemediationActivity
from remediation.services import activity_complete_from_intune, activity_set_ticket_from_intune

from ..graph import GraphAuthError, GraphClient, GraphError, GraphNotConfigured, GraphStopped
from ..models import IntuneTask
from .connection import intune_enabled, remember_sync
from .push import client_for_sync, intune_push, record_failure

SYNC_LOCK = "intune_sync"
SYNC_LOCK_TIMEOUT = 30 * 60
ACTOR_INTUNE = "Intune"


@dataclass
class SyncResult:
    skipped: bool = False  # another run held the lock
    disabled: bool = False  # the toggle was off at the start
    stopped: bool = False  # the toggle was turned off while running
    pushed: int = 0
    recovered: int = 0
    sent_back: int = 0
    pulled: int = 0
    changed: int = 0
    failures: list[str] = field(default_factory=list)
    fatal: str = ""

    @property
    def ok(self) -> bool:
        return not self.fatal and not self.failures

    def summary(self) -> str:
        if self.skipped:
            return "Another Intune sync is running; this run did nothing."
        if self.disabled:
            return "The Microsoft Intune connection is off; nothing was sent."
        if self.fatal:
            return f"Intune sync failed: {self.fatal}"
        text = (
            f"Intune sync: {self.pushed} task(s) created, {self.recovered} recovered, "
            f"{self.sent_back} decision(s) sent back, {self.pulled} task(s) read, {self.changed} activity change(s)"
        )
        if self.stopped:
            text += "; stopped because the connection was turned off"
        if self.failures:
            text += f"; {len(self.failures)} failure(s), first: {self.failures[0].rstrip('.')}"
        return text + "."


class _Fatal(Exception):
    """Stops the whole run (credentials refused, toggle turned off)."""


def _send_back(task: IntuneTask, client: GraphClient) -> bool:
    status, note = task.pending_status, task.pending_note
    try:
        client.update_status(task.graph_id, status=status, note=note)
    except GraphStopped:
        raise
    except GraphError as exc:
        record_failure(task, exc.message, keep_started=True)
        raise
    # Clear only what was sent: a newer decision taken meanwhile stays pending.
    IntuneTask.objects.filter(pk=task.pk, pending_status=status, pending_note=note).update(
        pending_status="", pending_note="", status=status, last_synced_at=timezone.now(), last_error="", attempts=0
    )
    return True


def _pull(task: IntuneTask, client: GraphClient) -> bool:
    """Read the task's status from Graph and apply it to the activity. True if the activity changed."""
    try:
        data = client.get_task(task.graph_id)
    except GraphStopped:
        raise
    except GraphError as exc:
        record_failure(task, exc.message, keep_started=True)
        raise
    status = str(data.get("status") or "")
    assigned_to = str(data.get("assignedTo") or "").strip()
    changed = False
    with transaction.atomic():
        IntuneTask.objects.filter(pk=task.pk).update(
            status=status, last_synced_at=timezone.now(), last_error="", attempts=0
        )
        activity = task.activity
        if status == "active":
            changed = activity_set_ticket(activity, "approved", assigned_to)
        elif status == "rejected":
            changed = activity_set_ticket(activity, "rejected", assigned_to)
        elif status == "completed":
            was_completed = RemediationActivity.objects.filter(pk=activity.pk, status="completed").exists()
            activity_complete_from_intune(
                activity=activity, completer=assigned_to or ACTOR_INTUNE, notes="Completed in Microsoft Intune."
            )
            changed = not was_completed
    return changed


def activity_set_ticket(activity: RemediationActivity, decision: str, assigned_to: str) -> bool:
    return activity_set_ticket_from_intune(
        activity=activity,
        decision=decision,
        notes=f"{decision.capitalize()} in Microsoft Intune.",
        actor_label=assigned_to or ACTOR_INTUNE,
    )


# --- the sync -----------------------------------------------------------------------------------
def _activities_to_push():
    return (
        RemediationActivity.objects.filter(create_intune_task=True, status=RemediationActivity.Status.ACTIVE)
        .exclude(intune_task__graph_id__gt="")
        .order_by("created_at")
        .values_list("pk", flat=True)
    )


def _tasks_to_send_back():
    return IntuneTask.objects.exclude(graph_id="").exclude(pending_status="").select_related("activity")


def _tasks_to_pull():
    return (
        IntuneTask.objects.exclude(graph_id="")
        .filter(pending_status="", activity__status=RemediationActivity.Status.ACTIVE)
        .select_related("activity")
    )


def _run(result: SyncResult, client: GraphClient, *, activity_id=None) -> None:
    """Push new tasks, send back pending decisions, then read the open tasks.

    A task created (or found again) in this run is not read back: Graph's answer already carried it.
    """
    push_ids = list(_activities_to_push() if activity_id is None else _activities_to_push().filter(pk=activity_id))
    just_pushed: set = set()

    def push_one(pk):
        task = intune_push(activity_id=pk, client=client)
        if _count_push(result, task):
            just_pushed.add(str(pk))

    for pk in push_ids:
        _step(result, lambda pk=pk: push_one(pk))

    send_back = _tasks_to_send_back() if activity_id is None else _tasks_to_send_back().filter(activity_id=activity_id)
    for task in send_back.iterator():
        _step(result, lambda task=task: _bump(result, "sent_back", _send_back(task, client)))

    pull = _tasks_to_pull() if activity_id is None else _tasks_to_pull().filter(activity_id=activity_id)
    for task in pull.iterator():
        if str(task.activity_id) in just_pushed:
            continue

        def pull_one(task=task):
            changed = _pull(task, client)
            result.pulled += 1
            result.changed += int(changed)

        _step(result, pull_one)


def _count_push(result: SyncResult, task: IntuneTask | None) -> bool:
    """Count a push; True if it created or found the task in Graph just now."""
    outcome = getattr(task, "push_outcome", "")
    if outcome == "recovered":
        result.recovered += 1
    elif outcome == "created":
        result.pushed += 1
    return bool(outcome)


def _bump(result: SyncResult, name: str, done: bool) -> None:
    setattr(result, name, getattr(result, name) + int(done))


def _step(result: SyncResult, action) -> None:
    """One task's work: its failure is recorded and the sync goes on; auth failures and the toggle stop it."""
    try:
        action()
    except GraphStopped as exc:
        result.stopped = True
        raise _Fatal(exc.message) from exc
    except (GraphAuthError, GraphNotConfigured) as exc:
        result.fatal = exc.message
        raise _Fatal(exc.message) from exc
    except GraphError as exc:
        result.failures.append(exc.message)


def intune_sync() -> SyncResult:
    """One sync run (the `intune_sync` command and the `intune.sync` Celery task).

    Two overlapping runs never both act (job lock). Nothing is sent while the connection is off,
    and turning it off mid-run stops further calls.
    """
    with job_lock(SYNC_LOCK, timeout=SYNC_LOCK_TIMEOUT) as acquired:
        if not acquired:
            return SyncResult(skipped=True)
        result = _sync_once()
    remember_sync(result)
    return result


def intune_sync_activity(*, activity_id) -> SyncResult:
    """The same work for one activity (the activity page's *Retry now*).

    Under the sync's lock: while a sync runs, *Retry now* does nothing (that sync handles the
    activity), so the two never push or send back the same task at once.
    """
    with job_lock(SYNC_LOCK, timeout=SYNC_LOCK_TIMEOUT) as acquired:
        if not acquired:
            return SyncResult(skipped=True)
        result = _sync_once(activity_id=activity_id)
    remember_sync(result)
    return result


def _sync_once(*, activity_id=None) -> SyncResult:
    result = SyncResult()
    if not intune_enabled():
        result.disabled = True
        return result
    try:
        client = client_for_sync()
    except GraphNotConfigured as exc:
        result.fatal = exc.message
        return result
    try:
        _run(result, client, activity_id=activity_id)
    except _Fatal:
        pass
    finally:
        client.close()
    return result
