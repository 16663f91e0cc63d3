"""The enumerations of a remediation request (DESIGN.md section 4 values), below models and rules."""

from __future__ import annotations

from django.db import models


class RemediationOption(models.TextChoices):
    SOFTWARE_UPDATE = "software_update", "Software update"
    SOFTWARE_UNINSTALL = "software_uninstall", "Software uninstall"
    CONFIGURATION_CHANGE = "configuration_change", "Configuration change"
    ATTENTION_REQUIRED = "attention_required", "Attention required"


class Priority(models.TextChoices):
    HIGH = "high", "High"
    MEDIUM = "medium", "Medium"
    LOW = "low", "Low"


class ActivityStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
