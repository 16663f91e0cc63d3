"""Input and output shapes of the remediation-activity API (DESIGN.md section 6). No rules here."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from portal.api import TextField
from recommendations.api.serializers import DeviceGroupNamesField
from recommendations.models import SecurityRecommendation
from remediation.hooks import integration
from remediation.models import ActivityDevice, ActivityEvent, Priority, RemediationActivity, RemediationOption

# --- input ---------------------------------------------------------------------------------


class SlugField(serializers.SlugRelatedField):
    """A reference by name; a value no database could hold (NUL byte) is "does not exist", not a 500."""

    def to_internal_value(self, data):
        if isinstance(data, str) and "\x00" in data:
            self.fail("does_not_exist", slug_name=self.slug_field, value=data.replace("\x00", "\\x00"))
        return super().to_internal_value(data)


class ActivityCreateInput(serializers.Serializer):
    recommendation = SlugField(
        slug_field="external_id",
        queryset=SecurityRecommendation.objects.all(),
        help_text="The recommendation's external id, e.g. va-_-microsoft-_-silverlight.",
    )
    remediation_option = serializers.ChoiceField(choices=RemediationOption.choices)
    priority = serializers.ChoiceField(choices=Priority.choices)
    due_on = serializers.DateField(
        required=False,
        allow_null=True,
        default=None,
        help_text="YYYY-MM-DD, today or later; omit or null for attention_required.",
    )
    device_groups = DeviceGroupNamesField(help_text="Device group names (yours); at least one.")
    requester_notes = TextField(required=False, allow_blank=True, default="")
    create_intune_task = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Also create a Microsoft Intune security task (only while the Intune connection is on).",
    )
    confirm_duplicate = serializers.BooleanField(
        required=False,
        default=False,
        help_text="File it even though an active activity for this recommendation already covers one of "
        "these device groups (otherwise 409 with that activity's id).",
    )


class DecisionInput(serializers.Serializer):
    notes = TextField(required=False, allow_blank=True, default="", help_text="Required to reject.")


class CompleteInput(serializers.Serializer):
    notes = TextField(required=False, allow_blank=True, default="")


# --- output --------------------------------------------------------------------------------


class RecommendationRefOutput(serializers.Serializer):
    id = serializers.CharField(source="external_id")
    name = serializers.CharField()


class IntuneTaskOutput(serializers.Serializer):
    status = serializers.CharField(help_text="Graph's status of the task (empty until it is pushed).")
    devices_sent = serializers.IntegerField()
    devices_total = serializers.IntegerField()
    last_synced_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField()


class ActivityOutput(serializers.ModelSerializer):
    recommendation = RecommendationRefOutput()
    device_groups = serializers.SerializerMethodField()
    completed_by = serializers.CharField(
        source="completed_by_label",
        help_text='Email of the person who completed it, "System confirmation" or "Not available".',
    )
    progress = serializers.IntegerField(
        allow_null=True, min_value=0, max_value=100, help_text="0-100; null for attention_required."
    )
    intune = serializers.SerializerMethodField()
    target_devices = serializers.IntegerField(
        source="shown_target_devices", help_text="Target devices (in your device groups)."
    )
    fixed_devices = serializers.IntegerField(
        source="shown_fixed_devices", help_text="Target devices remediated (in your device groups)."
    )

    class Meta:
        model = RemediationActivity
        fields = [
            "id",
            "title",
            "description",
            "recommendation",
            "remediation_option",
            "category",
            "priority",
            "due_on",
            "requester_email",
            "requester_notes",
            "device_groups",
            "created_at",
            "status",
            "ticket_status",
            "it_notes",
            "completion_method",
            "completed_by",
            "completed_at",
            "target_devices",
            "fixed_devices",
            "progress",
            "create_intune_task",
            "intune",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_device_groups(self, activity: RemediationActivity) -> list[str]:
        # Prefetched by selectors.activity_list: only the reader's device groups.
        return sorted(group.name for group in activity.device_groups.all())

    @extend_schema_field(IntuneTaskOutput(allow_null=True))
    def get_intune(self, activity: RemediationActivity):
        status = integration().activity_status(activity)  # the registered integration's task, if any
        return IntuneTaskOutput(status).data if status is not None else None


class ActivityDeviceOutput(serializers.ModelSerializer):
    device_id = serializers.CharField(source="device.machine_id")
    device_name = serializers.CharField(source="device.computer_dns_name")
    os_platform = serializers.CharField(source="device.os_platform")
    device_group = serializers.CharField(source="device.device_group.name")

    class Meta:
        model = ActivityDevice
        fields = [
            "device_id",
            "device_name",
            "os_platform",
            "device_group",
            "status",
            "remediated_at",
            "sent_to_intune",
        ]
        read_only_fields = fields


class ActivityEventOutput(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_label", help_text='An email, or "System".')

    class Meta:
        model = ActivityEvent
        fields = ["kind", "actor", "notes", "at"]
        read_only_fields = fields
