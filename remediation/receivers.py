"""remediation's answers to what lower apps announce (connected in RemediationConfig.ready())."""

from __future__ import annotations

from portal.queue import enqueue

REFRESH_TASK = "remediation.refresh_activity_progress"


def queue_progress_refresh(sender, *, recommendation_ids: list[int], **kwargs) -> None:
    """Exposures changed (sent after commit): bring those recommendations' activities up to date."""
    enqueue(REFRESH_TASK, list(recommendation_ids))
