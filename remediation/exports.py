"""The rows of the two CSV exports (DESIGN.md section 7), shared by the admin and the API."""

from __future__ import annotations

from collections.abc import Iterator

from django.conf import settings
from django.db import connection
from django.db.models import Aggregate, Case, CharField, F, Func, OuterRef, QuerySet, Subquery, Value, When
from django.db.models.functions import Cast, Concat
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from portal.csv import CSV_DEFAULT_LANGUAGE, copy_csv_chunks, csv_chunks, csv_response, in_language, sql_safe_text
from recommendations.selectors import device_group_ids_for_user, user_sees_all_device_groups

from . import rules
from .choices import Priority, RemediationOption
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


def _labels(choices) -> dict:
    """value -> label, in the active language (the CSV's language: see portal.csv.in_language)."""
    return {value: str(label) for value, label in choices}


def _label(field: str, choices) -> Case:
    return Case(
        *(When(**{field: value}, then=Value(label)) for value, label in _labels(choices).items()),
        output_field=CharField(),
    )


def _completed_labels() -> dict:
    """ "Completed by" for automatic and imported completions: System confirmation / Not available,
    in the active language (the contract's English values by default)."""
    labels = _labels(RemediationActivity.CompletionMethod.choices)
    method = RemediationActivity.CompletionMethod
    return {method.AUTOMATIC: labels[method.AUTOMATIC], method.UNKNOWN: labels[method.UNKNOWN]}


class _Names(Aggregate):
    """The names of a group of rows joined by the unit separator (split and sorted in Python)."""

    function = "STRING_AGG"
    template = "%(function)s(%(expressions)s, chr(31))"
    output_field = CharField()

    def as_sqlite(self, compiler, connection, **extra):
        return super().as_sql(
            compiler, connection, function="GROUP_CONCAT", template="%(function)s(%(expressions)s, char(31))"
        )


ACTIVITY_FREE_TEXT = (0, 4, 5, 9)  # title, device groups, created by, completed by


class _SortedNames(Aggregate):
    """The names sorted as Python sorts them (code points) and joined by ", " (the COPY path)."""

    function = "STRING_AGG"
    template = "%(function)s(%(expressions)s, ', ' ORDER BY %(expressions)s COLLATE \"C\")"
    output_field = CharField()


class _Day(Func):
    """`_date` of a date in PostgreSQL (the COPY path)."""

    template = "to_char(%(expressions)s, 'YYYY-MM-DD')"
    output_field = CharField()


def _group_names(user, aggregate=_Names) -> Subquery:
    """The outer activity's device groups (the reader's only), as one text cell."""
    links = RemediationActivity.device_groups.through.objects.filter(remediationactivity_id=OuterRef("pk"))
    if user is not None and not user_sees_all_device_groups(user):
        links = links.filter(devicegroup_id__in=device_group_ids_for_user(user=user))
    names = links.order_by().values("remediationactivity_id").annotate(names=aggregate("devicegroup__name"))
    return Subquery(names.values("names"), output_field=CharField())


def _counted(activities: QuerySet[RemediationActivity]) -> tuple[str, str]:
    """The names of the target / fixed counts the reader sees (their groups', for a scoped list)."""
    if "target_devices_in_scope" in activities.query.annotations:
        return "target_devices_in_scope", "fixed_devices_in_scope"
    return "target_devices", "fixed_devices"


def activity_copy_query(activities: QuerySet[RemediationActivity], *, user=None) -> tuple[str, tuple]:
    """activity_rows as one PostgreSQL query whose cells are the CSV's text (portal.csv.copy_csv_chunks)."""
    target, fixed = _counted(activities)
    method = RemediationActivity.CompletionMethod
    completed = _completed_labels()
    progress = Case(
        When(remediation_option=RemediationOption.ATTENTION_REQUIRED, then=Value(None)),
        When(**{target: 0}, then=Value("0%")),
        default=Concat(Cast(F(fixed) * 100 / F(target), CharField()), Value("%")),
        output_field=CharField(),
    )
    qs = (
        activities.prefetch_related(None)
        .annotate(
            c0=_SafeText(F("title")),
            c1=_label("status", RemediationActivity.Status.choices),
            c2=_label("priority", Priority.choices),
            c3=_label("remediation_option", RemediationOption.choices),
            c4=_SafeText(_group_names(user, _SortedNames)),
            c5=_SafeText(F("requester_email")),
            c6=_Stamp(F("created_at")),
            c7=_Day(F("due_on")),
            c8=_label("ticket_status", [c for c in RemediationActivity.TicketStatus.choices if c[0]]),
            c9=Case(
                When(completion_method=method.AUTOMATIC, then=Value(completed[method.AUTOMATIC])),
                When(completion_method=method.UNKNOWN, then=Value(completed[method.UNKNOWN])),
                default=_SafeText(F("completer_email")),
                output_field=CharField(),
            ),
            c10=_Stamp(F("completed_at")),
            c13=progress,
        )
        .values_list("c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9", "c10", target, fixed, "c13")
    )
    return qs.query.sql_with_params()


def activity_rows(activities: QuerySet[RemediationActivity], *, user=None) -> Iterator[list]:
    """One row per activity, as the reader may see it: `activities` comes from selectors.activity_list
    for `user` (a scoped reader's devices counted); their device groups are the reader's only.

    One query of plain tuples, whatever the number of rows: labels from dictionaries, each
    distinct date formatted once.
    """
    scoped = "target_devices_in_scope" in activities.query.annotations
    target, fixed = (
        ("target_devices_in_scope", "fixed_devices_in_scope") if scoped else ("target_devices", "fixed_devices")
    )
    status_label = _labels(RemediationActivity.Status.choices)
    priority_label = _labels(Priority.choices)
    option_label = _labels(RemediationOption.choices)
    ticket_label = {**_labels(RemediationActivity.TicketStatus.choices), "": ""}
    completed_label = _completed_labels()
    stamp, day = _Stamps(), _Stamps()
    rows = (
        activities.prefetch_related(None)
        .annotate(export_group_names=_group_names(user))
        .values_list(
            "title",
            "status",
            "priority",
            "remediation_option",
            "export_group_names",
            "requester_email",
            "created_at",
            "due_on",
            "ticket_status",
            "completion_method",
            "completer_email",
            "completed_at",
            target,
            fixed,
        )
    )
    for (
        title,
        status,
        priority,
        option,
        groups,
        requester,
        created_at,
        due_on,
        ticket,
        method,
        completer,
        completed_at,
        targets,
        fixes,
    ) in rows.iterator(chunk_size=CHUNK):
        progress = rules.progress_percent(remediation_option=option, fixed_devices=fixes, target_devices=targets)
        yield [
            title,
            status_label[status],
            priority_label.get(priority, priority),
            option_label.get(option, option),
            ", ".join(sorted(groups.split("\x1f"))) if groups else "",
            requester,
            stamp(created_at),
            day(due_on),
            ticket_label.get(ticket, ticket),
            completed_label.get(method, completer),
            stamp(completed_at),
            targets,
            fixes,
            "" if progress is None else f"{progress}%",
        ]


DEVICE_FREE_TEXT = (0, 1, 2, 3)  # id, name, platform and group come from Defender: any text


def _device_queryset(activity: RemediationActivity, user):
    return activity_device_list(activity=activity, user=user)


def device_rows(activity: RemediationActivity, *, user=None) -> Iterator[list]:
    """One row per target device (in the user's device groups when `user` is given), as plain
    tuples; the free-text cells (DEVICE_FREE_TEXT) are made safe by portal.csv."""
    status_label = _labels(ActivityDevice.Status.choices)
    yes, no = str(_("Yes")), str(_("No"))
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
        yield [machine_id, name, platform, group, status_label[status], stamp(remediated_at), yes if sent else no]


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
            c6=Case(
                When(sent_to_intune=True, then=Value(str(_("Yes")))),
                default=Value(str(_("No"))),
                output_field=CharField(),
            ),
        )
        .values_list("c0", "c1", "c2", "c3", "c4", "c5", "c6")
    )
    return qs.query.sql_with_params()


def use_copy() -> bool:
    """Whether the database writes the CSV itself (PostgreSQL; settings.CSV_COPY turns it off)."""
    return connection.vendor == "postgresql" and settings.CSV_COPY


def device_csv_chunks(
    activity: RemediationActivity, *, user=None, language: str = CSV_DEFAULT_LANGUAGE, bom: bool = False
) -> Iterator[bytes]:
    """The bytes of an activity's devices CSV (the same whichever way they are made), in `language`."""
    return in_language(language, lambda: _device_csv_chunks(activity, user=user, bom=bom))


def _device_csv_chunks(activity: RemediationActivity, *, user, bom: bool) -> Iterator[bytes]:
    if use_copy():
        query, params = device_copy_query(activity, user=user)
        return copy_csv_chunks(connection, query, params, DEVICE_HEADER, bom=bom)
    return csv_chunks(DEVICE_HEADER, device_rows(activity, user=user), free_text=DEVICE_FREE_TEXT, bom=bom)


def activity_csv_chunks(
    activities: QuerySet[RemediationActivity], *, user=None, language: str = CSV_DEFAULT_LANGUAGE, bom: bool = False
) -> Iterator[bytes]:
    """The bytes of the activities CSV (the same whichever way they are made), in `language`."""
    return in_language(language, lambda: _activity_csv_chunks(activities, user=user, bom=bom))


def _activity_csv_chunks(activities: QuerySet[RemediationActivity], *, user, bom: bool) -> Iterator[bytes]:
    if use_copy():
        query, params = activity_copy_query(activities, user=user)
        return copy_csv_chunks(connection, query, params, ACTIVITY_HEADER, bom=bom)
    return csv_chunks(ACTIVITY_HEADER, activity_rows(activities, user=user), free_text=ACTIVITY_FREE_TEXT, bom=bom)


def activities_csv_response(
    activities: QuerySet[RemediationActivity], *, user=None, language: str = CSV_DEFAULT_LANGUAGE, bom: bool = False
):
    """`activities` from selectors.activity_list(user=user), filtered and ordered as the reader chose."""
    stamp = timezone.localdate().isoformat()
    chunks = activity_csv_chunks(activities, user=user, language=language, bom=bom)
    return csv_response(f"remediation-activities-{stamp}.csv", chunks)


def activity_devices_csv_response(
    activity: RemediationActivity, *, user=None, language: str = CSV_DEFAULT_LANGUAGE, bom: bool = False
):
    chunks = device_csv_chunks(activity, user=user, language=language, bom=bom)
    return csv_response(f"remediation-activity-{activity.pk}-devices.csv", chunks)
