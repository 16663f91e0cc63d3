"""Remediation activities in the admin: configuration, plus thin views in views.py.

Nobody adds or edits an activity through the plain admin forms: activities are created by the
request form ('Remediation options' on a recommendation) and change state only through the
services (Mark as complete here; approve/reject through the API).
"""

from __future__ import annotations

import datetime as dt
import re
from functools import partial

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseBadRequest
from django.urls import path
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from portal import permissions as perm
from portal.admin_mixins import ReadOnlyAdminMixin
from portal.csv import csv_language
from portal.errors import ApplicationError
from portal.formatting import grouped
from recommendations.admin import ScopedDeviceGroupFilter

from ..dashboard import DUE_SOON_DAYS
from ..exports import activities_csv_response
from ..models import CLOSED_WITHOUT_DECISION_HELP, RemediationActivity
from ..rules import overdue_q
from ..selectors import activity_list
from . import decisions, views


class ActivityDeviceGroupFilter(ScopedDeviceGroupFilter):
    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        through = RemediationActivity.device_groups.through
        return queryset.filter(
            pk__in=through.objects.filter(devicegroup_id=self.group_id()).values("remediationactivity_id")
        )


class OverdueFilter(admin.SimpleListFilter):
    title = _("overdue")
    parameter_name = "overdue"

    def lookups(self, request, model_admin):
        return [
            ("yes", _("Overdue")),
            ("soon", _("Due within %(days)d days") % {"days": DUE_SOON_DAYS}),
            ("no", _("Not overdue")),
        ]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(overdue_q())
        if self.value() == "soon":
            today = timezone.localdate()
            return queryset.filter(
                status=RemediationActivity.Status.ACTIVE,
                due_on__gte=today,
                due_on__lte=today + dt.timedelta(days=DUE_SOON_DAYS),
            )
        if self.value() == "no":
            return queryset.exclude(overdue_q())
        return queryset


def _date(value) -> str:
    """The one date format of the lists: YYYY-MM-DD (a time in the local time zone first)."""
    if hasattr(value, "astimezone"):
        value = timezone.localtime(value)
    return date_format(value, "Y-m-d")


def chip(label, tone: str, *, title="") -> str:
    return format_html('<span class="rp-chip rp-chip-{}" title="{}">{}</span>', tone, title, label)


def email_cell(email: str) -> str:
    """An email that may wrap after the @ or a dot, never inside a word."""
    if not email or "@" not in email:
        return email or "—"
    parts = re.split(r"(?<=[.@])", email)  # "a.b@c.d" -> "a.", "b@", "c.", "d"
    return format_html_join(mark_safe("<wbr>"), "{}", ((part,) for part in parts))


def progress_bar(activity: RemediationActivity) -> str:
    """A bar with fixed/target; nothing for attention required (it shows no progress)."""
    progress = activity.progress
    if progress is None:
        return "—"
    if activity.is_completed and activity.completion_method == "manual" and activity.shown_fixed_devices == 0:
        return format_html(
            '<span class="rp-quiet" title="{}">{}</span><br><span class="rp-progress-label">0 / {}</span>',
            gettext("Marked complete by a person while no device was reported fixed"),
            gettext("Completed, 0 fixed"),
            grouped(activity.shown_target_devices),
        )
    return format_html(
        '<div class="rp-progress" title="{}"><div class="rp-progress-bar" style="width:{}%"></div>'
        '</div><span class="rp-progress-label">{} / {}</span>',
        _("%(percent)s%% remediated") % {"percent": progress},
        progress,
        grouped(activity.shown_fixed_devices),
        grouped(activity.shown_target_devices),
    )


@admin.register(RemediationActivity)
class RemediationActivityAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # Nine columns that fit a 1440-pixel window beside the filters: titles and groups wrap, dates are
    # compact (one format, YYYY-MM-DD), who-and-when share a cell, states are coloured chips.
    list_display = [
        "activity_column",
        "priority",
        "device_groups_column",
        "created_column",
        "due_column",
        "ticket_column",
        "progress_column",
        "status_column",
        "completed_column",
    ]
    list_display_links = ["activity_column"]
    list_filter = [
        "status",
        "ticket_status",
        "priority",
        "remediation_option",
        ActivityDeviceGroupFilter,
        OverdueFilter,
    ]
    search_fields = ["title"]
    actions = ["approve_selected", "reject_selected", "mark_complete", "export_csv"]
    list_per_page = 100

    class Media:
        css = {"all": ["portal/admin.css"]}

    # --- permissions: creation goes through the request form only --------------------------

    # Read-only (ReadOnlyAdminMixin): creation goes through the request form, completed
    # activities are deleted by the purge job only, and history is never edited by hand.

    def has_decide_permission(self, request):
        return request.user.has_perm(perm.DECIDE_ACTIVITY)

    def has_complete_permission(self, request):
        return request.user.has_perm(perm.COMPLETE_ACTIVITY)

    def has_export_permission(self, request):
        return request.user.has_perm(perm.EXPORT_ACTIVITY)

    def get_queryset(self, request):
        # Scoped to the user's device groups: only theirs named and counted, in the list and export.
        return activity_list(user=request.user)

    # --- columns ---------------------------------------------------------------------------

    @admin.display(description=_("Remediation activity"), ordering="title")
    def activity_column(self, obj):
        return obj.title

    @admin.display(description=_("Created"), ordering="created_at")
    def created_column(self, obj):
        return format_html(
            '{}<br><span class="rp-quiet">{}</span>', _date(obj.created_at), email_cell(obj.requester_email)
        )

    @admin.display(description=_("Due date"), ordering="due_on")
    def due_column(self, obj):
        if obj.due_on is None:
            return "—"
        if obj.is_overdue:
            return format_html(
                '{}<br><span class="rp-chip rp-chip-bad rp-overdue" title="{}">{}</span>',
                _date(obj.due_on),
                gettext("Past its due date and still active"),
                gettext("Overdue"),
            )
        return _date(obj.due_on)

    @admin.display(description=_("Device groups"))
    def device_groups_column(self, obj):
        return ", ".join(sorted(g.name for g in obj.device_groups.all())) or "—"

    @admin.display(description=_("Ticket status"), ordering="ticket_status")
    def ticket_column(self, obj):
        if not obj.ticket_status:
            return "—"
        title = CLOSED_WITHOUT_DECISION_HELP if obj.ticket_chip == "closed" else ""
        return chip(obj.ticket_label, obj.ticket_chip, title=title)

    @admin.display(description=_("Progress"), ordering="progress_value")
    def progress_column(self, obj):
        return progress_bar(obj)

    @admin.display(description=_("Status"), ordering="status")
    def status_column(self, obj):
        return chip(obj.get_status_display(), obj.status)

    @admin.display(description=_("Completed"), ordering="completed_at")
    def completed_column(self, obj):
        if not obj.completed_at:
            return "—"
        return format_html(
            '{}<br><span class="rp-quiet">{}</span>', _date(obj.completed_at), email_cell(obj.completed_by_display)
        )

    # --- actions -----------------------------------------------------------------------------

    @admin.action(description=_("Approve selected requests"), permissions=["decide"])
    def approve_selected(self, request, queryset):
        return decisions.bulk_action(self, request, queryset, "approve")

    @admin.action(description=_("Reject selected requests"), permissions=["decide"])
    def reject_selected(self, request, queryset):
        return decisions.bulk_action(self, request, queryset, "reject")

    @admin.action(description=_("Mark selected activities as complete"), permissions=["complete"])
    def mark_complete(self, request, queryset):
        return decisions.bulk_action(self, request, queryset, "complete")

    @admin.action(description=_("Export selected activities to CSV"), permissions=["export"])
    def export_csv(self, request, queryset):
        try:
            language = csv_language(request.GET.get("lang"))
        except ApplicationError as exc:
            return HttpResponseBadRequest(exc.message)
        return activities_csv_response(queryset, user=request.user, language=language, bom=views.wants_bom(request))

    # --- custom pages ------------------------------------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        info = "remediation_remediationactivity"
        return [
            path("export.csv", view(self.export_changelist_view), name=f"{info}_export"),
            *[
                path(
                    f"<path:object_id>/{name}/",
                    view(
                        partial(
                            decisions.transition_view,
                            model_admin=self,
                            name=name,
                            get_activity=views.get_activity_or_404,
                            activity_url=views.activity_url,
                        )
                    ),
                    name=f"{info}_{name}",
                )
                for name in ("approve", "reject", "complete")
            ],
            path(
                "<path:object_id>/devices.csv",
                view(partial(views.activity_devices_csv_view, model_admin=self)),
                name=f"{info}_devices_csv",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return views.activity_page_view(request, model_admin=self, object_id=object_id)

    def export_changelist_view(self, request):
        """Export to CSV exactly what the changelist shows with the same filters and search."""
        if not (self.has_view_permission(request) and self.has_export_permission(request)):
            raise PermissionDenied(_("You may not export remediation activities."))
        try:
            language = csv_language(request.GET.get("lang"))
        except ApplicationError as exc:
            return HttpResponseBadRequest(exc.message)
        bom = views.wants_bom(request)
        # `lang` and `bom` are options of the download, not filters of the list.
        request.GET = request.GET.copy()
        request.GET.pop("lang", None)
        request.GET.pop("bom", None)
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters as exc:
            # A download answers plainly (a script or a spreadsheet follows no redirect to a page).
            reason = str(exc) or _("a filter value is not one the list offers")
            return HttpResponseBadRequest(
                _("Nothing was exported: %(reason)s") % {"reason": reason} + "\n",
                content_type="text/plain; charset=utf-8",
            )
        return activities_csv_response(changelist.queryset, user=request.user, language=language, bom=bom)

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "title": gettext("Remediation activities"),
            "can_export": self.has_export_permission(request),
            # Nine columns beside the filters fit a 1440-pixel window without the app navigation
            # (Home and the breadcrumbs lead back to every page).
            "is_nav_sidebar_enabled": False,
        }
        return super().changelist_view(request, extra_context=extra_context)
