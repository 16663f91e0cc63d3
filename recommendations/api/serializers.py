"""Output shapes of the recommendation and device-group endpoints (DESIGN.md section 6)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from portal.api import TextField
from recommendations.models import DeviceGroup, Exposure, SecurityRecommendation
from recommendations.selectors import device_group_list
from recommendations.services import RECOMMENDATION_UPDATE_FIELDS

# Bodies naming device groups: longer lists are refused before any query (no deployment has
# this many device groups; Defender's own limits are far lower).
MAX_DEVICE_GROUP_NAMES = 1000


class DeviceGroupNamesField(serializers.ListField):
    """Device group names of a request body, resolved to the caller's groups in one query.

    A name outside the caller's scope is as unknown as one that does not exist (the same
    answer); a list longer than MAX_DEVICE_GROUP_NAMES is refused before any query.
    """

    child = TextField(max_length=DeviceGroup._meta.get_field("name").max_length)

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", MAX_DEVICE_GROUP_NAMES)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, list) and len(data) > MAX_DEVICE_GROUP_NAMES:
            self.fail("max_length", max_length=MAX_DEVICE_GROUP_NAMES)
        names = list(dict.fromkeys(super().to_internal_value(data)))
        groups = {g.name: g for g in device_group_list(user=self.context["request"].user).filter(name__in=names)}
        unknown = [n for n in names if n not in groups]
        if unknown:
            shown = ", ".join(unknown[:20])
            if len(unknown) > 20:
                shown = _("%(names)s and %(count)s more") % {"names": shown, "count": len(unknown) - 20}
            raise serializers.ValidationError(_("Unknown device groups: %(names)s.") % {"names": shown})
        return [groups[n] for n in names]


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
    last_seen = serializers.DateTimeField(
        source="last_reported", help_text="When the source last reported the exposure."
    )

    class Meta:
        model = Exposure
        fields = ["device_id", "device_name", "os_platform", "device_group", "first_seen", "last_seen"]
        read_only_fields = fields


class DeviceGroupOutput(serializers.ModelSerializer):
    class Meta:
        model = DeviceGroup
        fields = ["name", "description"]
        read_only_fields = fields
