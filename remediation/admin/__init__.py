"""Remediation in the admin: the activities (`activities`, with their pages in `views`) and the
recommendation admin extended with the request form (`recommendations`). Importing the
package registers them."""

from .activities import RemediationActivityAdmin
from .recommendations import RemediationRecommendationAdmin

__all__ = ["RemediationActivityAdmin", "RemediationRecommendationAdmin"]
