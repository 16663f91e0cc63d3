from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from portal import users
from portal.models import Event
from recommendations.models import Device, DeviceGroup, SecurityRecommendation

from . import rules
from .choices import ActivityStatus, Priority, RemediationOption

SYSTEM_LABEL = users.SYSTEM_LABEL
SYSTEM_CONFIRMATION = "System confirmation"
NOT_AVAILABLE = "Not available"


class RemediationActivity(models.Model):
    class Category(models.TextChoices):
        SOFTWARE = "software", "Software"
        SECURITY_CONFIGURATION = "security_configuration", "Security configuration"

    Status = ActivityStatus

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
    # Stored (computed by the database from the row itself, so never stale) for the list's
    # orderings: an index serves ?ordering=priority / progress instead of a CASE over every row.
    priority_rank = models.GeneratedField(
        expression=rules.priority_rank_expression(), output_field=models.IntegerField(), db_persist=True
    )
    progress_stored = models.GeneratedField(
        expression=rules.progress_expression(), output_field=models.IntegerField(), db_persist=True
    )

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
            # The list's orderings with their tie-breakers (remediation.filters.ActivityOrdering).
            models.Index(fields=["priority_rank", "-created_at", "-id"], name="activity_priority_order"),
            models.Index(fields=["progress_stored", "-created_at", "-id"], name="activity_progress_order"),
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

    def get_absolute_url(self) -> str:
        """The activity's page (in the admin)."""
        return reverse("admin:remediation_remediationactivity_change", args=[self.pk])

    @property
    def is_attention_required(self) -> bool:
        return self.remediation_option == RemediationOption.ATTENTION_REQUIRED

    @property
    def is_completed(self) -> bool:
        return self.status == self.Status.COMPLETED

    @property
    def shown_target_devices(self) -> int:
        """The target devices the reader may see: their groups' (annotated by selectors.activity_list
        for a scoped user), else the stored counter."""
        return getattr(self, "target_devices_in_scope", self.target_devices)

    @property
    def shown_fixed_devices(self) -> int:
        return getattr(self, "fixed_devices_in_scope", self.fixed_devices)

    @property
    def progress(self) -> int | None:
        """0-100 of the devices the reader may see, or None for attention required (no progress)."""
        return rules.progress_percent(
            remediation_option=self.remediation_option,
            fixed_devices=self.shown_fixed_devices,
            target_devices=self.shown_target_devices,
        )

    @property
    def is_overdue(self) -> bool:
        return rules.is_overdue(status=self.status, due_on=self.due_on)

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

    # No index of its own: the unique pair (activity, device) starts with it.
    activity = models.ForeignKey(RemediationActivity, on_delete=models.CASCADE, related_name="devices", db_index=False)
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="activity_links")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.EXPOSED)
    remediated_at = models.DateTimeField(null=True, blank=True)
    sent_to_intune = models.BooleanField(default=False)
    # A copy of device.computer_dns_name, so an activity's device pages sort on an index. Kept
    # by database triggers (migration 0006): filled on insert, followed on every rename.
    device_name = models.CharField(max_length=255, blank=True, default="", editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["activity", "device"], name="activity_device_unique"),
        ]
        indexes = [
            models.Index(fields=["device", "status"]),
            models.Index(fields=["activity", "device_name", "id"], name="activity_device_name_order"),
            models.Index(fields=["activity", "status", "device_name", "id"], name="activity_device_status_order"),
        ]

    def __str__(self) -> str:
        return f"{self.device_id} in {self.activity_id}"


class ActivityEvent(Event):
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

    class Meta(Event.Meta):
        indexes = [models.Index(fields=["activity", "at"])]


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
