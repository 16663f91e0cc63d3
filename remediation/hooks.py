"""What an integration (a device-management tool such as Microsoft Intune) may add to an activity.

remediation never imports an integration: an app higher up registers its implementation in
its `AppConfig.ready()` (`intune.apps.IntuneConfig` registers `intune.backend.IntuneBackend`)
and remediation calls the one registered, or this module's no-op default when none is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Panel:
    """The integration's part of the activity page: a template and its context."""

    template: str
    context: dict[str, Any] = field(default_factory=dict)


class Integration:
    """The default: no integration. Subclasses override what they offer."""

    def enabled(self) -> bool:
        """Whether requests may ask the integration for a task now (the request form's checkbox)."""
        return False

    def unavailable_reason(self) -> str:
        """Why requests cannot ask for a task now ("" while they can): shown on the request form."""
        return ""

    def activity_created(self, *, activity_id: str) -> None:
        """An activity that asked for a task was created and committed."""

    def decision_taken(self, *, activity, decision: str, note: str = "") -> None:
        """The portal approved, rejected or completed an activity (`approved`, `rejected`,
        `completed`); called inside the transaction that records it."""

    def prepare_activities(self, queryset):
        """Add what `activity_status` reads to an activity queryset (select_related ...)."""
        return queryset

    def activity_status(self, activity) -> dict | None:
        """The task's state for the API's `intune` field, or None when there is no task."""
        return None

    def panel(self, *, activity, request) -> Panel | None:
        """The activity page's panel, or None."""
        return None


_registered: Integration = Integration()


def register(integration: Integration) -> None:
    """Called once by the integration's AppConfig.ready()."""
    global _registered
    _registered = integration


def integration() -> Integration:
    return _registered
