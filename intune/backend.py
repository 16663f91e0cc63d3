"""Intune as remediation's integration (remediation.hooks): registered in IntuneConfig.ready()."""

from __future__ import annotations

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from portal.formatting import grouped
from portal.queue import enqueue
from remediation.hooks import Integration, Panel

from .models import IntuneTask
from .payload import max_devices_per_task
from .services import intune_enabled, intune_task_record_decision, intune_unavailable_reason

PUSH_TASK = "intune.push_activity"


def _devices(count: int) -> str:
    return ngettext("%(count)s device", "%(count)s devices", count) % {"count": grouped(count)}


def devices_sent_summary(task: IntuneTask, activity) -> tuple[str, list[str]]:
    """The panel's sentence about the devices sent, and what was not sent and why.

    The total is the activity's target devices (never "0 of 0"): a task row made before its first
    push knows it from the activity.
    """
    total = task.devices_total or activity.target_devices
    sent = task.devices_sent
    if not total:
        sentence = _("No device was sent to Intune.")
    elif sent < total:
        sentence = _("Only %(sent)s of %(devices)s were sent to Intune.") % {
            "sent": grouped(sent),
            "devices": _devices(total),
        }
    else:
        sentence = _("%(sent)s of %(devices)s were sent to Intune.") % {
            "sent": grouped(sent),
            "devices": _devices(total),
        }
    notes = []
    if task.graph_id and sent >= max_devices_per_task() and sent < total:
        notes.append(
            _("At most %(count)s devices are sent to Intune with one task.")
            % {"count": grouped(max_devices_per_task())}
        )
    if task.devices_not_managed:
        count = task.devices_not_managed
        notes.append(
            ngettext(
                "%(count)s device is not managed by Intune and was not sent.",
                "%(count)s devices are not managed by Intune and were not sent.",
                count,
            )
            % {"count": grouped(count)}
        )
    if task.devices_without_aad_id:
        count = task.devices_without_aad_id
        notes.append(
            ngettext(
                "%(count)s device has no Entra ID device ID and was not sent to Intune.",
                "%(count)s devices have no Entra ID device ID and were not sent to Intune.",
                count,
            )
            % {"count": grouped(count)}
        )
    return sentence, notes


class IntuneBackend(Integration):
    def enabled(self) -> bool:
        """A task can be asked for: the connection is on and its credentials are configured."""
        return not intune_unavailable_reason()

    def unavailable_reason(self) -> str:
        return intune_unavailable_reason()

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
        task = self.activity_status(activity)
        sentence, notes = devices_sent_summary(task, activity) if task is not None else ("", [])
        return Panel(
            "admin/intune/_activity_panel.html",
            {
                "intune_task": task,
                "intune_enabled": intune_enabled(),
                "devices_sent": sentence,
                "devices_not_sent": notes,
            },
        )
