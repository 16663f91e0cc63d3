from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from portal import users
from portal.models import Event
from recommendations.models import Device, DeviceGroup, SecurityRecommendation

from . import rules
from .choices import ActivityStatus, Priority, RemediationOption

SYSTEM_LABEL = users.SYSTEM_LABEL
SYSTEM_CONFIRMATION = "System confirmation"
NOT_AVAILABLE = "Not available"
CLOSED_WITHOUT_DECISION = _("Closed")
CLOSED_WITHOUT_DECISION_HELP = _("Completed before IT approved or rejected it")


class RemediationActivity(models.Model):
    class Category(models.TextChoices):
        SOFTWARE = "software", _("Software")
        SECURITY_CONFIGURATION = "security_configuration", _("Security configuration")

    Status = ActivityStatus

    class TicketStatus(models.TextChoices):
        NONE = "", "—"
        PENDING = "pending", _("Pending")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")

    class CompletionMethod(models.TextChoices):
        NONE = "", "—"
        MANUAL = "manual", _("Manual")
        AUTOMATIC = "automatic", _("System confirmation")
        UNKNOWN = "unknown", _("Not available")

    id = models.UUIDField(_("id"), primary_key=True, default=uuid.uuid4, editable=False)
    recommendation = models.ForeignKey(
        SecurityRecommendation, on_delete=models.PROTECT, related_name="activities", verbose_name=_("recommendation")
    )
    title = models.CharField(_("title"), max_length=500)
    description = models.TextField(_("description"), blank=True)
    remediation_option = models.CharField(_("remediation option"), max_length=32, choices=RemediationOption.choices)
    category = models.CharField(_("category"), max_length=32, choices=Category.choices)
    priority = models.CharField(_("priority"), max_length=8, choices=Priority.choices)
    due_on = models.DateField(_("due on"), null=True, blank=True)
    requester_notes = models.TextField(_("requester notes"), blank=True)
    device_groups = models.ManyToManyField(DeviceGroup, related_name="activities", verbose_name=_("device groups"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+", verbose_name=_("created by")
    )
    requester_email = models.EmailField(_("requester email"), blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.ACTIVE)
    ticket_status = models.CharField(_("ticket status"), max_length=16, choices=TicketStatus.choices, blank=True)
    it_notes = models.TextField(_("it notes"), blank=True)
    completion_method = models.CharField(
        _("completion method"), max_length=16, choices=CompletionMethod.choices, blank=True
    )
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("completed by"),
    )
    completer_email = models.CharField(_("completer email"), max_length=254, blank=True)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)
    create_intune_task = models.BooleanField(_("create intune task"), default=False)
    target_devices = models.PositiveIntegerField(_("target devices"), default=0)
    fixed_devices = models.PositiveIntegerField(_("fixed devices"), default=0)
    # Stored (computed by the database from the row itself, so never stale) for the list's
    # orderings: an index serves ?ordering=priority / progress instead of a CASE over every row.
    priority_rank = models.GeneratedField(
        expression=rules.priority_rank_expression(), output_field=models.IntegerField(), db_persist=True
    )
    progress_stored = models.GeneratedField(
        expression=rules.progress_expression(), output_field=models.IntegerField(), db_persist=True
    )

    class Meta:
        verbose_name = _("remediation activity")
        ordering = ["-created_at"]
        verbose_name_plural = _("remediation activities")
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
    def ticket_label(self) -> str:
        """The ticket status as lists and pages show it: a request completed while still pending
        was closed without a decision, which is what it says (not "Pending")."""
        if self.is_completed and self.ticket_status == self.TicketStatus.PENDING:
            return str(CLOSED_WITHOUT_DECISION)
        return self.get_ticket_status_display() if self.ticket_status else "—"

    @property
    def ticket_chip(self) -> str:
        """The chip colour of the ticket status (a CSS suffix)."""
        if self.is_completed and self.ticket_status == self.TicketStatus.PENDING:
            return "closed"
        return self.ticket_status or "none"

    @property
    def completed_by_label(self) -> str:
        """What the portal shows as 'Completed by'."""
        if self.completion_method == self.CompletionMethod.AUTOMATIC:
            return SYSTEM_CONFIRMATION
        if self.completion_method == self.CompletionMethod.UNKNOWN:
            return NOT_AVAILABLE
        return self.completer_email

    @property
    def completed_by_display(self) -> str:
        """'Completed by' for people to read, in the active language (the API keeps completed_by_label)."""
        if self.completion_method in (self.CompletionMethod.AUTOMATIC, self.CompletionMethod.UNKNOWN):
            return str(self.get_completion_method_display())
        return self.completer_email


class ActivityDevice(models.Model):
    class Status(models.TextChoices):
        EXPOSED = "exposed", _("Exposed")
        REMEDIATED = "remediated", _("Remediated")

    # No index of its own: the unique pair (activity, device) starts with it.
    activity = models.ForeignKey(
        RemediationActivity,
        on_delete=models.CASCADE,
        related_name="devices",
        db_index=False,
        verbose_name=_("activity"),
    )
    device = models.ForeignKey(
        Device, on_delete=models.CASCADE, related_name="activity_links", verbose_name=_("device")
    )
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.EXPOSED)
    remediated_at = models.DateTimeField(_("remediated at"), null=True, blank=True)
    sent_to_intune = models.BooleanField(_("sent to intune"), default=False)
    # A copy of device.computer_dns_name, so an activity's device pages sort on an index. Kept
    # by database triggers (migration 0006): filled on insert, followed on every rename.
    device_name = models.CharField(_("device name"), max_length=255, blank=True, default="", editable=False)
    # A copy of device.device_group_id, so a scoped reader's counts read the activity's own rows
    # (found by the activity's indexes) rather than join every device. No index of its own: it
    # measured no faster and made every purge dearer. Kept by database triggers (migration 0010):
    # filled on insert, followed when a device moves to another group.
    scope_group_id = models.BigIntegerField(_("device group id"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("activity device")
        verbose_name_plural = _("activity devices")
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
        CREATED = "created", _("Created")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")
        COMPLETED = "completed", _("Completed")
        INTUNE_TASK_CREATED = "intune_task_created", _("Intune task created")
        INTUNE_ERROR = "intune_error", _("Intune error")
        NOTIFIED = "notified", _("Notified")

    activity = models.ForeignKey(
        RemediationActivity, on_delete=models.CASCADE, related_name="events", verbose_name=_("activity")
    )
    kind = models.CharField(_("kind"), max_length=32, choices=Kind.choices)

    class Meta(Event.Meta):
        verbose_name = _("activity event")
        verbose_name_plural = _("activity events")
        indexes = [models.Index(fields=["activity", "at"])]


class ActivityNotification(models.Model):
    """Records a notification sent, so each kind goes out at most once per activity."""

    class Kind(models.TextChoices):
        NEW_REQUEST = "new_request", _("New request")
        DUE_SOON = "due_soon", _("Due soon")
        OVERDUE = "overdue", _("Overdue")

    activity = models.ForeignKey(
        RemediationActivity, on_delete=models.CASCADE, related_name="notifications", verbose_name=_("activity")
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    sent_at = models.DateTimeField(_("sent at"), default=timezone.now)
    recipients = models.PositiveIntegerField(_("recipients"), default=0)

    class Meta:
        verbose_name = _("activity notification")
        verbose_name_plural = _("activity notifications")
        constraints = [
            models.UniqueConstraint(fields=["activity", "kind"], name="activity_notification_once"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} for {self.activity_id}"


class SeverityBand(models.TextChoices):
    """Defender's severity bands of a recommendation's score (0-10)."""

    LOW = "low", _("Low")
    MEDIUM = "medium", _("Medium")
    HIGH = "high", _("High")
    CRITICAL = "critical", _("Critical")


class DailyFigure(models.Model):
    """One number of one day for one device group: what the dashboard's charts draw.

    Written by the refresh job (after every import, and nightly) and by seed_demo; a chart reads
    at most a few hundred of these rows instead of scanning exposures. A day's rows are replaced
    as a whole, so a rerun on the same day corrects them.
    """

    class Metric(models.TextChoices):
        # Target devices of the active activities still exposed (the burn-down).
        OPEN_TARGETS = "open_targets", _("Open exposures of active activities")
        # Devices with at least one open exposure, per severity band (band "" is any band).
        EXPOSED_DEVICES = "exposed_devices", _("Exposed devices")
        # One active activity's fixed devices.
        ACTIVITY_FIXED = "activity_fixed", _("Fixed devices of an activity")

    day = models.DateField()
    metric = models.CharField(max_length=24, choices=Metric.choices)
    device_group = models.ForeignKey(DeviceGroup, on_delete=models.CASCADE, related_name="+")
    band = models.CharField(max_length=8, choices=SeverityBand.choices, blank=True, default="")
    activity = models.ForeignKey(
        RemediationActivity, null=True, blank=True, on_delete=models.CASCADE, related_name="daily_figures"
    )
    value = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "metric", "device_group", "band"],
                condition=Q(activity__isnull=True),
                name="daily_figure_unique",
            ),
            models.UniqueConstraint(
                fields=["day", "metric", "device_group", "activity"],
                condition=Q(activity__isnull=False),
                name="daily_figure_activity_unique",
            ),
        ]
        indexes = [models.Index(fields=["metric", "day"])]

    def __str__(self) -> str:
        return f"{self.day} {self.metric} {self.device_group_id}: {self.value}"
