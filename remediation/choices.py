"""The enumerations of a remediation request (DESIGN.md section 4 values), below models and rules."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class RemediationOption(models.TextChoices):
    SOFTWARE_UPDATE = "software_update", _("Software update")
    SOFTWARE_UNINSTALL = "software_uninstall", _("Software uninstall")
    CONFIGURATION_CHANGE = "configuration_change", _("Configuration change")
    ATTENTION_REQUIRED = "attention_required", _("Attention required")


class Priority(models.TextChoices):
    HIGH = "high", _("High")
    MEDIUM = "medium", _("Medium")
    LOW = "low", _("Low")


class ActivityStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    COMPLETED = "completed", _("Completed")
