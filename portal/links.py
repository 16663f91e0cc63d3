"""Links that leave the portal (emails, Intune task descriptions) need its public address."""

from __future__ import annotations

from django.conf import settings


def absolute_url(path: str) -> str:
    """`path` (from reverse() or get_absolute_url()) on the portal's public address, PORTAL_BASE_URL."""
    return f"{settings.PORTAL_BASE_URL}{path}"
