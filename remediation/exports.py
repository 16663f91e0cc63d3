"""The rows of the two CSV exports (DESIGN.md section 7), shared by the admin and the API."""

from __future__ import annotations

from collections.abc import Iterator

from django.conf import settings
from django.db import connection
from django.db.models import Case, CharField, F, Func, QuerySet, Value, When
from django.utils import timezone

from portal.csv import copy_csv_chunks, csv_chunks, csv_response, sql_safe_text, streaming_csv_response

from .models import ActivityDevice, RemediationActivity
from .selectors import activity_device_list

ACTIVITY_HEADER = [
    "Remediation activity",
    "Status",
    "Priority",
    "Remediation option",
    "Device groups",
    "Created by",
    "Created on",
    "Due date",
    "Ticket status",
    "Completed by",
    "Completed on",
    "Target devices",
    "Fixed devices",
    "Progress",
]
DEVICE_HEADER = ["Device ID", "Device name", "OS platform", "Device group", "Status", "Remediated on", "Sent to Intune"]
CHUNK = 2000
STAMP = "%Y-%m-%d %H:%M"
PG_STAMP = "YYYY-MM-DD HH24:MI"  # STAMP in to_char's words


def _date(value) -> str:
    if value is None:
        return ""
    if hasattr(value, "astimezone"):
        return timezone.localtime(value).strftime(STAMP)
    return value.isoformat()


class _Stamps:
    """`_date` for a column of timestamps, each distinct value formatted once."""

    def __init__(self):
        self.seen: dict = {}

    def __call__(self, value) -> str:
        text = self.seen.get(value)
        if text is None:
            if len(self.seen) > 10_000:
                self.seen.clear()
            text = self.seen[value] = _date(value)
        return text


class _SafeText(Func):
    """portal.csv.sql_safe_text of a text column (PostgreSQL only: the COPY path)."""

    output_field = CharField()

    def as_sql(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        return sql_safe_text(f"({sql})"), [*params] * 3


class _Stamp(Func):
    """`_date` of a timestamp in PostgreSQL, in the current time zone (the COPY path)."""

    output_field = CharField()

    def as_sql(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"to_char(({sql}) AT TIME ZONE %s, '{PG_STAMP}')", [*params, timezone.get_current_timezone_name()]


def _label(field: str, choices) -> Case:
    return Case(*(When(**{field: value}, then=Value(label)) for value, label in choices), output_field=CharField())


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
            activity.completed_by_label,
            _date(activity.completed_at),
            activity.shown_target_devices,
            activity.shown_fixed_devices,
            "" if progress is None else f"{progress}%",
        ]


DEVICE_FREE_TEXT = (0, 1, 2, 3)  # id, name, platform and group come from Defender: any text


def _device_queryset(activity: RemediationActivity, user):
    return activity_device_list(activity=activity, user=user)


def device_rows(activity: RemediationActivity, *, user=None) -> Iterator[list]:
    """One row per target device (in the user's device groups when `user` is given), as plain
    tuples; the free-text cells (DEVICE_FREE_TEXT) are made safe by portal.csv."""
    status_label = dict(ActivityDevice.Status.choices)
    stamp = _Stamps()
    qs = _device_queryset(activity, user).values_list(
        "device__machine_id",
        "device_name",
        "device__os_platform",
        "device__device_group__name",
        "status",
        "remediated_at",
        "sent_to_intune",
    )
    for machine_id, name, platform, group, status, remediated_at, sent in qs.iterator(chunk_size=CHUNK):
        yield [machine_id, name, platform, group, status_label[status], stamp(remediated_at), "Yes" if sent else "No"]


def device_copy_query(activity: RemediationActivity, *, user=None) -> tuple[str, tuple]:
    """device_rows as one PostgreSQL query whose cells are the CSV's text (portal.csv.copy_csv_chunks)."""
    qs = (
        _device_queryset(activity, user)
        .annotate(
            c0=_SafeText(F("device__machine_id")),
            c1=_SafeText(F("device_name")),
            c2=_SafeText(F("device__os_platform")),
            c3=_SafeText(F("device__device_group__name")),
            c4=_label("status", ActivityDevice.Status.choices),
            c5=_Stamp(F("remediated_at")),
            c6=Case(When(sent_to_intune=True, then=Value("Yes")), default=Value("No"), output_field=CharField()),
        )
        .values_list("c0", "c1", "c2", "c3", "c4", "c5", "c6")
    )
    return qs.query.sql_with_params()


def use_copy() -> bool:
    """Whether the database writes the CSV itself (PostgreSQL; settings.CSV_COPY turns it off)."""
    return connection.vendor == "postgresql" and getattr(settings, "CSV_COPY", True)


def device_csv_chunks(activity: RemediationActivity, *, user=None, bom: bool = False) -> Iterator[bytes]:
    """The bytes of an activity's devices CSV (the same whichever way they are made)."""
    if use_copy():
        query, params = device_copy_query(activity, user=user)
        return copy_csv_chunks(connection, query, params, DEVICE_HEADER, bom=bom)
    return csv_chunks(DEVICE_HEADER, device_rows(activity, user=user), free_text=DEVICE_FREE_TEXT, bom=bom)


def activities_csv_response(activities: QuerySet[RemediationActivity], *, bom: bool = False):
    stamp = timezone.localdate().isoformat()
    return streaming_csv_response(
        f"remediation-activities-{stamp}.csv", ACTIVITY_HEADER, activity_rows(activities), bom=bom
    )


def activity_devices_csv_response(activity: RemediationActivity, *, user=None, bom: bool = False):
    return csv_response(
        f"remediation-activity-{activity.pk}-devices.csv", device_csv_chunks(activity, user=user, bom=bom)
    )
