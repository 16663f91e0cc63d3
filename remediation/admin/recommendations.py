"""The recommendation admin, extended by remediation: the 'Remediation options' button (the
request form) and the open-activities column. recommendations knows nothing of either."""

from __future__ import annotations

from functools import partial

from django.contrib import admin
from django.urls import path, reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from portal import permissions as perm
from recommendations.admin import SecurityRecommendationAdmin
from recommendations.models import SecurityRecommendation

from ..models import RemediationActivity
from ..selectors import activity_list, annotate_open_activities
from .views import remediation_request_view

OPEN_ACTIVITIES_SHOWN = 20
REQUEST_URL_NAME = "recommendations_securityrecommendation_remediation_options"


class RemediationRecommendationAdmin(SecurityRecommendationAdmin):
    list_display = [*SecurityRecommendationAdmin.list_display, "open_activities_column"]

    def get_queryset(self, request):
        return annotate_open_activities(super().get_queryset(request))

    @admin.display(description=_("Open activities"), ordering="open_activities")
    def open_activities_column(self, obj):
        return obj.open_activities

    def related_panels(self, request, obj) -> list[dict]:
        """The open activities (those the user may see) after the exposed devices by group."""
        activities = activity_list(user=request.user).filter(
            recommendation=obj, status=RemediationActivity.Status.ACTIVE
        )[:OPEN_ACTIVITIES_SHOWN]
        return [
            *super().related_panels(request, obj),
            {"template": "admin/remediation/_open_activities_panel.html", "context": {"activities": list(activities)}},
        ]

    def object_tools(self, request, obj) -> list[dict]:
        tools = super().object_tools(request, obj)
        if request.user.has_perm(perm.ADD_ACTIVITY):
            url = reverse(f"admin:{REQUEST_URL_NAME}", args=[obj.pk])
            tools.insert(0, {"url": url, "label": gettext("Request remediation"), "id": "remediation-options"})
        return tools

    def get_urls(self):
        view = partial(remediation_request_view, model_admin=self)
        return [
            path("<path:object_id>/remediation-options/", self.admin_site.admin_view(view), name=REQUEST_URL_NAME),
            *super().get_urls(),
        ]


admin.site.unregister(SecurityRecommendation)
admin.site.register(SecurityRecommendation, RemediationRecommendationAdmin)
