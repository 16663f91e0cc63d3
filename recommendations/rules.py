"""The rules of exceptions that several reads share: when one is in force, when it is expiring.

An exception is "in force" while its status is active and its last day (expires_on) has not
passed: the hourly expiry job records the change of status, but coverage never outlives the
date even if the job runs late.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import Case, Q, Value, When
from django.utils import timezone

from .models import RecommendationException

EXPIRING_SOON_DAYS = 30


def in_force_q(prefix: str = "") -> Q:
    """Status active and the last day (expires_on) not passed; `prefix` reaches it through a relation."""
    return Q(
        **{
            f"{prefix}status": RecommendationException.Status.ACTIVE,
            f"{prefix}expires_on__gte": timezone.localdate(),
        }
    )


def expiring_within_q(days: int) -> Q:
    """Active exceptions whose last day is within `days` days from today (today included)."""
    today = timezone.localdate()
    return Q(
        status=RecommendationException.Status.ACTIVE,
        expires_on__gte=today,
        expires_on__lte=today + dt.timedelta(days=int(days)),
    )


# --- severity bands ------------------------------------------------------------------

# The lower bound of each band of a 0-10 severity score, highest first (CVSS's bands, as Defender shows them).
SEVERITY_BANDS = (("critical", 9.0), ("high", 7.0), ("medium", 4.0), ("low", float("-inf")))


def severity_band(score: float | None) -> str:
    """The band of a recommendation's severity score: critical, high, medium or low."""
    value = score or 0
    return next(name for name, lower in SEVERITY_BANDS if value >= lower)


def severity_band_expression(field: str = "recommendation__severity_score") -> Case:
    """severity_band() in SQL, for grouping rows by band."""
    return Case(
        *[When(**{f"{field}__gte": lower}, then=Value(name)) for name, lower in SEVERITY_BANDS[:-1]],
        default=Value("low"),
    )
