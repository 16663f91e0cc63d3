"""The Intune connection: the toggle, whether it is on, the last sync, a test of the credentials.

Reads never write: the connection row exists once a superuser has set the toggle; until then
the connection is off.
"""

from __future__ import annotations

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from portal.errors import PermissionError_

from ..graph import GraphClient, GraphError, GraphNotConfigured, credentials_configured
from ..models import IntuneConnection, IntuneTask

LAST_SYNC_CACHE_KEY = "intune:last_sync"
# A decision taken in the portal, as Graph's task status (see intune_task_record_decision).
DECISION_TO_GRAPH = {"approved": "active", "rejected": "rejected", "completed": "completed"}


@transaction.atomic
def intune_connection_set(*, user, enabled: bool) -> IntuneConnection:
    """Turn the Intune connection on or off. Only superusers may."""
    if not user.is_superuser:
        raise PermissionError_(_("Only superusers may change the Microsoft Intune connection."))
    connection = IntuneConnection.objects.select_for_update().get_or_create(pk=1)[0]
    if connection.enabled != enabled:
        connection.enabled = enabled
        connection.changed_by = user
        connection.changed_at = timezone.now()
        connection.save()
    return connection


def intune_enabled() -> bool:
    """Read fresh from the database each time, so turning the toggle off stops a running sync."""
    return IntuneConnection.load().enabled


CONNECTION_OFF = _("The Microsoft Intune connection is off; an Intune security task cannot be created.")
CREDENTIALS_MISSING = _(
    "The Microsoft Intune connection is on, but its credentials are not configured (INTUNE_TENANT_ID, "
    "INTUNE_CLIENT_ID and INTUNE_CLIENT_SECRET): an Intune security task cannot be created until an "
    "administrator sets them."
)


def intune_unavailable_reason() -> str:
    """Why requests cannot ask for an Intune security task now ("" while they can).

    The one home of the rule "a task can be asked for": the connection is on and the credentials
    are configured. The request form, the API and the Advanced features page all say this.
    """
    if not intune_enabled():
        return CONNECTION_OFF
    if not credentials_configured():
        return CREDENTIALS_MISSING
    return ""


def intune_task_record_decision(*, activity, decision: str, note: str = "") -> None:
    """Remember a portal decision so the next sync sends it back with updateStatus.

    Runs inside the caller's transaction. Graph status values: approved -> active,
    rejected -> rejected, completed -> completed.
    """
    graph_status = DECISION_TO_GRAPH[decision]
    IntuneTask.objects.filter(activity=activity).update(pending_status=graph_status, pending_note=note)


def remember_sync(result) -> None:
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
