"""The rows of the two CSV exports (DESIGN.md section 7), shared by the admin and the API."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from portal.csv import CSV_DEFAULT_LANGUAGE, streaming_csv_response

from .models import ActivityDevice, RemediationActivity
from .selectors import activity_device_list

# The contract's headers (English); `?lang=sv` writes them, and the values' labels, in Swedish.
ACTIVITY_HEADER = [
    _("Remediation activity"),
    _("Status"),
    _("Priority"),
    _("Remediation option"),
    _("Device groups"),
    _("Created by"),
    _("Created on"),
    _("Due date"),
    _("Ticket status"),
    _("Completed by"),
    _("Completed on"),
    _("Target devices"),
    _("Fixed devices"),
    _("Progress"),
]
DEVICE_HEADER = [
    _("Device ID"),
    _("Device name"),
    _("OS platform"),
    _("Device group"),
    _("Status"),
    _("Remediated on"),
    _("Sent to Intune"),
]
CHUNK = 2000


def _date(value) -> str:
    if value is None:
        return ""
    if hasattr(value, "astimezone"):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")
    return value.isoformat()


def activity_rows(activities: QuerySet[RemediationActivity]) -> Iterator[list]:
    """One row per activity, as the reader may see it: `activities` comes from selectors.activity_list
    (their device groups prefetched, their devices counted)."""
    for activity in activities.iterator(chunk_size=CHUNK):
        progress = activity.progress
        yield [
            activity.title,
            activity.get_status_display(),
            activity.get_priority_display(),
            activity.get_remediation_option_display(),
            ", ".join(sorted(g.name for g in activity.device_groups.all())),  # the reader's groups
            activity.requester_email,
            _date(activity.created_at),
            _date(activity.due_on),
            activity.get_ticket_status_display() if activity.ticket_status else "",
            activity.completed_by_display,
            _date(activity.completed_at),
            activity.shown_target_devices,
            activity.shown_fixed_devices,
            "" if progress is None else f"{progress}%",
        ]


def device_rows(activity: RemediationActivity, *, user=None) -> Iterator[list]:
    """One row per target device (in the user's device groups when `user` is given).

    Reads plain tuples, not model instances: a 100,000-device export is mostly this loop.
    """
    status_label = dict(ActivityDevice.Status.choices)
    qs = activity_device_list(activity=activity, user=user).values_list(
        "device__machine_id",
        "device__computer_dns_name",
        "device__os_platform",
        "device__device_group__name",
        "status",
        "remediated_at",
        "sent_to_intune",
    )
    for machine_id, name, platform, group, status, remediated_at, sent in qs.iterator(chunk_size=CHUNK):
        yield [
            machine_id,
            name,
            platform,
            group,
            status_label[status],
            _date(remediated_at),
            _("Yes") if sent else _("No"),
        ]


def activities_csv_response(
    activities: QuerySet[RemediationActivity], *, language: str = CSV_DEFAULT_LANGUAGE, bom: bool = False
):
    stamp = timezone.localdate().isoformat()
    return streaming_csv_response(
        f"remediation-activities-{stamp}.csv", ACTIVITY_HEADER, activity_rows(activities), language=language, bom=bom
    )


def activity_devices_csv_response(
    activity: RemediationActivity, *, user=None, language: str = CSV_DEFAULT_LANGUAGE, bom: bool = False
):
    return streaming_csv_response(
        f"remediation-activity-{activity.pk}-devices.csv",
        DEVICE_HEADER,
        device_rows(activity, user=user),
        language=language,
        bom=bom,
    )
