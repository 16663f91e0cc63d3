"""Every write about Intune: the connection toggle, and the security tasks' push, pull and send-back."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from portal.errors import PermissionError_

from .models import IntuneConnection, IntuneTask


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


def intune_task_record_decision(*, activity, decision: str, note: str = "") -> None:
    """Remember a portal decision so the next sync sends it back with updateStatus.

    Runs inside the caller's transaction. Graph status values: approved -> active,
    rejected -> rejected, completed -> completed.
    """
    graph_status = {"approved": "active", "rejected": "rejected", "completed": "completed"}[decision]
    IntuneTask.objects.filter(activity=activity).update(pending_status=graph_status, pending_note=note)
