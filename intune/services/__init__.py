"""Every write about Intune, one module a sub-domain: `connection` (the toggle), `push` (create a
task once) and `sync` (send back decisions, read statuses). Graph is reached only through
`intune.graph`; task bodies come from `intune.payload`."""

from .connection import (
    intune_connection_set,
    intune_enabled,
    intune_task_record_decision,
    intune_test_connection,
    intune_unavailable_reason,
    last_sync,
)
from .push import intune_push
from .sync import SyncResult, intune_sync, intune_sync_activity

__all__ = [
    "SyncResult",
    "intune_connection_set",
    "intune_enabled",
    "intune_push",
    "intune_sync",
    "intune_sync_activity",
    "intune_task_record_decision",
    "intune_test_connection",
    "intune_unavailable_reason",
    "last_sync",
]
