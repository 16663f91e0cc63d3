from django.contrib import admin

from .models import Device, DeviceGroup, Exposure, SecurityRecommendation


@admin.register(DeviceGroup)
class DeviceGroupAdmin(admin.ModelAdmin):
    list_display = ["name", "description"]
    search_fields = ["name"]
    filter_horizontal = ["user_groups"]


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = ["computer_dns_name", "machine_id", "os_platform", "device_group", "last_seen"]
    list_filter = ["device_group", "os_platform"]
    list_select_related = ["device_group"]
    search_fields = ["computer_dns_name", "=machine_id", "=aad_device_id"]
    autocomplete_fields = ["device_group"]


@admin.register(SecurityRecommendation)
class SecurityRecommendationAdmin(admin.ModelAdmin):
    list_display = ["name", "product_name", "vendor", "category", "remediation_type", "severity_score",
                    "exposed_devices", "public_exploit", "active_alert"]
    list_filter = ["category", "remediation_type", "public_exploit", "active_alert"]
    search_fields = ["name", "product_name", "vendor", "=external_id"]


@admin.register(Exposure)
class ExposureAdmin(admin.ModelAdmin):
    list_display = ["recommendation", "device", "first_seen", "last_seen", "remediated_at"]
    list_select_related = ["recommendation", "device"]
    raw_id_fields = ["recommendation", "device"]
    search_fields = ["=device__machine_id", "=recommendation__external_id"]
