"""How people are named in histories, exports and messages."""

from __future__ import annotations

SYSTEM_LABEL = "System"


def actor_label(user) -> str:
    """A person's email, else their username; `System` when no person acted."""
    if user is None:
        return SYSTEM_LABEL
    return user.email or user.get_username()
