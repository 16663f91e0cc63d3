"""Output shapes of the recommendation and device-group endpoints (DESIGN.md section 6)."""

from __future__ import annotations

from rest_framework import serializers

from recommendations.models import DeviceGroup, Exposure, SecurityRecommendation
from recommendations.services import RECOMMENDATION_UPDATE_FIELDS


class RecommendationOutput(serializers.ModelSerializer):
    id = serializers.CharField(source="external_id", help_text="The external id, used in URLs.")
    exposed_devices = serializers.IntegerField(
        source="exposed_in_scope", help_text="Devices exposed now, counting only your device groups."
    )
    exception_state = serializers.ChoiceField(
        choices=["exception", "partial", "none"],
        help_text='"exception": covered everywhere; "partial": some device groups; "none".',
    )

    class Meta:
        model = SecurityRecommendation
        # What Defender gives (the inventory's upsert fields), then the counts in the caller's scope.
        fields = ["id", *RECOMMENDATION_UPDATE_FIELDS, "exposed_devices", "exception_state"]
        read_only_fields = fields


class ExposedDeviceOutput(serializers.ModelSerializer):
    device_id = serializers.CharField(source="device.machine_id")
    device_name = serializers.CharField(source="device.computer_dns_name")
    os_platform = serializers.CharField(source="device.os_platform")
    device_group = serializers.CharField(source="device.device_group.name")
    last_seen = serializers.DateTimeField(help_text="When the source last reported the exposure.")

    class Meta:
        model = Exposure
        fields = ["device_id", "device_name", "os_platform", "device_group", "first_seen", "last_seen"]
        read_only_fields = fields


class DeviceGroupOutput(serializers.ModelSerializer):
    class Meta:
        model = DeviceGroup
        fields = ["name", "description"]
        read_only_fields = fields
