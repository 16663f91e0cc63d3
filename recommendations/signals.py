"""What the recommendations app announces. Higher apps subscribe in their `AppConfig.ready()`.

`exposures_changed(recommendation_ids=[...])` is sent after the transaction that changed
exposures commits (a snapshot import, an admin edit): remediation refreshes its activities'
progress from it. Nothing is sent when the transaction rolls back.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.dispatch import Signal

exposures_changed = Signal()


def exposures_changed_on_commit(recommendation_ids: Iterable[int]) -> None:
    """Send `exposures_changed` for these recommendations once the current transaction commits."""
    ids = sorted({int(pk) for pk in recommendation_ids})
    if ids:
        transaction.on_commit(lambda: exposures_changed.send(sender=exposures_changed, recommendation_ids=ids))
