"""Reads about device groups, devices, recommendations, exposures and exceptions, scoped to the caller.

`scope` (who sees which device groups), `exposures` (recommendations and their exposed
devices, counted from the stored counters) and `exceptions` (what is in force and covered).
"""

from .exceptions import (
    active_exception_count,
    active_exception_list,
    can_handle_exceptions,
    excepted_device_group_ids,
    exception_event_list,
    exception_get,
    exception_group_ids_in_use,
    exception_group_links,
    exception_is_suspended,
    exception_list,
    has_active_global_exception,
)
from .exposures import (
    EXCEPTION_STATE_FULL,
    EXCEPTION_STATE_LABELS,
    EXCEPTION_STATE_NONE,
    EXCEPTION_STATE_PARTIAL,
    annotate_exception_state,
    annotate_exposed_in_scope,
    exposed_counts_by_group,
    exposed_devices_for_recommendation,
    recommendation_exception_state,
    recommendation_ids_exposed_on,
    recommendation_list,
)
from .scope import User, device_group_ids_for_user, device_group_list, device_list, user_sees_all_device_groups

__all__ = [
    "EXCEPTION_STATE_FULL",
    "EXCEPTION_STATE_LABELS",
    "EXCEPTION_STATE_NONE",
    "EXCEPTION_STATE_PARTIAL",
    "User",
    "active_exception_count",
    "active_exception_list",
    "annotate_exception_state",
    "annotate_exposed_in_scope",
    "can_handle_exceptions",
    "device_group_ids_for_user",
    "device_group_list",
    "device_list",
    "excepted_device_group_ids",
    "exception_event_list",
    "exception_get",
    "exception_group_ids_in_use",
    "exception_group_links",
    "exception_is_suspended",
    "exception_list",
    "exposed_counts_by_group",
    "exposed_devices_for_recommendation",
    "has_active_global_exception",
    "recommendation_exception_state",
    "recommendation_ids_exposed_on",
    "recommendation_list",
    "user_sees_all_device_groups",
]
