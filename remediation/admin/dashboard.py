"""The admin index's dashboard (tiles and charts) and the activity page's chart: remediation.dashboard's
figures turned into links and SVG (portal.charts). Configuration and wording only."""

from __future__ import annotations

from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from portal import permissions as perm
from portal.charts import Bar, Marker, Series, bar_chart, line_chart
from portal.formatting import decimal, grouped
from recommendations.selectors import active_exception_count

from .. import dashboard
from ..models import RemediationActivity, SeverityBand

BAND_COLORS = {
    SeverityBand.CRITICAL: "#7b1e1e",
    SeverityBand.HIGH: "#d9480f",
    SeverityBand.MEDIUM: "#e0a100",
    SeverityBand.LOW: "#5c940d",
}
ACTIVITIES = "admin:remediation_remediationactivity_changelist"


def _url(name: str, query: str = "") -> str | None:
    try:
        return reverse(name) + (f"?{query}" if query else "")
    except NoReverseMatch:
        return None


def tiles(user) -> list[dict]:
    """The six tiles: label, number, link to the filtered list, and a tone for the overdue one."""
    result = []
    if user.has_perm(perm.VIEW_ACTIVITY):
        counts = dashboard.tile_counts(user=user)
        result += [
            {
                "id": "active",
                "label": _("Active activities"),
                "value": counts["active"],
                "url": _url(ACTIVITIES, "status__exact=active"),
            },
            {
                "id": "awaiting-decision",
                "label": _("Awaiting IT decision"),
                "value": counts["awaiting_decision"],
                "url": _url(ACTIVITIES, "status__exact=active&ticket_status__exact=pending"),
            },
            {
                "id": "overdue",
                "label": _("Overdue"),
                "value": counts["overdue"],
                "url": _url(ACTIVITIES, "overdue=yes"),
                "tone": "bad" if counts["overdue"] else "",
            },
            {
                "id": "due-soon",
                "label": _("Due within %(days)d days") % {"days": dashboard.DUE_SOON_DAYS},
                "value": counts["due_soon"],
                "url": _url(ACTIVITIES, "overdue=soon"),
                "tone": "warn" if counts["due_soon"] else "",
            },
        ]
    if user.has_perm(perm.VIEW_DEVICE):
        exposed = dashboard.exposed_devices_now(user=user)
        result.append(
            {
                "id": "exposed-devices",
                "label": _("Exposed devices"),
                "value": "—" if exposed is None else exposed,
                "url": _url("admin:recommendations_device_changelist", "exposed=yes"),
            }
        )
    if user.has_perm(perm.VIEW_EXCEPTION):
        result.append(
            {
                "id": "active-exceptions",
                "label": _("Active exceptions"),
                "value": active_exception_count(user=user),
                "url": _url("admin:recommendations_recommendationexception_changelist", "status__exact=active"),
            }
        )
    return result


def charts(user) -> list:
    """The dashboard's four charts, in the viewer's scope."""
    if not user.has_perm(perm.VIEW_ACTIVITY):
        return []
    bands = dict(SeverityBand.choices)
    by_band = dashboard.exposed_by_band(user=user)
    ttr = dashboard.time_to_remediate(user=user)
    on_time, total = dashboard.completed_on_time(user=user)
    share = round(100 * on_time / total) if total else None
    return [
        line_chart(
            title=_("Remediation burn-down: open exposures of active activities, last %(days)d days")
            % {"days": dashboard.CHART_DAYS},
            series=[Series(_("Open exposures"), dashboard.burn_down(user=user), "#417690")],
        ),
        line_chart(
            title=_("Exposed devices per severity, last %(days)d days") % {"days": dashboard.CHART_DAYS},
            series=[Series(str(bands[band]), points, BAND_COLORS[band]) for band, points in by_band.items()],
        ),
        bar_chart(
            title=_("Mean time to remediate by severity (completed activities)"),
            bars=[
                Bar(
                    str(bands[band]),
                    mean,
                    _("no completed activity")
                    if mean is None
                    else ngettext("%(days)s days (%(n)d activity)", "%(days)s days (%(n)d activities)", n)
                    % {"days": decimal(mean), "n": n},
                    BAND_COLORS[band],
                )
                for band, mean, n in ttr
            ],
        ),
        bar_chart(
            title=_("Activities completed by their due date"),
            bars=[
                Bar(
                    _("On time"),
                    share,
                    _("no completed activity with a due date")
                    if share is None
                    else _("%(share)d%% (%(on_time)d of %(total)d)")
                    % {"share": share, "on_time": on_time, "total": total},
                    "#2e7d32",
                ),
                Bar(
                    _("Late"),
                    None if share is None else 100 - share,
                    "—"
                    if share is None
                    else _("%(share)d%% (%(late)d of %(total)d)")
                    % {"share": 100 - share, "late": total - on_time, "total": total},
                    "#ba2121",
                ),
            ],
            max_value=100,
        ),
    ]


def activity_chart(*, activity: RemediationActivity, user):
    """The activity page's chart: fixed devices over time against the target and the due date."""
    if activity.is_attention_required:
        return None
    markers = [
        Marker(
            _("Target: %(n)s devices") % {"n": grouped(activity.shown_target_devices)},
            value=activity.shown_target_devices,
        )
    ]
    if activity.due_on:
        markers.append(Marker(_("Due %(day)s") % {"day": activity.due_on.isoformat()}, day=activity.due_on))
    return line_chart(
        title=_("Fixed devices over time"),
        series=[Series(_("Fixed devices"), dashboard.activity_fixed(activity=activity, user=user), "#2e7d32")],
        markers=markers,
    )
