"""Permission codenames of the portal, one constant each: code says `perm.DECIDE`, never the string.

The roles (groups `Security staff`, `IT staff`) are created with these permissions by
remediation's data migration; DESIGN.md section 5 says who holds which.
"""

from __future__ import annotations

# The roles (auth groups) of DESIGN.md section 5.
SECURITY_STAFF = "Security staff"
IT_STAFF = "IT staff"

VIEW_ALL_DEVICE_GROUPS = "recommendations.view_all_device_groups"
VIEW_DEVICE_GROUP = "recommendations.view_devicegroup"
VIEW_RECOMMENDATION = "recommendations.view_securityrecommendation"
ADD_RECOMMENDATION = "recommendations.add_securityrecommendation"
VIEW_DEVICE = "recommendations.view_device"
VIEW_EXCEPTION = "recommendations.view_recommendationexception"
HANDLE_EXCEPTIONS = "recommendations.handle_exceptions"

VIEW_ACTIVITY = "remediation.view_remediationactivity"
ADD_ACTIVITY = "remediation.add_remediationactivity"
DECIDE_ACTIVITY = "remediation.decide_activity"
COMPLETE_ACTIVITY = "remediation.complete_activity"
EXPORT_ACTIVITY = "remediation.export_activity"


def user_has(user, perm: str) -> bool:
    """An active user whose role (or superuser status) carries `perm`."""
    return bool(user is not None and user.is_active and user.has_perm(perm))


def model_perm(opts, action: str) -> str:
    """`app_label.<action>_<model>` for a model's `_meta` (add, change, delete, view)."""
    return f"{opts.app_label}.{action}_{opts.model_name}"


def codename(perm: str) -> str:
    """`view_all_device_groups` of `recommendations.view_all_device_groups`."""
    return perm.split(".", 1)[1]
