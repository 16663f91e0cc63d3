from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Q
from django.utils import timezone

from portal.models import Event

UNASSIGNED_GROUP_NAME = "UnassignedGroup"


class DeviceGroup(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    user_groups = models.ManyToManyField(
        Group,
        blank=True,
        related_name="device_groups",
        help_text="People in these groups may see this device group's data.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        permissions = [("view_all_device_groups", "Can see the data of every device group")]

    def __str__(self) -> str:
        return self.name


class Device(models.Model):
    """A device as Defender's machines API describes it (its field names in the comments)."""

    class HealthStatus(models.TextChoices):
        ACTIVE = "Active", "Active"
        INACTIVE = "Inactive", "Inactive"
        IMPAIRED_COMMUNICATION = "ImpairedCommunication", "Impaired communication"
        NO_SENSOR_DATA = "NoSensorData", "No sensor data"
        NO_SENSOR_DATA_IMPAIRED = "NoSensorDataImpairedCommunication", "No sensor data, impaired communication"
        UNKNOWN = "Unknown", "Unknown"

    class RiskScore(models.TextChoices):
        NONE = "None", "None"
        INFORMATIONAL = "Informational", "Informational"
        LOW = "Low", "Low"
        MEDIUM = "Medium", "Medium"
        HIGH = "High", "High"

    class ExposureLevel(models.TextChoices):
        NONE = "None", "None"
        LOW = "Low", "Low"
        MEDIUM = "Medium", "Medium"
        HIGH = "High", "High"

    machine_id = models.CharField("device ID", max_length=64, unique=True)  # id
    computer_dns_name = models.CharField("device name", max_length=255, blank=True)  # computerDnsName
    os_platform = models.CharField("OS platform", max_length=100, blank=True)  # osPlatform
    os_version = models.CharField("OS version", max_length=100, blank=True)  # version
    device_group = models.ForeignKey(DeviceGroup, on_delete=models.PROTECT, related_name="devices")  # rbacGroupName
    aad_device_id = models.CharField("Entra ID device ID", max_length=64, blank=True)  # aadDeviceId
    first_seen = models.DateTimeField(null=True, blank=True)  # firstSeen
    last_seen = models.DateTimeField(null=True, blank=True)  # lastSeen
    health_status = models.CharField(max_length=40, choices=HealthStatus.choices, blank=True)  # healthStatus
    risk_score = models.CharField(max_length=16, choices=RiskScore.choices, blank=True)  # riskScore
    exposure_level = models.CharField(max_length=16, choices=ExposureLevel.choices, blank=True)  # exposureLevel
    machine_tags = models.JSONField(default=list, blank=True)  # machineTags (a list of strings)
    last_ip_address = models.CharField("last IP address", max_length=64, blank=True)  # lastIpAddress

    class Meta:
        ordering = ["computer_dns_name"]
        indexes = [models.Index(fields=["device_group", "computer_dns_name"])]

    def __str__(self) -> str:
        return self.computer_dns_name or self.machine_id


class SecurityRecommendation(models.Model):
    class Category(models.TextChoices):
        ACCOUNTS = "Accounts", "Accounts"
        APPLICATION = "Application", "Application"
        NETWORK = "Network", "Network"
        OS = "OS", "OS"
        SECURITY_CONTROLS = "SecurityControls", "Security controls"

    class RemediationType(models.TextChoices):
        CONFIGURATION_CHANGE = "ConfigurationChange", "Configuration change"
        UPDATE = "Update", "Update"
        UPGRADE = "Upgrade", "Upgrade"
        UNINSTALL = "Uninstall", "Uninstall"

    external_id = models.CharField(max_length=255, unique=True)
    name = models.CharField(max_length=500)
    product_name = models.CharField(max_length=255, blank=True)
    vendor = models.CharField(max_length=255, blank=True)
    related_component = models.CharField(max_length=255, blank=True)
    category = models.CharField(max_length=32, choices=Category.choices, default=Category.APPLICATION)
    remediation_type = models.CharField(max_length=32, choices=RemediationType.choices, default=RemediationType.UPDATE)
    severity_score = models.FloatField(default=0)
    exposure_impact = models.FloatField(default=0)
    config_score_impact = models.FloatField(default=0)
    public_exploit = models.BooleanField(default=False)
    active_alert = models.BooleanField(default=False)
    weaknesses = models.PositiveIntegerField(default=0)
    recommended_version = models.CharField(max_length=100, blank=True)
    recommended_program = models.CharField(max_length=255, blank=True)
    recommended_vendor = models.CharField(max_length=255, blank=True)
    sub_category = models.CharField(max_length=255, blank=True)  # subCategory
    associated_threats = models.JSONField(default=list, blank=True)  # associatedThreats (a list)
    tags = models.JSONField(default=list, blank=True)  # tags (a list)
    # Stored counter (kept by database triggers on Exposure and Device) so lists never count per row.
    exposed_devices = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["-severity_score", "name"]
        permissions = [("handle_exceptions", "Can create and cancel recommendation exceptions")]
        indexes = [
            models.Index(fields=["category"]),
            models.Index(fields=["remediation_type"]),
            models.Index(fields=["-severity_score", "name"]),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_configuration(self) -> bool:
        return self.remediation_type == self.RemediationType.CONFIGURATION_CHANGE


class Exposure(models.Model):
    # Indexes: the unique pair (recommendation, device) serves the recommendation's look-ups, the
    # device's own FK index the device's; no more, since every import writes each one.
    recommendation = models.ForeignKey(
        SecurityRecommendation, on_delete=models.CASCADE, related_name="exposures", db_index=False
    )
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="exposures")
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    remediated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["recommendation", "device"], name="exposure_unique_pair"),
        ]
        indexes = [
            models.Index(
                fields=["recommendation", "device"],
                condition=Q(remediated_at__isnull=True),
                name="exposure_open_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.recommendation_id} on {self.device_id}"

    @property
    def is_exposed(self) -> bool:
        return self.remediated_at is None


class RecommendationGroupExposure(models.Model):
    """Stored counter: open exposures of a recommendation on the devices now in one device group.

    Kept by database triggers (migration 0005) on every write to exposures and every move of a
    device, whatever path writes them; the nightly `recount_exposures` repairs any drift. Lists
    sum these rows over the caller's groups instead of counting exposures. A group without open
    exposures has no row.
    """

    recommendation = models.ForeignKey(SecurityRecommendation, on_delete=models.CASCADE, related_name="group_exposures")
    device_group = models.ForeignKey(DeviceGroup, on_delete=models.CASCADE, related_name="+")
    exposed_devices = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["recommendation", "device_group"], name="recommendation_group_exposure_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.recommendation_id} in {self.device_group_id}: {self.exposed_devices}"


class RecommendationException(models.Model):
    class Justification(models.TextChoices):
        THIRD_PARTY_CONTROL = "third_party_control", "Third party control"
        ALTERNATE_MITIGATION = "alternate_mitigation", "Alternate mitigation"
        RISK_ACCEPTED = "risk_accepted", "Risk accepted"
        PLANNED_REMEDIATION = "planned_remediation", "Planned remediation (grace)"

    class Scope(models.TextChoices):
        GLOBAL = "global", "Global (all device groups)"
        DEVICE_GROUPS = "device_groups", "Selected device groups"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        EXPIRED = "expired", "Expired"
        CANCELED = "canceled", "Canceled"

    recommendation = models.ForeignKey(SecurityRecommendation, on_delete=models.CASCADE, related_name="exceptions")
    justification = models.CharField(max_length=32, choices=Justification.choices)
    context = models.TextField()
    expires_on = models.DateField()
    scope = models.CharField(max_length=16, choices=Scope.choices)
    device_groups = models.ManyToManyField(
        DeviceGroup, through="ExceptionDeviceGroup", related_name="exceptions", blank=True
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    canceled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    canceled_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "expires_on"]),
            models.Index(fields=["recommendation", "status"]),
        ]

    def __str__(self) -> str:
        return f"Exception for {self.recommendation}"


class ExceptionDeviceGroup(models.Model):
    """One device group covered by a device-group exception; cancelled one at a time."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        CANCELED = "canceled", "Canceled"

    exception = models.ForeignKey(RecommendationException, on_delete=models.CASCADE, related_name="group_links")
    device_group = models.ForeignKey(DeviceGroup, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    canceled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    canceled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["exception", "device_group"], name="exception_group_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.exception_id}: {self.device_group}"


class ExceptionEvent(Event):
    class Kind(models.TextChoices):
        CREATED = "created", "Created"
        CANCELED = "canceled", "Canceled"
        GROUP_CANCELED = "group_canceled", "Canceled for a device group"
        EXPIRED = "expired", "Expired"

    exception = models.ForeignKey(RecommendationException, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    # The device groups the event is about (filed for, canceled for): readers see only theirs, and
    # the notes naming them are written when read (selectors.exception_event_list).
    device_groups = models.ManyToManyField(DeviceGroup, blank=True, related_name="+")

    class Meta(Event.Meta):
        pass


class ImportJob(models.Model):
    """A file import started from the admin, run in a task for large files."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=32)
    file = models.FileField(upload_to="imports/%Y/%m/")
    original_name = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True)
    errors = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} import {self.pk} ({self.status})"

    @property
    def percent(self) -> int:
        return int(self.processed * 100 / self.total) if self.total else 0


class DefenderSyncRun(models.Model):
    """One pull from the Defender for Endpoint API (`manage.py defender_sync`, beat entry `defender_sync`)."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        COMMAND = "command", "Command"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The counts of the snapshot and upserts (created, updated, remediated, re_exposed, ...).
    summary = models.JSONField(default=dict, blank=True)
    progress = models.JSONField(default=list, blank=True)  # one line a stage
    warnings = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["-started_at"], name="defender_run_started_idx")]
        verbose_name = "Defender pull"
        verbose_name_plural = "Defender pulls"

    def __str__(self) -> str:
        return f"Defender pull {self.started_at:%Y-%m-%d %H:%M} ({self.status})"

    @property
    def duration(self):
        return (self.finished_at - self.started_at) if self.finished_at else None
