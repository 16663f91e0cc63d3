"""Device groups, devices, recommendations and exposures in the admin.

Every list is scoped to the device groups the user may see (DESIGN.md section 5). Higher
apps add their own buttons to the recommendation page through `object_tools()` (remediation
adds 'Remediation options' by extending SecurityRecommendationAdmin).
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from portal.admin_mixins import WideChangelistMixin
from portal.errors import PermissionError_
from portal.formatting import decimal, grouped
from portal.jsonlists import ListContains, list_values

from ..imports.resources import (
    DeviceGroupResource,
    DeviceResource,
    ExposureResource,
    SecurityRecommendationResource,
)
from ..models import Device, DeviceGroup, Exposure, ImportJob, RecommendationGroupExposure, SecurityRecommendation
from ..rules import severity_band
from ..selectors import (
    annotate_exposed_in_scope,
    device_group_list,
    device_list,
    recommendation_list,
    user_sees_all_device_groups,
)
from ..selectors.exceptions import can_handle_exceptions
from ..services.edits import (
    device_group_save,
    device_groups_delete,
    device_save,
    devices_delete,
    exposure_save,
    exposures_delete,
)
from .exceptions import (
    ExceptionStateFilter,
    exception_options_url,
    exception_state_column,
    exception_summary,
    exposed_after_exceptions_column,
)
from .imports import ImportJobAdmin, InventoryImportExportMixin


class ScopedDeviceGroupFilter(admin.SimpleListFilter):
    """'By device group', offering only the groups the user may see.

    Any other value (not a number, an unknown group, a group outside the user's scope) is a bad
    filter: the changelist answers as Django does for one (back to the list, `?e=1`), the same
    for all three, and `export.csv` refuses it.
    """

    title = _("device group")
    parameter_name = "device_group"
    field_path = "device_group_id"

    def lookups(self, request, model_admin):
        return [(str(pk), name) for pk, name in device_group_list(user=request.user).values_list("pk", "name")]

    def group_id(self) -> int:
        """The chosen group's id; IncorrectLookupParameters unless it is one the filter offers."""
        if self.value() not in {value for value, _ in self.lookup_choices}:
            raise IncorrectLookupParameters(f"Unknown device group {self.value()!r}.")
        return int(self.value())

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        return queryset.filter(**{self.field_path: self.group_id()})


class ExposureDeviceGroupFilter(ScopedDeviceGroupFilter):
    field_path = "device__device_group_id"


class DeviceTagFilter(admin.SimpleListFilter):
    """'By tag': Defender's machine tags of the devices the user may see (an exact tag)."""

    title = _("tag")
    parameter_name = "tag"

    def lookups(self, request, model_admin):
        return [(tag, tag) for tag in list_values(device_list(user=request.user), "machine_tags")]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        return queryset.filter(ListContains("machine_tags", self.value()))


class SubCategoryFilter(admin.SimpleListFilter):
    """'By sub-category' (Defender's subCategory): the values in use, and 'None' for the empty one."""

    title = _("sub-category")
    parameter_name = "sub_category"
    NONE = "-"

    def lookups(self, request, model_admin):
        values = (
            SecurityRecommendation.objects.exclude(sub_category="")
            .order_by("sub_category")
            .values_list("sub_category", flat=True)
            .distinct()
        )
        return [*((v, v) for v in values), (self.NONE, gettext("None"))]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        return queryset.filter(sub_category="" if self.value() == self.NONE else self.value())


class ThreatsFilter(admin.SimpleListFilter):
    """'By threats': recommendations Defender associates with threat analytics reports."""

    title = _("threats")
    parameter_name = "threats"

    def lookups(self, request, model_admin):
        return [("yes", gettext("Associated threats")), ("no", gettext("No associated threats"))]

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

    # Scoped editors change only their own groups' descriptions (services.edits): they create no
    # group and do not decide who sees one.
    def has_add_permission(self, request):
        return super().has_add_permission(request) and user_sees_all_device_groups(request.user)

    def get_readonly_fields(self, request, obj=None):
        if user_sees_all_device_groups(request.user):
            return super().get_readonly_fields(request, obj)
        return ["name", "user_groups"]

    def save_model(self, request, obj, form, change):
        _scoped_write(device_group_save, user=request.user, group=obj)

    def delete_model(self, request, obj):
        _scoped_write(device_groups_delete, user=request.user, groups=[obj])

    def delete_queryset(self, request, queryset):
        _scoped_write(device_groups_delete, user=request.user, groups=list(queryset))


class ExposedDeviceFilter(admin.SimpleListFilter):
    """Devices exposed to at least one recommendation now (the dashboard's Exposed devices tile)."""

    title = _("exposed")
    parameter_name = "exposed"

    def lookups(self, request, model_admin):
        return [("yes", _("Exposed")), ("no", _("Not exposed"))]

    def queryset(self, request, queryset):
        open_exposure = Exists(Exposure.objects.filter(device=OuterRef("pk"), remediated_at__isnull=True))
        if self.value() == "yes":
            return queryset.filter(open_exposure)
        if self.value() == "no":
            return queryset.exclude(open_exposure)
        return queryset


@admin.register(Device)
class DeviceAdmin(WideChangelistMixin, InventoryImportExportMixin, admin.ModelAdmin):
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
        ExposedDeviceFilter,
        "health_status",
        "risk_score",
        "exposure_level",
        DeviceTagFilter,
        "os_platform",
    ]
    list_select_related = ["device_group"]
    search_fields = ["computer_dns_name", "=machine_id", "=aad_device_id", "=last_ip_address"]

    @admin.display(description=_("OS"), ordering="os_platform")
    def os_column(self, obj):
        return " ".join(part for part in (obj.os_platform, obj.os_version) if part)

    @admin.display(description=_("Health"), ordering="health_status")
    def health_column(self, obj):
        return obj.get_health_status_display()

    @admin.display(description=_("Risk"), ordering="risk_score")
    def risk_column(self, obj):
        return obj.get_risk_score_display()

    @admin.display(description=_("Exposure"), ordering="exposure_level")
    def exposure_column(self, obj):
        return obj.get_exposure_level_display()

    @admin.display(description=_("Tags"))
    def tags_column(self, obj):
        return ", ".join(obj.machine_tags) if isinstance(obj.machine_tags, list) else ""

    autocomplete_fields = ["device_group"]

    def get_queryset(self, request):
        return device_list(user=request.user)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "device_group":  # only the user's groups can be chosen (or typed)
            kwargs["queryset"] = device_group_list(user=request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        _scoped_write(device_save, user=request.user, device=obj)

    def delete_model(self, request, obj):
        _scoped_write(devices_delete, user=request.user, devices=[obj])

    def delete_queryset(self, request, queryset):
        _scoped_write(devices_delete, user=request.user, devices=list(queryset))


@admin.register(SecurityRecommendation)
class SecurityRecommendationAdmin(WideChangelistMixin, InventoryImportExportMixin, admin.ModelAdmin):
    resource_classes = [SecurityRecommendationResource]
    # Columns that fit a 1440-pixel window beside the filters: the name carries vendor and product,
    # the category its sub-category, the threat flags share a cell, the severity is a coloured chip.
    list_display = [
        "name_column",
        "category_column",
        "remediation_type",
        "severity_column",
        "exposed_devices_column",
        exposed_after_exceptions_column,
        exception_state_column,
        "threats_column",
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
    # Counts in the user's device groups (annotated by get_queryset), never the organisation's total.
    readonly_fields = ["exposed_devices_column", exception_summary]

    def get_queryset(self, request):
        # Scoped users see exposures only on devices of their groups (stored per-group counters).
        return annotate_exposed_in_scope(
            recommendation_list(user=request.user), user=request.user, name="scoped_exposed"
        )

    @admin.display(description=_("Exposed devices"), ordering="scoped_exposed")
    def exposed_devices_column(self, obj):
        return grouped(obj.scoped_exposed)

    @admin.display(description=pgettext_lazy("list column", "Security recommendation"), ordering="name")
    def name_column(self, obj):
        product = " · ".join(part for part in (obj.vendor, obj.product_name) if part)
        return format_html('{}<br><span class="rp-quiet">{}</span>', obj.name, product) if product else obj.name

    @admin.display(description=_("Category"), ordering="category")
    def category_column(self, obj):
        label = obj.get_category_display()
        if obj.sub_category:
            return format_html('{}<br><span class="rp-quiet">{}</span>', label, obj.sub_category)
        return label

    # The list's headers in context "list column": their Swedish breaks at a soft hyphen
    # (Allvarlighets-grad, Säkerhets-rekommendation) so the list fits 1440 pixels.
    @admin.display(description=pgettext_lazy("list column", "Severity"), ordering="severity_score")
    def severity_column(self, obj):
        return format_html(
            '<span class="rp-chip rp-chip-sev-{}">{}</span>',
            severity_band(obj.severity_score),
            decimal(obj.severity_score, 1),  # 9.8 / 9,8
        )

    @admin.display(description=_("Threats"))
    def threats_column(self, obj):
        flags = [
            (obj.public_exploit, gettext("Public exploit")),
            (obj.active_alert, gettext("Active alert")),
        ]
        chips = [format_html('<span class="rp-chip rp-chip-bad">{}</span>', label) for on, label in flags if on]
        return format_html_join(mark_safe("<br>"), "{}", ((c,) for c in chips)) if chips else "—"

    class Media:
        css = {"all": ["portal/admin.css"]}

    # Defender's data: shown, never edited here (imports and Defender pulls write it).
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def exposed_by_group(self, request, obj) -> list[tuple[str, int]]:
        """The recommendation's exposed devices per device group the user may see (stored counters)."""
        return list(
            RecommendationGroupExposure.objects.filter(
                recommendation=obj, device_group__in=device_group_list(user=request.user), exposed_devices__gt=0
            )
            .order_by("-exposed_devices", "device_group__name")
            .values_list("device_group__name", "exposed_devices")
        )

    def related_panels(self, request, obj) -> list[dict]:
        """Panels under the recommendation's fields: {"template", "context"} each; higher apps add theirs."""
        return [
            {
                "template": "admin/recommendations/securityrecommendation/_exposed_by_group.html",
                "context": {"rows": self.exposed_by_group(request, obj)},
            }
        ]

    def object_tools(self, request, obj) -> list[dict]:
        """Buttons on a recommendation's page: {"url", "label", "id"} each, in the order shown."""
        if not can_handle_exceptions(request.user):
            return []
        return [{"url": exception_options_url(obj), "label": _("Exception options"), "id": "exception-options"}]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        tools = self.object_tools(request, obj) if obj is not None else []
        panels = self.related_panels(request, obj) if obj is not None else []
        extra_context = {**(extra_context or {}), "object_tools": tools, "related_panels": panels}
        return super().change_view(request, object_id, form_url, extra_context=extra_context)


@admin.register(Exposure)
class ExposureAdmin(WideChangelistMixin, InventoryImportExportMixin, admin.ModelAdmin):
    resource_classes = [ExposureResource]
    # The device group is the filter beside the list (with it as a column too, the list no longer fits 1440 px).
    list_display = ["recommendation", "device", "first_seen", "last_reported", "remediated_at"]
    list_filter = [ExposureDeviceGroupFilter]
    list_select_related = ["recommendation", "device"]
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

    @admin.display(description=_("last seen"))
    def last_reported(self, obj):
        return obj.last_reported

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "device":  # a device id typed into the raw-id box must be in scope
            kwargs["queryset"] = device_list(user=request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        _scoped_write(exposure_save, user=request.user, exposure=obj)

    def delete_model(self, request, obj):
        _scoped_write(exposures_delete, user=request.user, exposures=[obj])

    def delete_queryset(self, request, queryset):
        _scoped_write(exposures_delete, user=request.user, exposures=list(queryset))


def _scoped_write(service, **kwargs):
    """Call an edit service; a write outside the user's device groups answers 403."""
    try:
        return service(**kwargs)
    except PermissionError_ as exc:
        raise PermissionDenied(exc.message) from exc


admin.site.register(ImportJob, ImportJobAdmin)
