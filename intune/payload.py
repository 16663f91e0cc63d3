"""The body of an Intune security task (DESIGN.md section 9): mappings, device selection, the JSON.

Nothing here talks to Graph or writes: push.py sends what `task_body` builds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from portal.links import absolute_url
from remediation.models import ActivityDevice, RemediationActivity, RemediationOption

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

GRAPH_MAX_DEVICES_PER_TASK = 10_000


def max_devices_per_task() -> int:
    """INTUNE_MAX_DEVICES_PER_TASK, never above Graph's 10,000 (the setting may only lower it)."""
    return min(settings.INTUNE_MAX_DEVICES_PER_TASK, GRAPH_MAX_DEVICES_PER_TASK)


@dataclass
class Selection:
    device_pks: list[int]
    managed_devices: list[dict]
    without_aad_id: int


def select_devices(activity: RemediationActivity) -> Selection:
    """The exposed target devices Intune can address, at most INTUNE_MAX_DEVICES_PER_TASK, in a stable order."""
    # The setting may lower the limit, never raise it above the contract's 10,000.
    limit = max_devices_per_task()
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
    return Selection(device_pks=pks, managed_devices=managed, without_aad_id=without)


def reference(activity: RemediationActivity) -> str:
    return f"{REFERENCE_PREFIX} {activity.pk}"


def due_date_time(due_on: dt.date | None) -> str | None:
    if due_on is None:
        return None
    end_of_day = dt.datetime.combine(due_on, dt.time(23, 59, 59), tzinfo=timezone.get_current_timezone())
    return end_of_day.isoformat()


def task_body(activity: RemediationActivity, selection: Selection) -> dict:
    """The create body of DESIGN.md section 9."""
    recommendation = activity.recommendation
    description = "\n\n".join(
        part
        for part in (
            activity.description,
            f"Security recommendation: {recommendation.name}",
            f"{reference(activity)}: {absolute_url(activity.get_absolute_url())}",
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
    due = due_date_time(activity.due_on)
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
