"""Every write about Intune: the connection toggle, and the security tasks' push, pull and send-back.

Graph is reached only through `intune.graph`. Activity changes coming from Intune go through
`remediation.services` (one event per change, once).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from portal.errors import PermissionError_
from portal.locks import job_lock
from remediation.models import ActivityDevice, ActivityEvent, RemediationActivity, RemediationOption

from .graph import GraphAuthError, GraphClient, GraphError, GraphNoAnswer, GraphNotConfigured, GraphStopped
from .models import IntuneConnection, IntuneTask

logger = logging.getLogger(__name__)

SYNC_LOCK = "intune_sync"
SYNC_LOCK_TIMEOUT = 30 * 60
PUSH_LOCK_TIMEOUT = 15 * 60
LAST_SYNC_CACHE_KEY = "intune:last_sync"
SENT_UPDATE_BATCH = 2000
ACTOR_INTUNE = "Intune"
REFERENCE_PREFIX = "Remediation portal activity"

PRIORITY_TO_GRAPH = {"high": "high", "medium": "none", "low": "low"}
MITIGATION_TYPE = {
    RemediationOption.SOFTWARE_UPDATE: "update",
    RemediationOption.SOFTWARE_UNINSTALL: "uninstall",
    RemediationOption.CONFIGURATION_CHANGE: "securityConfiguration",
}
ODATA_TYPE = {
    RemediationActivity.Category.SOFTWARE: "#microsoft.graph.appVulnerabilityTask",
    RemediationActivity.Category.SECURITY_CONFIGURATION: "#microsoft.graph.securityConfigurationTask",
}
# A decision taken in the portal, as Graph's task status (see intune_task_record_decision).
DECISION_TO_GRAPH = {"approved": "active", "rejected": "rejected", "completed": "completed"}


# --- the connection toggle ------------------------------------------------------------------
@transaction.atomic
def intune_connection_set(*, user, enabled: bool) -> IntuneConnection:
    """Turn the Intune connection on or off. Only superusers may."""
    if not user.is_superuser:
        raise PermissionError_("Only superusers may change the Microsoft Intune connection.")
    connection = IntuneConnection.objects.select_for_update().get_or_create(pk=1)[0]
    if connection.enabled != enabled:
        connection.enabled = enabled
        connection.changed_by = user
        connection.changed_at = timezone.now()
        connection.save()
    return connection


def intune_enabled() -> bool:
    """Read fresh from the database each time, so turning the toggle off stops a running sync."""
    return IntuneConnection.objects.filter(pk=1, enabled=True).exists()


def intune_task_record_decision(*, activity, decision: str, note: str = "") -> None:
    """Remember a portal decision so the next sync sends it back with updateStatus.

    Runs inside the caller's transaction. Graph status values: approved -> active,
    rejected -> rejected, completed -> completed.
    """
    graph_status = DECISION_TO_GRAPH[decision]
    IntuneTask.objects.filter(activity=activity).update(pending_status=graph_status, pending_note=note)


# --- results ------------------------------------------------------------------------------------
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


# --- push ---------------------------------------------------------------------------------------
GRAPH_MAX_DEVICES_PER_TASK = 10_000


@dataclass
class _Selection:
    device_pks: list[int]
    managed_devices: list[dict]
    without_aad_id: int


def _select_devices(activity: RemediationActivity) -> _Selection:
    """The exposed target devices Intune can address, at most INTUNE_MAX_DEVICES_PER_TASK, in a stable order."""
    # The setting may lower the limit, never raise it above the contract's 10,000.
    limit = min(settings.INTUNE_MAX_DEVICES_PER_TASK, GRAPH_MAX_DEVICES_PER_TASK)
    exposed = ActivityDevice.objects.filter(activity=activity, status=ActivityDevice.Status.EXPOSED)
    rows = (
        exposed.exclude(device__aad_device_id="")
        .order_by("pk")
        .values_list("pk", "device__aad_device_id", "device__computer_dns_name", "device__machine_id")[:limit]
    )
    pks, managed = [], []
    for pk, aad_id, name, machine_id in rows.iterator(chunk_size=2000):
        pks.append(pk)
        managed.append({"id": aad_id, "displayName": name or machine_id})
    without = exposed.filter(device__aad_device_id="").count()
    return _Selection(device_pks=pks, managed_devices=managed, without_aad_id=without)


def _reference(activity: RemediationActivity) -> str:
    return f"{REFERENCE_PREFIX} {activity.pk}"


def _due_date_time(due_on: dt.date | None) -> str | None:
    if due_on is None:
        return None
    end_of_day = dt.datetime.combine(due_on, dt.time(23, 59, 59), tzinfo=timezone.get_current_timezone())
    return end_of_day.isoformat()


def task_body(activity: RemediationActivity, selection: _Selection) -> dict:
    """The create body of DESIGN.md section 9."""
    recommendation = activity.recommendation
    description = "\n\n".join(
        part
        for part in (
            activity.description,
            f"Security recommendation: {recommendation.name}",
            f"{_reference(activity)}: {settings.PORTAL_BASE_URL}/admin/remediation/remediationactivity/{activity.pk}/",
        )
        if part
    )
    if activity.remediation_option in MITIGATION_TYPE:
        mitigation = MITIGATION_TYPE[activity.remediation_option]
    elif activity.category == RemediationActivity.Category.SECURITY_CONFIGURATION:
        mitigation = "securityConfiguration"
    else:
        mitigation = "unknown"
    body: dict = {
        "@odata.type": ODATA_TYPE[activity.category],
        "displayName": activity.title,
        "description": description,
        "category": "advancedThreatProtection",
        "priority": PRIORITY_TO_GRAPH[activity.priority],
        "creator": activity.requester_email,
        "creatorNotes": activity.requester_notes,
        "status": "pending",
        "mitigationType": mitigation,
        "managedDeviceCount": len(selection.managed_devices),
        "managedDevices": selection.managed_devices,
    }
    due = _due_date_time(activity.due_on)
    if due:
        body["dueDateTime"] = due
    if activity.category == RemediationActivity.Category.SOFTWARE:
        app_name = recommendation.product_name or recommendation.related_component
        if app_name:
            body["appName"] = app_name
        if recommendation.vendor:
            body["appPublisher"] = recommendation.vendor
        if activity.remediation_option == RemediationOption.SOFTWARE_UPDATE and recommendation.recommended_version:
            body["appVersion"] = recommendation.recommended_version
    return body


def _client() -> GraphClient:
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
            client = client or _client()
        except GraphNotConfigured as exc:
            task = _task_for_push(activity_id)
            if task is not None:
                _record_failure(task, str(exc.message), keep_started=True)
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
    return IntuneTask.objects.get_or_create(activity=activity)[0]


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
        task = IntuneTask.objects.select_for_update().get_or_create(activity=activity)[0]
        if task.graph_id or activity.is_completed:
            return task
        recovering = task.push_started_at is not None
        if not recovering:
            task.push_started_at = timezone.now()
        task.devices_total = activity.target_devices  # so the panel reads "0 of N sent" until it succeeds
        task.save(update_fields=["push_started_at", "devices_total"])

    selection = _select_devices(activity)
    body = task_body(activity, selection)
    looking_up = recovering
    try:
        if recovering:
            # A previous push was sent but its answer was lost (crash, timeout): find it, never repeat it.
            found = _find_existing(client, activity, body)
            if found is not None:
                return _store_created(task, activity, found, selection, recovered=True)
            looking_up = False
        created = client.create_task(body)
    except GraphNoAnswer as exc:
        _record_failure(task, exc.message, keep_started=True)
        raise
    except GraphStopped:
        raise
    except GraphError as exc:
        # Graph answered the create with an error, so no task exists and the next push starts
        # afresh. A failed look-up keeps the mark: the task may still exist.
        _record_failure(task, exc.message, keep_started=looking_up)
        raise
    return _store_created(task, activity, created, selection, recovered=False)


def _find_existing(client: GraphClient, activity: RemediationActivity, body: dict) -> dict | None:
    candidates = client.find_tasks(display_name=body["displayName"], creator=body["creator"])
    ids = [str(c["id"]) for c in candidates if c.get("id")]
    known = set(IntuneTask.objects.filter(graph_id__in=ids).values_list("graph_id", flat=True))  # other activities'
    candidates = [c for c in candidates if c.get("id") and str(c["id"]) not in known]
    reference = _reference(activity)
    ours = [c for c in candidates if reference in (c.get("description") or "")]
    if ours:
        return ours[0]
    # A task without any portal reference (a Graph that does not echo descriptions) is ours too.
    unmarked = [c for c in candidates if REFERENCE_PREFIX not in (c.get("description") or "")]
    return unmarked[0] if unmarked else None


def _store_created(
    task: IntuneTask, activity: RemediationActivity, created: dict, selection: _Selection, *, recovered: bool
) -> IntuneTask:
    now = timezone.now()
    with transaction.atomic():
        task = IntuneTask.objects.select_for_update().get(pk=task.pk)
        task.graph_id = str(created["id"])
        task.status = created.get("status") or "pending"
        task.devices_sent = len(selection.device_pks)
        task.devices_total = activity.target_devices
        task.devices_without_aad_id = selection.without_aad_id
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
        if task.devices_without_aad_id:
            sent += f"; {task.devices_without_aad_id:,} without an Entra ID device ID were not sent"
        ActivityEvent.objects.create(
            activity=activity,
            kind=ActivityEvent.Kind.INTUNE_TASK_CREATED,
            actor_label="System",
            notes=f"Intune security task {task.graph_id} {'found again' if recovered else 'created'} ({sent}).",
        )
    task.push_outcome = "recovered" if recovered else "created"
    return task


def _record_failure(task: IntuneTask, message: str, *, keep_started: bool) -> None:
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
                actor_label="System",
                notes=message[:2000],
            )
    logger.warning("Intune task of activity %s: %s", task.activity_id, message)


# --- send back and pull ----------------------------------------------------------------------
def _send_back(task: IntuneTask, client: GraphClient) -> bool:
    status, note = task.pending_status, task.pending_note
    try:
        client.update_status(task.graph_id, status=status, note=note)
    except GraphStopped:
        raise
    except GraphError as exc:
        _record_failure(task, exc.message, keep_started=True)
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
        _record_failure(task, exc.message, keep_started=True)
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
            from remediation.services import activity_complete_from_intune

            was_completed = RemediationActivity.objects.filter(pk=activity.pk, status="completed").exists()
            activity_complete_from_intune(
                activity=activity, completer=assigned_to or ACTOR_INTUNE, notes="Completed in Microsoft Intune."
            )
            changed = not was_completed
    return changed


def activity_set_ticket(activity: RemediationActivity, decision: str, assigned_to: str) -> bool:
    from remediation.services import activity_set_ticket_from_intune

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
    """Push new tasks, send back pending decisions, then read the open tasks."""
    push_ids = list(_activities_to_push() if activity_id is None else _activities_to_push().filter(pk=activity_id))
    for pk in push_ids:
        _step(result, lambda pk=pk: _count_push(result, intune_push(activity_id=pk, client=client)))

    send_back = _tasks_to_send_back() if activity_id is None else _tasks_to_send_back().filter(activity_id=activity_id)
    for task in send_back.iterator():
        _step(result, lambda task=task: _bump(result, "sent_back", _send_back(task, client)))

    pull = _tasks_to_pull() if activity_id is None else _tasks_to_pull().filter(activity_id=activity_id)
    for task in pull.iterator():

        def pull_one(task=task):
            changed = _pull(task, client)
            result.pulled += 1
            result.changed += int(changed)

        _step(result, pull_one)


def _count_push(result: SyncResult, task: IntuneTask | None) -> None:
    outcome = getattr(task, "push_outcome", "")
    if outcome == "recovered":
        result.recovered += 1
    elif outcome == "created":
        result.pushed += 1


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
    _remember(result)
    return result


def intune_sync_activity(*, activity_id) -> SyncResult:
    """The same work for one activity (the activity page's *Retry now*)."""
    result = _sync_once(activity_id=activity_id)
    _remember(result)
    return result


def _sync_once(*, activity_id=None) -> SyncResult:
    result = SyncResult()
    if not intune_enabled():
        result.disabled = True
        return result
    try:
        client = _client()
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


def _remember(result: SyncResult) -> None:
    """The last run, for the Advanced features page."""
    if result.skipped:
        return
    cache.set(LAST_SYNC_CACHE_KEY, {"at": timezone.now(), "ok": result.ok, "summary": result.summary()}, 7 * 24 * 3600)


def last_sync() -> dict | None:
    return cache.get(LAST_SYNC_CACHE_KEY)


def intune_test_connection() -> tuple[bool, str]:
    """Token fetch and one read-only GET, for the Advanced features page. Returns (ok, message)."""
    try:
        client = GraphClient.from_settings()
    except GraphNotConfigured as exc:
        return False, exc.message
    try:
        return True, client.test_connection()
    except GraphError as exc:
        return False, exc.message
    finally:
        client.close()
