"""Admin configuration of the Intune app: Settings → Advanced features, and the Intune tasks (read-only)."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from portal.admin_mixins import ReadOnlyAdminMixin
from portal.errors import ApplicationError
from portal.formatting import grouped
from remediation.selectors import activity_get, activity_list

from . import graph
from .models import IntuneConnection, IntuneTask
from .payload import max_devices_per_task
from .services import (
    intune_connection_set,
    intune_enabled,
    intune_test_connection,
    intune_unavailable_reason,
    last_sync,
)
from .tasks import intune_sync_activity_task


def tasks_in_scope(user, tasks=None):
    """The Intune tasks (of `tasks`, default all) of the activities `user` may see; all for a superuser."""
    tasks = IntuneTask.objects.all() if tasks is None else tasks
    if user.is_superuser:
        return tasks
    return tasks.filter(activity__in=activity_list(user=user).values("pk"))


class ConnectionForm(forms.Form):
    enabled = forms.BooleanField(required=False, label=_("Microsoft Intune connection"))


@admin.register(IntuneConnection)
class IntuneConnectionAdmin(admin.ModelAdmin):
    """The single connection row is edited on the Advanced features page, not as a model form."""

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def changelist_view(self, request, extra_context=None):
        return redirect("admin:intune_advanced_features")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return redirect("admin:intune_advanced_features")

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("advanced-features/", view(self.advanced_features_view), name="intune_advanced_features"),
            path(
                "advanced-features/test/",
                view(require_POST(self.test_connection_view)),
                name="intune_test_connection",
            ),
            *super().get_urls(),
        ]

    def _page_allowed(self, request) -> None:
        if not (request.user.is_superuser or self.has_view_permission(request)):
            raise PermissionDenied(_("You may not see the advanced features."))

    def advanced_features_view(self, request):
        self._page_allowed(request)
        connection = IntuneConnection.load()
        can_change = request.user.is_superuser
        if request.method == "POST":
            form = ConnectionForm(request.POST)
            if form.is_valid():
                try:
                    intune_connection_set(user=request.user, enabled=form.cleaned_data["enabled"])
                except ApplicationError as exc:
                    if exc.http_status == 403:
                        raise PermissionDenied(exc.message) from exc
                    raise
                text = (
                    _("The Microsoft Intune connection is on.")
                    if form.cleaned_data["enabled"]
                    else _("The Microsoft Intune connection is off.")
                )
                self.message_user(request, text, messages.SUCCESS)
                return HttpResponseRedirect(request.path)
        else:
            form = ConnectionForm(initial={"enabled": connection.enabled})
        context = {
            **self.admin_site.each_context(request),
            "title": _("Advanced features"),
            "subtitle": None,
            "opts": self.model._meta,
            "connection": connection,
            # On, but nothing can be sent: say so at the toggle (the request form says the same).
            "connection_warning": intune_unavailable_reason() if connection.enabled else "",
            "form": form,
            "can_change": can_change,
            "credentials": {
                "configured": graph.credentials_configured(),
                "tenant_id": settings.INTUNE_TENANT_ID,
                "client_id": settings.INTUNE_CLIENT_ID,
                "secret_set": bool(settings.INTUNE_CLIENT_SECRET),
                "authority_url": settings.INTUNE_AUTHORITY_URL,
                "graph_url": settings.INTUNE_GRAPH_URL,
                "ca_bundle": graph.ca_bundle() if graph.ca_bundle() is not True else "",
                "max_devices": max_devices_per_task(),
            },
            "last_sync": last_sync(),
            # Only the tasks of activities in the viewer's device groups, like the task list it links to.
            "failing_tasks": tasks_in_scope(request.user).exclude(last_error="").count(),
            "tasks_url": reverse("admin:intune_intunetask_changelist"),
            "test_url": reverse("admin:intune_test_connection"),
        }
        return TemplateResponse(request, "admin/intune/advanced_features.html", context)

    def test_connection_view(self, request):
        """Token fetch and one read-only GET; the result is shown on the Advanced features page."""
        if not request.user.is_superuser:
            raise PermissionDenied(_("Only superusers may test the Microsoft Intune connection."))
        ok, message = intune_test_connection()
        if ok:
            self.message_user(
                request, _("Test connection succeeded: %(message)s") % {"message": message}, messages.SUCCESS
            )
        else:
            text = _("Test connection failed: %(message)s") % {"message": message}
            self.message_user(request, text, messages.ERROR)
        return redirect("admin:intune_advanced_features")


@admin.register(IntuneTask)
class IntuneTaskAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """What the sync did for each activity. Read-only: the sync owns these rows."""

    list_display = [
        "activity_link",
        "status",
        "devices",
        "devices_not_managed",
        "devices_without_aad_id",
        "last_synced_at",
        "attempts",
        "error",
    ]
    list_filter = ["status"]
    search_fields = ["activity__title", "graph_id"]
    list_select_related = ["activity"]
    readonly_fields = [
        "activity",
        "graph_id",
        "status",
        "devices_sent",
        "devices_total",
        "devices_not_managed",
        "devices_without_aad_id",
        "push_started_at",
        "last_pushed_at",
        "last_synced_at",
        "last_error",
        "attempts",
        "pending_status",
        "pending_note",
    ]
    fields = readonly_fields

    def get_queryset(self, request):
        return tasks_in_scope(request.user, super().get_queryset(request))

    @admin.display(description=_("Remediation activity"), ordering="activity__title")
    def activity_link(self, obj):
        url = reverse("admin:remediation_remediationactivity_change", args=[obj.activity_id])
        return format_html('<a href="{}">{}</a>', url, obj.activity.title)

    @admin.display(description=_("Devices sent"))
    def devices(self, obj):
        return _("%(sent)s of %(total)s") % {"sent": grouped(obj.devices_sent), "total": grouped(obj.devices_total)}

    @admin.display(description=_("Last error"))
    def error(self, obj):
        return (obj.last_error[:120] + "…") if len(obj.last_error) > 120 else obj.last_error

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<uuid:activity_id>/retry/", view(require_POST(self.retry_view)), name="intune_intunetask_retry"),
            *super().get_urls(),
        ]

    def retry_view(self, request, activity_id):
        """*Retry now* on the activity page: push, send back and read this activity's task at once."""
        if not (request.user.is_superuser or self.has_view_permission(request)):
            raise PermissionDenied(_("You may not retry Intune tasks."))
        activity = activity_get(user=request.user, pk=activity_id)
        if activity is None:
            raise Http404(_("No such remediation activity."))
        page = reverse("admin:remediation_remediationactivity_change", args=[activity.pk])
        if not activity.create_intune_task:
            self.message_user(request, _("This activity did not ask for an Intune security task."), messages.ERROR)
            return HttpResponseRedirect(page)
        if not intune_enabled():
            self.message_user(request, _("The Microsoft Intune connection is off; nothing was sent."), messages.ERROR)
            return HttpResponseRedirect(page)
        outcome = intune_sync_activity_task.delay(str(activity.pk))
        if settings.CELERY_TASK_ALWAYS_EAGER:
            done = outcome.get()
            self.message_user(request, done["summary"], messages.SUCCESS if done["ok"] else messages.ERROR)
        else:
            self.message_user(request, _("Retry queued; the Intune panel updates in a moment."), messages.INFO)
        return HttpResponseRedirect(page)
