"""Device groups, devices, recommendations and exposures in the admin.

Every list is scoped to the device groups the user may see (DESIGN.md section 5). Higher
apps add their own buttons to the recommendation page through `object_tools()` (remediation
adds 'Remediation options' by extending SecurityRecommendationAdmin).
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Exists, OuterRef

from portal.jsonlists import ListContains, list_values

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
    recommendation_ids_exposed_on,
    recommendation_list,
    user_sees_all_device_groups,
)
from ..selectors.exceptions import can_handle_exceptions
from ..services import recommendations_refresh_exposed_devices
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


class DeviceTagFilter(admin.SimpleListFilter):
    """'By tag': Defender's machine tags of the devices the user may see (an exact tag)."""

    title = "tag"
    parameter_name = "tag"

    def lookups(self, request, model_admin):
        return [(tag, tag) for tag in list_values(device_list(user=request.user), "machine_tags")]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        return queryset.filter(ListContains("machine_tags", self.value()))


class SubCategoryFilter(admin.SimpleListFilter):
    """'By sub-category' (Defender's subCategory): the values in use, and 'None' for the empty one."""

    title = "sub-category"
    parameter_name = "sub_category"
    NONE = "-"

    def lookups(self, request, model_admin):
        values = (
            SecurityRecommendation.objects.exclude(sub_category="")
            .order_by("sub_category")
            .values_list("sub_category", flat=True)
            .distinct()
        )
        return [*((v, v) for v in values), (self.NONE, "None")]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        return queryset.filter(sub_category="" if self.value() == self.NONE else self.value())


class ThreatsFilter(admin.SimpleListFilter):
    """'By threats': recommendations Defender associates with threat analytics reports."""

    title = "threats"
    parameter_name = "threats"

    def lookups(self, request, model_admin):
        return [("yes", "Associated threats"), ("no", "No associated threats")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(associated_threats=[])
        if self.value() == "no":
            return queryset.filter(associated_threats=[])
        return queryset


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
    # The device id (40 hex) and the last IP are on the device's page and searchable (exact), not columns:
    # with them the list no longer fits a 1440-pixel screen.
    list_display = [
        "computer_dns_name",
        "device_group",
        "os_column",
        "health_column",
        "risk_column",
        "exposure_column",
        "tags_column",
        "last_seen",
    ]
    list_filter = [
        ScopedDeviceGroupFilter,
        "health_status",
        "risk_score",
        "exposure_level",
        DeviceTagFilter,
        "os_platform",
    ]
    list_select_related = ["device_group"]
    search_fields = ["computer_dns_name", "=machine_id", "=aad_device_id", "=last_ip_address"]

    @admin.display(description="OS", ordering="os_platform")
    def os_column(self, obj):
        return " ".join(part for part in (obj.os_platform, obj.os_version) if part)

    @admin.display(description="Health", ordering="health_status")
    def health_column(self, obj):
        return obj.get_health_status_display()

    @admin.display(description="Risk", ordering="risk_score")
    def risk_column(self, obj):
        return obj.get_risk_score_display()

    @admin.display(description="Exposure", ordering="exposure_level")
    def exposure_column(self, obj):
        return obj.get_exposure_level_display()

    @admin.display(description="Tags")
    def tags_column(self, obj):
        return ", ".join(obj.machine_tags) if isinstance(obj.machine_tags, list) else ""

    autocomplete_fields = ["device_group"]

    def get_queryset(self, request):
        return device_list(user=request.user)

    # A device that changes group or goes away changes the stored exposure counters.
    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and "device_group" in form.changed_data:
            recommendations_refresh_exposed_devices(
                recommendation_ids=recommendation_ids_exposed_on(device_ids=[obj.pk])
            )

    def delete_model(self, request, obj):
        affected = recommendation_ids_exposed_on(device_ids=[obj.pk])
        super().delete_model(request, obj)
        recommendations_refresh_exposed_devices(recommendation_ids=affected)

    def delete_queryset(self, request, queryset):
        affected = recommendation_ids_exposed_on(device_ids=queryset.values("pk"))
        super().delete_queryset(request, queryset)
        recommendations_refresh_exposed_devices(recommendation_ids=affected)


@admin.register(SecurityRecommendation)
class SecurityRecommendationAdmin(InventoryImportExportMixin, admin.ModelAdmin):
    resource_classes = [SecurityRecommendationResource]
    list_display = [
        "name",
        "product_name",
        "vendor",
        "category",
        "sub_category",
        "remediation_type",
        "severity_score",
        "exposed_devices_column",
        exposed_after_exceptions_column,
        exception_state_column,
        "public_exploit",
        "active_alert",
    ]
    list_filter = [
        "category",
        SubCategoryFilter,
        "remediation_type",
        "public_exploit",
        "active_alert",
        ThreatsFilter,
        ExceptionStateFilter,
    ]
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

    # Edited or deleted exposures change the stored exposure counters of their recommendations.
    def save_model(self, request, obj, form, change):
        before = form.initial.get("recommendation") if change else None
        super().save_model(request, obj, form, change)
        recommendations_refresh_exposed_devices(recommendation_ids={obj.recommendation_id, *filter(None, [before])})

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        recommendations_refresh_exposed_devices(recommendation_ids=[obj.recommendation_id])

    def delete_queryset(self, request, queryset):
        affected = set(queryset.order_by().values_list("recommendation_id", flat=True).distinct())
        super().delete_queryset(request, queryset)
        recommendations_refresh_exposed_devices(recommendation_ids=affected)


admin.site.register(ImportJob, ImportJobAdmin)
