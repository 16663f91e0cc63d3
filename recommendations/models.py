from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from portal.models import Event

UNASSIGNED_GROUP_NAME = "UnassignedGroup"


class DeviceGroup(models.Model):
    name = models.CharField(_("name"), max_length=200, unique=True)
    description = models.TextField(_("description"), blank=True)
    user_groups = models.ManyToManyField(
        Group,
        blank=True,
        related_name="device_groups",
        help_text=_("People in these groups may see this device group's data."),
        verbose_name=_("user groups"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("device group")
        verbose_name_plural = _("device groups")
        ordering = ["name"]
        permissions = [("view_all_device_groups", "Can see the data of every device group")]

    def __str__(self) -> str:
        return self.name


class Device(models.Model):
    """A device as Defender's machines API describes it (its field names in the comments)."""

    class HealthStatus(models.TextChoices):
        ACTIVE = "Active", _("Active")
        INACTIVE = "Inactive", _("Inactive")
        IMPAIRED_COMMUNICATION = "ImpairedCommunication", _("Impaired communication")
        NO_SENSOR_DATA = "NoSensorData", _("No sensor data")
        NO_SENSOR_DATA_IMPAIRED = "NoSensorDataImpairedCommunication", _("No sensor data, impaired communication")
        UNKNOWN = "Unknown", _("Unknown")

    class RiskScore(models.TextChoices):
        NONE = "None", _("None")
        INFORMATIONAL = "Informational", _("Informational")
        LOW = "Low", _("Low")
        MEDIUM = "Medium", _("Medium")
        HIGH = "High", _("High")

    class ExposureLevel(models.TextChoices):
        NONE = "None", _("None")
        LOW = "Low", _("Low")
        MEDIUM = "Medium", _("Medium")
        HIGH = "High", _("High")

    machine_id = models.CharField(_("device ID"), max_length=64, unique=True)  # id
    computer_dns_name = models.CharField(_("device name"), max_length=255, blank=True)  # computerDnsName
    os_platform = models.CharField(_("OS platform"), max_length=100, blank=True)  # osPlatform
    os_version = models.CharField(_("OS version"), max_length=100, blank=True)  # version
    # No index of its own: the (device_group, computer_dns_name) index below leads with it.
    device_group = models.ForeignKey(
        DeviceGroup, on_delete=models.PROTECT, related_name="devices", verbose_name=_("device group"), db_index=False
    )  # rbacGroupName
    aad_device_id = models.CharField(_("Entra ID device ID"), max_length=64, blank=True)  # aadDeviceId
    first_seen = models.DateTimeField(_("first seen"), null=True, blank=True)  # firstSeen
    last_seen = models.DateTimeField(_("last seen"), null=True, blank=True)  # lastSeen
    health_status = models.CharField(
        _("health status"), max_length=40, choices=HealthStatus.choices, blank=True
    )  # healthStatus
    risk_score = models.CharField(_("risk score"), max_length=16, choices=RiskScore.choices, blank=True)  # riskScore
    exposure_level = models.CharField(
        _("exposure level"), max_length=16, choices=ExposureLevel.choices, blank=True
    )  # exposureLevel
    machine_tags = models.JSONField(_("machine tags"), default=list, blank=True)  # machineTags (a list of strings)
    last_ip_address = models.CharField(_("last IP address"), max_length=64, blank=True)  # lastIpAddress

    class Meta:
        verbose_name = _("device")
        verbose_name_plural = _("devices")
        ordering = ["computer_dns_name"]
        indexes = [models.Index(fields=["device_group", "computer_dns_name"])]

    def __str__(self) -> str:
        return self.computer_dns_name or self.machine_id


class SecurityRecommendation(models.Model):
    class Category(models.TextChoices):
        ACCOUNTS = "Accounts", _("Accounts")
        APPLICATION = "Application", _("Application")
        NETWORK = "Network", _("Network")
        OS = "OS", _("OS")
        SECURITY_CONTROLS = "SecurityControls", _("Security controls")

    class RemediationType(models.TextChoices):
        CONFIGURATION_CHANGE = "ConfigurationChange", _("Configuration change")
        UPDATE = "Update", _("Update")
        UPGRADE = "Upgrade", _("Upgrade")
        UNINSTALL = "Uninstall", _("Uninstall")

    external_id = models.CharField(_("external id"), max_length=255, unique=True)
    name = models.CharField(_("name"), max_length=500)
    product_name = models.CharField(_("product name"), max_length=255, blank=True)
    vendor = models.CharField(_("vendor"), max_length=255, blank=True)
    related_component = models.CharField(_("related component"), max_length=255, blank=True)
    category = models.CharField(_("category"), max_length=32, choices=Category.choices, default=Category.APPLICATION)
    remediation_type = models.CharField(
        _("remediation type"), max_length=32, choices=RemediationType.choices, default=RemediationType.UPDATE
    )
    severity_score = models.FloatField(_("severity score"), default=0)
    exposure_impact = models.FloatField(_("exposure impact"), default=0)
    config_score_impact = models.FloatField(_("config score impact"), default=0)
    public_exploit = models.BooleanField(_("public exploit"), default=False)
    active_alert = models.BooleanField(_("active alert"), default=False)
    weaknesses = models.PositiveIntegerField(_("weaknesses"), default=0)
    recommended_version = models.CharField(_("recommended version"), max_length=100, blank=True)
    recommended_program = models.CharField(_("recommended program"), max_length=255, blank=True)
    recommended_vendor = models.CharField(_("recommended vendor"), max_length=255, blank=True)
    sub_category = models.CharField(_("sub category"), max_length=255, blank=True)  # subCategory
    associated_threats = models.JSONField(
        _("associated threats"), default=list, blank=True
    )  # associatedThreats (a list)
    tags = models.JSONField(_("tags"), default=list, blank=True)  # tags (a list)
    # Stored counter (kept by database triggers on Exposure and Device) so lists never count per row.
    exposed_devices = models.PositiveIntegerField(_("exposed devices"), default=0, editable=False)
    # When the last full snapshot naming this recommendation was taken: every exposure of it still
    # open was reported then (Exposure.last_reported), without rewriting a million rows a night.
    exposures_reported_at = models.DateTimeField(_("exposures last reported"), null=True, editable=False)

    class Meta:
        verbose_name = _("security recommendation")
        verbose_name_plural = _("security recommendations")
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
    # Indexes: the unique pair (recommendation, device) serves the recommendation's look-ups (open
    # or not), the device's own FK index the device's; no more, since every import writes each one.
    # No database foreign keys: checked row by row they cost a million-row snapshot 7.7 s. The
    # snapshot takes both ids from a join under the snapshot lock, deletes of devices take that
    # lock and cascade here (Django's CASCADE), and the nightly recount deletes any orphan
    # (migration 0011).
    recommendation = models.ForeignKey(
        SecurityRecommendation,
        on_delete=models.CASCADE,
        related_name="exposures",
        db_index=False,
        db_constraint=False,
        verbose_name=_("recommendation"),
    )
    device = models.ForeignKey(
        Device, on_delete=models.CASCADE, related_name="exposures", db_constraint=False, verbose_name=_("device")
    )
    first_seen = models.DateTimeField(_("first seen"))
    last_seen = models.DateTimeField(_("last seen"))
    remediated_at = models.DateTimeField(_("remediated at"), null=True, blank=True)

    class Meta:
        verbose_name = _("exposure")
        verbose_name_plural = _("exposures")
        constraints = [
            models.UniqueConstraint(fields=["recommendation", "device"], name="exposure_unique_pair"),
        ]

    def __str__(self) -> str:
        return f"{self.recommendation_id} on {self.device_id}"

    @property
    def is_exposed(self) -> bool:
        return self.remediated_at is None

    @property
    def last_reported(self):
        """When the source last reported the exposure (the API's and the exports' `last_seen`).

        A full snapshot does not rewrite `last_seen` on the pairs it finds unchanged: it stores its
        time once, on the recommendation (`exposures_reported_at`), and an open exposure was
        reported then. `last_seen` is written when a pair is new or back, by a scoped snapshot,
        and when a pair is remediated (then it keeps the time it was last reported).
        Read it with the recommendation selected (`select_related("recommendation")`).
        """
        reported = self.recommendation.exposures_reported_at if self.remediated_at is None else None
        return max(self.last_seen, reported) if reported is not None else self.last_seen


class RecommendationGroupExposure(models.Model):
    """Stored counter: open exposures of a recommendation on the devices now in one device group.

    Kept by database triggers (migration 0006) on every write to exposures and every move of a
    device, whatever path writes them; the nightly `recount_exposures` repairs any drift. Lists
    sum these rows over the caller's groups instead of counting exposures. A group without open
    exposures has no row.
    """

    recommendation = models.ForeignKey(
        SecurityRecommendation,
        on_delete=models.CASCADE,
        related_name="group_exposures",
        verbose_name=_("recommendation"),
    )
    device_group = models.ForeignKey(
        DeviceGroup, on_delete=models.CASCADE, related_name="+", verbose_name=_("device group")
    )
    exposed_devices = models.PositiveIntegerField(_("exposed devices"), default=0)

    class Meta:
        verbose_name = _("recommendation group exposure")
        verbose_name_plural = _("recommendation group exposures")
        constraints = [
            models.UniqueConstraint(
                fields=["recommendation", "device_group"], name="recommendation_group_exposure_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.recommendation_id} in {self.device_group_id}: {self.exposed_devices}"


class RecommendationException(models.Model):
    class Justification(models.TextChoices):
        THIRD_PARTY_CONTROL = "third_party_control", _("Third party control")
        ALTERNATE_MITIGATION = "alternate_mitigation", _("Alternate mitigation")
        RISK_ACCEPTED = "risk_accepted", _("Risk accepted")
        PLANNED_REMEDIATION = "planned_remediation", _("Planned remediation (grace)")

    class Scope(models.TextChoices):
        GLOBAL = "global", _("Global (all device groups)")
        DEVICE_GROUPS = "device_groups", _("Selected device groups")

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        EXPIRED = "expired", _("Expired")
        CANCELED = "canceled", _("Canceled")

    recommendation = models.ForeignKey(
        SecurityRecommendation, on_delete=models.CASCADE, related_name="exceptions", verbose_name=_("recommendation")
    )
    justification = models.CharField(_("justification"), max_length=32, choices=Justification.choices)
    context = models.TextField(_("context"))
    expires_on = models.DateField(_("expires on"))
    scope = models.CharField(_("scope"), max_length=16, choices=Scope.choices)
    device_groups = models.ManyToManyField(
        DeviceGroup,
        through="ExceptionDeviceGroup",
        related_name="exceptions",
        blank=True,
        verbose_name=_("device groups"),
    )
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+", verbose_name=_("created by")
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    canceled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("canceled by"),
    )
    canceled_at = models.DateTimeField(_("canceled at"), null=True, blank=True)
    expired_at = models.DateTimeField(_("expired at"), null=True, blank=True)

    class Meta:
        verbose_name = _("recommendation exception")
        verbose_name_plural = _("recommendation exceptions")
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "expires_on"]),
            models.Index(fields=["recommendation", "status"]),
        ]

    def __str__(self) -> str:
        return gettext("Exception for %(name)s") % {"name": self.recommendation}


class ExceptionDeviceGroup(models.Model):
    """One device group covered by a device-group exception; cancelled one at a time."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        CANCELED = "canceled", _("Canceled")

    exception = models.ForeignKey(
        RecommendationException, on_delete=models.CASCADE, related_name="group_links", verbose_name=_("exception")
    )
    device_group = models.ForeignKey(
        DeviceGroup, on_delete=models.CASCADE, related_name="+", verbose_name=_("device group")
    )
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.ACTIVE)
    canceled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("canceled by"),
    )
    canceled_at = models.DateTimeField(_("canceled at"), null=True, blank=True)

    class Meta:
        verbose_name = _("exception device group")
        verbose_name_plural = _("exception device groups")
        constraints = [
            models.UniqueConstraint(fields=["exception", "device_group"], name="exception_group_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.exception_id}: {self.device_group}"


class ExceptionEvent(Event):
    class Kind(models.TextChoices):
        CREATED = "created", _("Created")
        CANCELED = "canceled", _("Canceled")
        GROUP_CANCELED = "group_canceled", _("Canceled for a device group")
        EXPIRED = "expired", _("Expired")

    exception = models.ForeignKey(
        RecommendationException, on_delete=models.CASCADE, related_name="events", verbose_name=_("exception")
    )
    kind = models.CharField(_("kind"), max_length=32, choices=Kind.choices)
    # The device groups the event is about (filed for, canceled for): readers see only theirs, and
    # the notes naming them are written when read (selectors.exception_event_list).
    device_groups = models.ManyToManyField(DeviceGroup, blank=True, related_name="+", verbose_name=_("device groups"))

    class Meta(Event.Meta):
        verbose_name = _("exception event")
        verbose_name_plural = _("exception events")
        pass


class ImportJob(models.Model):
    """A file import started from the admin, run in a task for large files."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    kind = models.CharField(_("kind"), max_length=32)
    file = models.FileField(_("file"), upload_to="imports/%Y/%m/")
    original_name = models.CharField(_("original name"), max_length=255, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField(_("total"), default=0)
    processed = models.PositiveIntegerField(_("processed"), default=0)
    summary = models.JSONField(_("summary"), default=dict, blank=True)
    errors = models.JSONField(_("errors"), default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+", verbose_name=_("created by")
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("import job")
        verbose_name_plural = _("import jobs")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return gettext("Import %(number)s, %(kind)s (%(status)s)") % {
            "number": self.pk,
            "kind": self.kind,
            "status": self.get_status_display(),
        }

    @property
    def percent(self) -> int:
        return int(self.processed * 100 / self.total) if self.total else 0


class DefenderSyncRun(models.Model):
    """One pull from the Defender for Endpoint API (`manage.py defender_sync`, beat entry `defender_sync`)."""

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", _("Schedule")
        COMMAND = "command", _("Command")

    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.RUNNING)
    trigger = models.CharField(_("trigger"), max_length=16, choices=Trigger.choices)
    started_at = models.DateTimeField(_("started at"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    # The counts of the snapshot and upserts (created, updated, remediated, re_exposed, ...).
    summary = models.JSONField(_("summary"), default=dict, blank=True)
    progress = models.JSONField(_("progress"), default=list, blank=True)  # one line a stage
    warnings = models.JSONField(_("warnings"), default=list, blank=True)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["-started_at"], name="defender_run_started_idx")]
        verbose_name = _("Defender pull")
        verbose_name_plural = _("Defender pulls")

    def __str__(self) -> str:
        return gettext("Defender pull %(started)s (%(status)s)") % {
            "started": f"{self.started_at:%Y-%m-%d %H:%M}",
            "status": self.get_status_display(),
        }

    @property
    def duration(self):
        return (self.finished_at - self.started_at) if self.finished_at else None
