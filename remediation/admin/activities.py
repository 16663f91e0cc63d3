"""Remediation activities in the admin: configuration, plus thin views in views.py.

Nobody adds or edits an activity through the plain admin forms: activities are created by the
request form ('Remediation options' on a recommendation) and change state only through the
services (Mark as complete here; approve/reject through the API).
"""

from __future__ import annotations

from functools import partial

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html

from portal import permissions as perm
from portal.admin_mixins import ReadOnlyAdminMixin
from portal.errors import ConflictError, PermissionError_
from recommendations.admin import ScopedDeviceGroupFilter

from ..exports import activities_csv_response
from ..models import RemediationActivity
from ..rules import overdue_q
from ..selectors import activity_list
from ..services import activity_complete
from . import views


class ActivityDeviceGroupFilter(ScopedDeviceGroupFilter):
    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        through = RemediationActivity.device_groups.through
        return queryset.filter(
            pk__in=through.objects.filter(devicegroup_id=self.group_id()).values("remediationactivity_id")
        )


class OverdueFilter(admin.SimpleListFilter):
    title = "overdue"
    parameter_name = "overdue"

    def lookups(self, request, model_admin):
        return [("yes", "Overdue"), ("no", "Not overdue")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(overdue_q())
        if self.value() == "no":
            return queryset.exclude(overdue_q())
        return queryset


def progress_bar(activity: RemediationActivity) -> str:
    """A bar with fixed/target; nothing for attention required (it shows no progress)."""
    progress = activity.progress
    if progress is None:
        return "—"
    return format_html(
        '<div class="rp-progress" title="{}% remediated"><div class="rp-progress-bar" style="width:{}%"></div>'
        '</div><span class="rp-progress-label">{} / {}</span>',
        progress,
        progress,
        f"{activity.shown_fixed_devices:,}",
        f"{activity.shown_target_devices:,}",
    )


@admin.register(RemediationActivity)
class RemediationActivityAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "activity_column",
        "created_by_column",
        "created_on_column",
        "priority",
        "due_column",
        "device_groups_column",
        "ticket_column",
        "progress_column",
        "status",
        "completed_by_column",
        "completed_on_column",
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
    actions = ["mark_complete", "export_csv"]
    list_per_page = 100

    class Media:
        css = {"all": ["portal/admin.css"]}

    # --- permissions: creation goes through the request form only --------------------------

    # Read-only (ReadOnlyAdminMixin): creation goes through the request form, completed
    # activities are deleted by the purge job only, and history is never edited by hand.

    def has_complete_permission(self, request):
        return request.user.has_perm(perm.COMPLETE_ACTIVITY)

    def has_export_permission(self, request):
        return request.user.has_perm(perm.EXPORT_ACTIVITY)

    def get_queryset(self, request):
        # Scoped to the user's device groups: only theirs named and counted, in the list and export.
        return activity_list(user=request.user)

    # --- columns ---------------------------------------------------------------------------

    @admin.display(description="Remediation activity", ordering="title")
    def activity_column(self, obj):
        return obj.title

    @admin.display(description="Created by", ordering="requester_email")
    def created_by_column(self, obj):
        return obj.requester_email or "—"

    @admin.display(description="Created on", ordering="created_at")
    def created_on_column(self, obj):
        return date_format(timezone.localtime(obj.created_at), "SHORT_DATETIME_FORMAT")

    @admin.display(description="Due date", ordering="due_on")
    def due_column(self, obj):
        if obj.due_on is None:
            return "—"
        if obj.is_overdue:
            return format_html(
                '<span class="rp-overdue" title="Overdue">{} (overdue)</span>', date_format(obj.due_on, "DATE_FORMAT")
            )
        return obj.due_on

    @admin.display(description="Device groups")
    def device_groups_column(self, obj):
        return ", ".join(sorted(g.name for g in obj.device_groups.all()))

    @admin.display(description="Ticket status", ordering="ticket_status")
    def ticket_column(self, obj):
        return obj.get_ticket_status_display() if obj.ticket_status else "—"

    @admin.display(description="Progress", ordering="progress_value")
    def progress_column(self, obj):
        return progress_bar(obj)

    @admin.display(description="Completed by")
    def completed_by_column(self, obj):
        return obj.completed_by_label or "—"

    @admin.display(description="Completed on", ordering="completed_at")
    def completed_on_column(self, obj):
        return date_format(timezone.localtime(obj.completed_at), "SHORT_DATETIME_FORMAT") if obj.completed_at else "—"

    # --- actions -----------------------------------------------------------------------------

    @admin.action(description="Mark selected activities as complete", permissions=["complete"])
    def mark_complete(self, request, queryset):
        done, refused = 0, []
        for activity in queryset:
            try:
                activity_complete(activity=activity, user=request.user)
            except ConflictError as exc:
                refused.append(f"\u201c{activity.title}\u201d: {exc.message}")
            except PermissionError_ as exc:
                raise PermissionDenied(exc.message) from exc
            else:
                done += 1
        if done:
            self.message_user(request, f"{done} activit{'y' if done == 1 else 'ies'} marked as complete.")
        for message in refused:
            self.message_user(request, message, level=messages.ERROR)

    @admin.action(description="Export selected activities to CSV", permissions=["export"])
    def export_csv(self, request, queryset):
        return activities_csv_response(queryset, user=request.user)

    # --- custom pages ------------------------------------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        info = "remediation_remediationactivity"
        return [
            path("export.csv", view(self.export_changelist_view), name=f"{info}_export"),
            path(
                "<path:object_id>/complete/",
                view(partial(views.activity_complete_view, model_admin=self)),
                name=f"{info}_complete",
            ),
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
            raise PermissionDenied("You may not export remediation activities.")
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return redirect(reverse("admin:remediation_remediationactivity_changelist"))
        return activities_csv_response(changelist.queryset, user=request.user)

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "title": "Remediation activities",
            "can_export": self.has_export_permission(request),
        }
        return super().changelist_view(request, extra_context=extra_context)
