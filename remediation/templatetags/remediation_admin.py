"""Template tags for the admin index: the 'Top remediation activities' card and settings links."""

from __future__ import annotations

from django import template
from django.urls import NoReverseMatch, reverse

from portal import permissions as perm
from recommendations.selectors import active_exception_count
from remediation.selectors import top_activity_list

register = template.Library()

TOP_ACTIVITIES = 5


def _url(name: str) -> str | None:
    try:
        return reverse(name)
    except NoReverseMatch:
        return None


@register.inclusion_tag("admin/remediation/_top_activities_card.html", takes_context=True)
def top_remediation_activities(context):
    """Active activities the user may see, by severity then due date, with progress."""
    request = context["request"]
    user = request.user
    if not user.has_perm(perm.VIEW_ACTIVITY):
        return {"visible": False}
    # Those the user may see (global ones and those of their device groups), if they may see any.
    exceptions = active_exception_count(user=user) if user.has_perm(perm.VIEW_EXCEPTION) else 0
    return {
        "visible": True,
        "activities": list(top_activity_list(user=user, limit=TOP_ACTIVITIES)),
        "changelist_url": reverse("admin:remediation_remediationactivity_changelist") + "?status__exact=active",
        "exception_count": exceptions,
        "exceptions_url": _url("admin:recommendations_recommendationexception_changelist") if exceptions else None,
    }


@register.simple_tag
def advanced_features_url() -> str | None:
    """Settings → Advanced features (registered by the Intune app), or None until it exists."""
    return _url("admin:intune_advanced_features")


@register.simple_tag(takes_context=True)
def dashboard_tiles(context) -> list[dict]:
    """The index's tiles (remediation.admin.dashboard), in the viewer's scope."""
    from remediation.admin.dashboard import tiles

    return tiles(context["request"].user)


@register.simple_tag(takes_context=True)
def dashboard_charts(context) -> list:
    """The index's charts, drawn from the stored daily figures, in the viewer's scope."""
    from remediation.admin.dashboard import charts

    return charts(context["request"].user)
