"""Intune as remediation's integration (remediation.hooks): registered in IntuneConfig.ready()."""

from __future__ import annotations

from portal.queue import enqueue
from remediation.hooks import Integration, Panel

from .models import IntuneTask
from .services import intune_enabled, intune_task_record_decision

PUSH_TASK = "intune.push_activity"


class IntuneBackend(Integration):
    def enabled(self) -> bool:
        return intune_enabled()

    def unavailable_reason(self) -> str:
        if intune_enabled():
            return ""
        return "The Microsoft Intune connection is off; an Intune security task cannot be created."

    def activity_created(self, *, activity_id: str) -> None:
        enqueue(PUSH_TASK, activity_id)

    def decision_taken(self, *, activity, decision: str, note: str = "") -> None:
        intune_task_record_decision(activity=activity, decision=decision, note=note)

    def prepare_activities(self, queryset):
        return queryset.select_related("intune_task")

    def activity_status(self, activity) -> IntuneTask | None:
        try:
            return activity.intune_task
        except IntuneTask.DoesNotExist:
            return None

    def panel(self, *, activity, request) -> Panel:
        return Panel(
            "admin/intune/_activity_panel.html",
            {"intune_task": self.activity_status(activity), "intune_enabled": intune_enabled()},
        )
