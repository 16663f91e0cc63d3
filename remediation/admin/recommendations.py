"""The recommendation admin, extended by remediation: the 'Remediation options' button (the
request form) and the open-activities column. recommendations knows nothing of either."""

from __future__ import annotations

from functools import partial

from django.contrib import admin
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _

from portal import permissions as perm
from recommendations.admin import SecurityRecommendationAdmin
from recommendations.models import SecurityRecommendation

from ..selectors import annotate_open_activities
from .views import remediation_request_view

REQUEST_URL_NAME = "recommendations_securityrecommendation_remediation_options"


class RemediationRecommendationAdmin(SecurityRecommendationAdmin):
    list_display = [*SecurityRecommendationAdmin.list_display, "open_activities_column"]

    def get_queryset(self, request):
        return annotate_open_activities(super().get_queryset(request))

    @admin.display(description=_("Open activities"), ordering="open_activities")
    def open_activities_column(self, obj):
        return obj.open_activities

    def object_tools(self, request, obj) -> list[dict]:
        tools = super().object_tools(request, obj)
        if request.user.has_perm(perm.ADD_ACTIVITY):
            url = reverse(f"admin:{REQUEST_URL_NAME}", args=[obj.pk])
            tools.insert(0, {"url": url, "label": _("Remediation options"), "id": "remediation-options"})
        return tools

    def get_urls(self):
        view = partial(remediation_request_view, model_admin=self)
        return [
            path("<path:object_id>/remediation-options/", self.admin_site.admin_view(view), name=REQUEST_URL_NAME),
            *super().get_urls(),
        ]


admin.site.unregister(SecurityRecommendation)
admin.site.register(SecurityRecommendation, RemediationRecommendationAdmin)
