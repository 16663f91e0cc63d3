from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from recommendations.models import Device, DeviceGroup, SecurityRecommendation

SYSTEM_LABEL = "System"
SYSTEM_CONFIRMATION = "System confirmation"
NOT_AVAILABLE = "Not available"


class RemediationOption(models.TextChoices):
    SOFTWARE_UPDATE = "software_update", "Software update"
    SOFTWARE_UNINSTALL = "software_uninstall", "Software uninstall"
    CONFIGURATION_CHANGE = "configuration_change", "Configuration change"
    ATTENTION_REQUIRED = "attention_required", "Attention required"


class Priority(models.TextChoices):
    HIGH = "high", "High"
    MEDIUM = "medium", "Medium"
    LOW = "low", "Low"


class RemediationActivity(models.Model):
    class Category(models.TextChoices):
        SOFTWARE = "software", "Software"
        SECURITY_CONFIGURATION = "security_configuration", "Security configuration"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        COMPLETED = "completed", "Completed"

    class TicketStatus(models.TextChoices):
        NONE = "", "—"
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    class CompletionMethod(models.TextChoices):
        NONE = "", "—"
        MANUAL = "manual", "Manual"
        AUTOMATIC = "automatic", "System confirmation"
        UNKNOWN = "unknown", "Not available"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    recommendation = models.ForeignKey(SecurityRecommendation, on_delete=models.PROTECT, related_name="activities")
    title = models.CharField(max_length=500)
    description = models.TextField(blank=True)
    remediation_option = models.CharField(max_length=32, choices=RemediationOption.choices)
    category = models.CharField(max_length=32, choices=Category.choices)
    priority = models.CharField(max_length=8, choices=Priority.choices)
    due_on = models.DateField(null=True, blank=True)
    requester_notes = models.TextField(blank=True)
    device_groups = models.ManyToManyField(DeviceGroup, related_name="activities")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    requester_email = models.EmailField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    ticket_status = models.CharField(max_length=16, choices=TicketStatus.choices, blank=True)
    it_notes = models.TextField(blank=True)
    completion_method = models.CharField(max_length=16, choices=CompletionMethod.choices, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    completer_email = models.CharField(max_length=254, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    create_intune_task = models.BooleanField(default=False)
    target_devices = models.PositiveIntegerField(default=0)
    fixed_devices = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "remediation activities"
        permissions = [
            ("decide_activity", "Can approve or reject remediation requests"),
            ("complete_activity", "Can mark remediation activities complete"),
            ("export_activity", "Can export remediation activities to CSV"),
        ]
        indexes = [
            models.Index(fields=["status", "-created_at"]),
            models.Index(fields=["ticket_status"]),
            models.Index(fields=["priority"]),
            models.Index(fields=["remediation_option"]),
            models.Index(fields=["due_on"]),
            models.Index(fields=["status", "completed_at"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(fixed_devices__lte=models.F("target_devices")),
                name="activity_fixed_le_target",
            ),
            models.CheckConstraint(
                condition=~Q(remediation_option="attention_required") | Q(due_on__isnull=True),
                name="activity_attention_has_no_due_date",
            ),
            models.CheckConstraint(
                condition=Q(status="active", completed_at__isnull=True)
                | Q(status="completed", completed_at__isnull=False),
                name="activity_completed_at_matches_status",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_attention_required(self) -> bool:
        return self.remediation_option == RemediationOption.ATTENTION_REQUIRED

    @property
    def is_completed(self) -> bool:
        return self.status == self.Status.COMPLETED

    @property
    def progress(self) -> int | None:
        """0-100, or None for attention required (which shows no progress)."""
        if self.is_attention_required:
            return None
        if not self.target_devices:
            return 0
        return int(self.fixed_devices * 100 / self.target_devices)

    @property
    def is_overdue(self) -> bool:
        return bool(self.due_on and not self.is_completed and self.due_on < timezone.localdate())

    @property
    def completed_by_label(self) -> str:
        """What the portal shows as 'Completed by'."""
        if self.completion_method == self.CompletionMethod.AUTOMATIC:
            return SYSTEM_CONFIRMATION
        if self.completion_method == self.CompletionMethod.UNKNOWN:
            return NOT_AVAILABLE
        return self.completer_email


class ActivityDevice(models.Model):
    class Status(models.TextChoices):
        EXPOSED = "exposed", "Exposed"
        REMEDIATED = "remediated", "Remediated"

    activity = models.ForeignKey(RemediationActivity, on_delete=models.CASCADE, related_name="devices")
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="activity_links")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.EXPOSED)
    remediated_at = models.DateTimeField(null=True, blank=True)
    sent_to_intune = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["activity", "device"], name="activity_device_unique"),
        ]
        indexes = [
            models.Index(fields=["activity", "status"]),
            models.Index(fields=["device", "status"]),
        ]

    def __str__(self) -> str:
        return f"{self.device_id} in {self.activity_id}"


class ActivityEvent(models.Model):
    class Kind(models.TextChoices):
        CREATED = "created", "Created"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        COMPLETED = "completed", "Completed"
        INTUNE_TASK_CREATED = "intune_task_created", "Intune task created"
        INTUNE_ERROR = "intune_error", "Intune error"
        NOTIFIED = "notified", "Notified"

    activity = models.ForeignKey(RemediationActivity, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=254)
    notes = models.TextField(blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["activity", "at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} by {self.actor_label}"


class ActivityNotification(models.Model):
    """Records a notification sent, so each kind goes out at most once per activity."""

    class Kind(models.TextChoices):
        NEW_REQUEST = "new_request", "New request"
        DUE_SOON = "due_soon", "Due soon"
        OVERDUE = "overdue", "Overdue"

    activity = models.ForeignKey(RemediationActivity, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    sent_at = models.DateTimeField(default=timezone.now)
    recipients = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["activity", "kind"], name="activity_notification_once"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} for {self.activity_id}"
