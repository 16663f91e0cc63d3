"""The body of an Intune security task (DESIGN.md section 9): device selection, mappings, the JSON.

Every property sent is declared by the task's type in Graph's beta metadata (the excerpt in
tests/intune/data/graph-beta-tasks.xml), and every enum value is one of its members:

- every task: `@odata.type`, `displayName`, `description`, `dueDateTime`, `category`, `priority`,
  `creator`, `creatorNotes`, `status`, `insights`, `managedDeviceCount`, `managedDevices`;
- `appVulnerabilityTask` (software): `mitigationType`, `appName`/`appPublisher`/`appVersion` where
  known, `remediation`, `mobileAppCount`;
- `securityConfigurationTask` (configuration): `applicablePlatform`, `endpointSecurityPolicy`,
  `endpointSecurityPolicyProfile`, `intendedSettings` where known; no `mitigationType`, no app fields.

Nothing here writes: push.py sends what `task_body` builds. The only Graph calls are the
managed-device look-ups of `select_devices` (intune.devices).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone, translation

from portal.links import absolute_url
from remediation.models import ActivityDevice, RemediationActivity, RemediationOption
from remediation.rules import app_name, default_due_date, remediation_steps

from . import security_config
from .devices import managed_devices_lookup, normalise_id
from .graph import MANAGED_DEVICE_FILTER_BATCH, GraphClient

REFERENCE_PREFIX = "Remediation portal activity"
# Graph's deviceAppManagementTaskPriority has no "medium": none, high, low.
PRIORITY_TO_GRAPH = {"high": "high", "medium": "none", "low": "low"}
# appVulnerabilityTaskMitigationType, for the software options (configuration tasks have none).
MITIGATION_TYPE = {
    RemediationOption.SOFTWARE_UPDATE: "update",
    RemediationOption.SOFTWARE_UNINSTALL: "uninstall",
}
APP_TASK = "#microsoft.graph.appVulnerabilityTask"
CONFIGURATION_TASK = "#microsoft.graph.securityConfigurationTask"
ODATA_TYPE = {
    RemediationActivity.Category.SOFTWARE: APP_TASK,
    RemediationActivity.Category.SECURITY_CONFIGURATION: CONFIGURATION_TASK,
}

GRAPH_MAX_DEVICES_PER_TASK = 10_000
# Target devices read per database query while selecting: a whole number of look-up batches.
SELECT_CHUNK = MANAGED_DEVICE_FILTER_BATCH * 133


def max_devices_per_task() -> int:
    """INTUNE_MAX_DEVICES_PER_TASK, never above Graph's 10,000 (the setting may only lower it)."""
    return min(settings.INTUNE_MAX_DEVICES_PER_TASK, GRAPH_MAX_DEVICES_PER_TASK)


@dataclass
class Selection:
    device_pks: list[int] = field(default_factory=list)  # the ActivityDevice rows sent
    managed_devices: list[dict] = field(default_factory=list)  # the body's items
    without_aad_id: int = 0  # exposed target devices without an Entra ID device id
    not_managed: int = 0  # looked up, and Intune does not manage them
    platforms: list[str] = field(default_factory=list)  # Defender's osPlatform of each device sent


def select_devices(activity: RemediationActivity, client: GraphClient) -> Selection:
    """The exposed target devices Intune manages, at most `max_devices_per_task()`, in a stable order.

    Devices are looked up in target order until the limit is reached, so a task of 18,511 devices
    looks up about 10,000 of them, not all. Devices beyond the limit are neither looked up nor
    counted as unmanaged.
    """
    limit = max_devices_per_task()
    exposed = ActivityDevice.objects.filter(activity=activity, status=ActivityDevice.Status.EXPOSED)
    selection = Selection(without_aad_id=exposed.filter(device__aad_device_id="").count())
    candidates = exposed.exclude(device__aad_device_id="").order_by("pk")
    seen: set[str] = set()
    last_pk = 0
    while len(seen) < limit:
        # Read no more than the devices still needed (rounded up to a whole look-up batch).
        need = limit - len(seen)
        size = min(SELECT_CHUNK, -(-need // MANAGED_DEVICE_FILTER_BATCH) * MANAGED_DEVICE_FILTER_BATCH)
        rows = list(
            candidates.filter(pk__gt=last_pk).values_list(
                "pk", "device__aad_device_id", "device__computer_dns_name", "device__machine_id", "device__os_platform"
            )[:size]
        )
        if not rows:
            break
        last_pk = rows[-1][0]
        answers = managed_devices_lookup(client, [row[1] for row in rows])
        for pk, aad_id, name, machine_id, os_platform in rows:
            if len(seen) >= limit:
                break
            key = normalise_id(aad_id)
            managed = answers.get(key)
            if managed is None:
                selection.not_managed += 1
                continue
            if key in seen:  # two portal devices that Intune knows as one: it is sent once
                selection.device_pks.append(pk)
                continue
            seen.add(key)
            selection.device_pks.append(pk)
            selection.platforms.append(os_platform)
            selection.managed_devices.append(
                {
                    "id": aad_id,
                    "managedDeviceId": managed.managed_device_id,
                    "displayName": managed.device_name or name or machine_id,
                    "lastSyncDateTime": managed.last_sync,
                }
            )
    return selection


def reference(activity: RemediationActivity) -> str:
    return f"{REFERENCE_PREFIX} {activity.pk}"


def due_date_time(activity: RemediationActivity) -> str:
    """The end of the due day in the portal's time zone. dueDateTime is not nullable in Graph: an
    activity without a due date (never one that may ask for a task) is due DEFAULT_DUE_DAYS after filing."""
    due_on = activity.due_on
    if due_on is None:
        due_on = default_due_date(timezone.localtime(activity.created_at).date())
    end_of_day = dt.datetime.combine(due_on, dt.time(23, 59, 59), tzinfo=timezone.get_current_timezone())
    return end_of_day.isoformat()


def insights(activity: RemediationActivity) -> str:
    """Why the task matters, from the recommendation (Graph's `insights`)."""
    rec = activity.recommendation
    facts = [f"Security recommendation: {rec.name} ({rec.external_id})."]
    if rec.severity_score:
        facts.append(f"Severity score {rec.severity_score:g}.")
    if rec.weaknesses:
        facts.append(f"{rec.weaknesses:,} weakness{'es' if rec.weaknesses != 1 else ''}.")
    if rec.config_score_impact:
        facts.append(f"Secure score impact {rec.config_score_impact:g}.")
    if rec.public_exploit:
        facts.append("A public exploit is available.")
    if rec.active_alert:
        facts.append("Active alerts are associated with it.")
    facts.append(f"{activity.target_devices:,} target device{'s' if activity.target_devices != 1 else ''}.")
    return " ".join(facts)


def _description(activity: RemediationActivity) -> str:
    return "\n\n".join(
        part
        for part in (
            activity.description,
            f"Security recommendation: {activity.recommendation.name}",
            f"{reference(activity)}: {absolute_url(activity.get_absolute_url())}",
        )
        if part
    )


def task_body(activity: RemediationActivity, selection: Selection) -> dict:
    """The create body of DESIGN.md section 9 for the activity's category."""
    body: dict = {
        "@odata.type": ODATA_TYPE[activity.category],
        "displayName": activity.title,
        "description": _description(activity),
        "dueDateTime": due_date_time(activity),
        "category": "advancedThreatProtection",
        "priority": PRIORITY_TO_GRAPH[activity.priority],
        "creator": activity.requester_email,
        "creatorNotes": activity.requester_notes,
        "status": "pending",
        "insights": insights(activity),
        "managedDeviceCount": len(selection.managed_devices),
    }
    if activity.category == RemediationActivity.Category.SECURITY_CONFIGURATION:
        body.update(_configuration_fields(activity, selection))
    else:
        body.update(_software_fields(activity))
    body["managedDevices"] = selection.managed_devices
    return body


def _software_fields(activity: RemediationActivity) -> dict:
    rec = activity.recommendation
    fields: dict = {"mitigationType": MITIGATION_TYPE.get(activity.remediation_option, "unknown")}
    if name := app_name(rec):
        fields["appName"] = name
    if rec.vendor:
        fields["appPublisher"] = rec.vendor
    if activity.remediation_option == RemediationOption.SOFTWARE_UPDATE and rec.recommended_version:
        fields["appVersion"] = rec.recommended_version
    # Intune's task text is written once for every reader, in LANGUAGE_CODE (not the filer's language).
    with translation.override(settings.LANGUAGE_CODE):
        fields["remediation"] = remediation_steps(activity)
    fields["mobileAppCount"] = 0  # no mobileApps are sent
    return fields


def _configuration_fields(activity: RemediationActivity, selection: Selection) -> dict:
    rec = activity.recommendation
    platform = security_config.applicable_platform(selection.platforms)
    policy = security_config.for_platform(
        security_config.policy_for(
            name=rec.name, sub_category=rec.sub_category, related_component=rec.related_component, category=rec.category
        ),
        platform,
    )
    fields: dict = {
        "applicablePlatform": platform,
        "endpointSecurityPolicy": policy.policy,
        "endpointSecurityPolicyProfile": policy.profile,
    }
    settings_ = security_config.intended_settings(name=rec.name, policy=policy)
    if settings_:
        fields["intendedSettings"] = settings_
    return fields
