"""remediation's answers to what lower apps announce (connected in RemediationConfig.ready())."""

from __future__ import annotations

from portal.queue import enqueue

REFRESH_TASK = "remediation.refresh_activity_progress"


def queue_progress_refresh(sender, *, recommendation_ids: list[int], **kwargs) -> None:
    """Exposures changed (sent after commit): bring those recommendations' activities up to date."""
    enqueue(REFRESH_TASK, list(recommendation_ids))


def demo_users_banner(sender, *, base_url: str, **kwargs) -> list[str]:
    """`runserver` prints the demo users last, when seed_demo created them (make run)."""
    from django.contrib.auth import get_user_model

    from .management.commands.seed_demo import DEMO_USERS, IT_SCOPE

    present = set(
        get_user_model().objects.filter(username__in=[u[0] for u in DEMO_USERS]).values_list("username", flat=True)
    )
    if not present:
        return []
    lines = ["Demo users:"]
    for username, password, _email, role, superuser in DEMO_USERS:
        if username not in present:
            continue
        label = "superuser" if superuser else role
        if username == "it":
            label += " (sees only " + " and ".join(IT_SCOPE) + ")"
        lines.append(f"  {username:<9} password {password:<20} {label}")
    return lines
