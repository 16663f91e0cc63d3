"""Device groups, devices, recommendations and exposures in the admin.

Every list is scoped to the device groups the user may see (DESIGN.md section 5). Higher
apps add their own buttons to the recommendation page through `object_tools()` (remediation
adds 'Remediation options' by extending SecurityRecommendationAdmin).
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Exists, OuterRef

from ..imports.resources import (
    DeviceGroupResource,
    DeviceResource,
    ExposureResource,
    SecurityRecommendationResource,
)
from ..models import Device, DeviceGroup, Exposure, ImportJob, SecurityRecommendation
from ..selectors import (
    annotate_exposed_in_scope,
    device_group_list,
    device_list,
    recommendation_list,
    user_sees_all_device_groups,
)
from ..selectors.exceptions import can_handle_exceptions
from .exceptions import (
    ExceptionStateFilter,
    exception_options_url,
    exception_state_column,
    exception_summary,
    exposed_after_exceptions_column,
)
from .imports import ImportJobAdmin, InventoryImportExportMixin


class ScopedDeviceGroupFilter(admin.SimpleListFilter):
    """'By device group', offering only the groups the user may see."""

    title = "device group"
    parameter_name = "device_group"
    field_path = "device_group_id"

    def lookups(self, request, model_admin):
        return [(str(pk), name) for pk, name in device_group_list(user=request.user).values_list("pk", "name")]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        return queryset.filter(**{self.field_path: self.value()})


class ExposureDeviceGroupFilter(ScopedDeviceGroupFilter):
    field_path = "device__device_group_id"


@admin.register(DeviceGroup)
class DeviceGroupAdmin(InventoryImportExportMixin, admin.ModelAdmin):
    resource_classes = [DeviceGroupResource]
    list_display = ["name", "description"]
    search_fields = ["name"]
    filter_horizontal = ["user_groups"]

    def get_queryset(self, request):
        return device_group_list(user=request.user)


@admin.register(Device)
class DeviceAdmin(InventoryImportExportMixin, admin.ModelAdmin):
    resource_classes = [DeviceResource]
    list_display = ["computer_dns_name", "machine_id", "os_platform", "device_group", "last_seen"]
    list_filter = [ScopedDeviceGroupFilter, "os_platform"]
    list_select_related = ["device_group"]
    search_fields = ["computer_dns_name", "=machine_id", "=aad_device_id"]
    autocomplete_fields = ["device_group"]

    def get_queryset(self, request):
        return device_list(user=request.user)


@admin.register(SecurityRecommendation)
class SecurityRecommendationAdmin(InventoryImportExportMixin, admin.ModelAdmin):
    resource_classes = [SecurityRecommendationResource]
    list_display = [
        "name",
        "product_name",
        "vendor",
        "category",
        "remediation_type",
        "severity_score",
        "exposed_devices_column",
        exposed_after_exceptions_column,
        exception_state_column,
        "public_exploit",
        "active_alert",
    ]
    list_filter = ["category", "remediation_type", "public_exploit", "active_alert", ExceptionStateFilter]
    search_fields = ["name", "product_name", "vendor", "=external_id"]
    readonly_fields = ["exposed_devices", exception_summary]

    def get_queryset(self, request):
        # Scoped users see exposures only on devices of their groups (stored per-group counters).
        return annotate_exposed_in_scope(
            recommendation_list(user=request.user), user=request.user, name="scoped_exposed"
        )

    @admin.display(description="Exposed devices", ordering="scoped_exposed")
    def exposed_devices_column(self, obj):
        return getattr(obj, "scoped_exposed", obj.exposed_devices)

    def object_tools(self, request, obj) -> list[dict]:
        """Buttons on a recommendation's page: {"url", "label", "id"} each, in the order shown."""
        if not can_handle_exceptions(request.user):
            return []
        return [{"url": exception_options_url(obj), "label": "Exception options", "id": "exception-options"}]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        tools = self.object_tools(request, obj) if obj is not None else []
        extra_context = {**(extra_context or {}), "object_tools": tools}
        return super().change_view(request, object_id, form_url, extra_context=extra_context)


@admin.register(Exposure)
class ExposureAdmin(InventoryImportExportMixin, admin.ModelAdmin):
    resource_classes = [ExposureResource]
    list_display = ["recommendation", "device", "device_group", "first_seen", "last_seen", "remediated_at"]
    list_filter = [ExposureDeviceGroupFilter]
    list_select_related = ["recommendation", "device", "device__device_group"]
    raw_id_fields = ["recommendation", "device"]
    search_fields = ["=device__machine_id", "=recommendation__external_id"]

    show_full_result_count = False  # one count of a million-row table is enough

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        if not user_sees_all_device_groups(request.user):
            # EXISTS, not a join: SQLite then walks exposures newest first instead of sorting them all.
            scope = device_group_list(user=request.user)
            in_scope = Device.objects.filter(pk=OuterRef("device_id"), device_group__in=scope)
            qs = qs.filter(Exists(in_scope))
        return qs

    @admin.display(description="Device group", ordering="device__device_group__name")
    def device_group(self, obj):
        return obj.device.device_group


admin.site.register(ImportJob, ImportJobAdmin)
