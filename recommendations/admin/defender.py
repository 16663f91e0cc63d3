"""The Defender pulls in the admin: the last runs, what each did, and why a run failed."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy
from django_celery_beat.models import PeriodicTask

from portal.formatting import grouped

from ..defender import credentials_configured
from ..models import DefenderSyncRun
from .imports import summary_text

SCHEDULE_NAME = "defender_sync"  # the beat entry (remediation's schedules upsert it by this name)


def schedule_state() -> str:
    """One paragraph on the beat entry `defender_sync` and the credentials, for the runs' page (HTML)."""
    entry = PeriodicTask.objects.select_related("interval", "crontab").filter(name=SCHEDULE_NAME).first()
    if entry is None:
        schedule = format_html(
            _("There is no beat entry defender_sync: run {}."),
            mark_safe("<code>manage.py setup_periodic_tasks</code>"),
        )
    elif entry.enabled:
        schedule = format_html(_("Scheduled {} (beat entry defender_sync)."), entry.interval or entry.crontab)
    else:
        schedule = _("The beat entry defender_sync is off.")
    if credentials_configured():
        credentials = _("The DEFENDER_* credentials are configured.")
    else:
        credentials = format_html(
            _(
                "The DEFENDER_* credentials are not configured (DEFENDER_TENANT_ID, DEFENDER_CLIENT_ID, "
                "DEFENDER_CLIENT_SECRET); once they are set, {} turns the schedule on."
            ),
            mark_safe("<code>manage.py setup_periodic_tasks</code>"),  # noqa: S308 (constant text)
        )
    return format_html(
        "{} {} {}",
        schedule,
        credentials,
        format_html(_("{} pulls now."), mark_safe("<code>manage.py defender_sync</code>")),  # noqa: S308
    )


@admin.register(DefenderSyncRun)
class DefenderSyncRunAdmin(admin.ModelAdmin):
    list_display = ["started_at", "status", "trigger", "result", "duration_column", "warning_count"]
    list_filter = ["status", "trigger"]
    readonly_fields = [
        "status",
        "trigger",
        "started_at",
        "finished_at",
        "duration_column",
        "result",
        "counts",
        "progress_lines",
        "warning_lines",
        "error",
    ]
    fields = readonly_fields
    change_list_template = "admin/recommendations/defendersyncrun/change_list.html"
    change_form_template = "admin/recommendations/importjob/change_form.html"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description=_("Result"))
    def result(self, obj):
        if obj.status == DefenderSyncRun.Status.SUCCEEDED and obj.summary:
            return summary_text(obj.summary)
        if obj.error:
            first = obj.error if len(obj.error) <= 300 else obj.error[:300] + "…"
            return format_html('<span class="rp-error" style="color: var(--error-fg)">{}</span>', first)
        return "Running…" if obj.status == DefenderSyncRun.Status.RUNNING else "—"

    @admin.display(description=pgettext_lazy("Defender pull", "Duration"))
    def duration_column(self, obj):
        duration = obj.duration
        if duration is None:
            return "—"
        seconds = int(duration.total_seconds())
        return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"

    @admin.display(description=_("Warnings"))
    def warning_count(self, obj):
        return obj.summary.get("warnings", len(obj.warnings)) if obj.summary else len(obj.warnings)

    @admin.display(description=_("Counts"))
    def counts(self, obj):
        rows = [
            (label, part.get("created", 0), part.get("updated", 0), part.get("unchanged", 0))
            for label, key in (
                (_("Recommendations"), "recommendations"),
                (_("Devices"), "devices"),
                (_("Devices named only by exposures"), "exposure_devices"),
            )
            if (part := (obj.summary or {}).get(key))
        ]
        exposures = (obj.summary or {}).get("exposures") or {}
        if not rows and not exposures:
            return "—"
        table = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        return format_html(
            "<table><tr><th></th><th>{}</th><th>{}</th><th>{}</th></tr>{}</table><p>{}</p>",
            _("created"),
            _("updated"),
            _("unchanged"),
            table,
            _("Exposures: %(new)s new, %(still)s still exposed, %(remediated)s remediated, %(again)s exposed again.")
            % {
                "new": grouped(exposures.get("created", 0)),
                "still": grouped(exposures.get("updated", 0)),
                "remediated": grouped(exposures.get("remediated", 0)),
                "again": grouped(exposures.get("re_exposed", 0)),
            },
        )

    @admin.display(description=_("Progress"))
    def progress_lines(self, obj):
        if not obj.progress:
            return "—"
        return format_html("<ol>{}</ol>", format_html_join("", "<li>{}</li>", ((line,) for line in obj.progress)))

    @admin.display(description=_("Warnings (the first 100)"))
    def warning_lines(self, obj):
        if not obj.warnings:
            return "—"
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((w,) for w in obj.warnings)))

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "schedule_state": schedule_state()}
        return super().changelist_view(request, extra_context=extra_context)
