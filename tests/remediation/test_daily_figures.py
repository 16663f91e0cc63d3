"""The daily figures (remediation.services.figures) and the dashboard that draws them, in scope."""

import datetime as dt
import re

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from recommendations.models import Exposure
from remediation.dashboard import burn_down, completed_on_time, exposed_by_band, tile_counts, time_to_remediate
from remediation.models import DailyFigure, RemediationActivity
from remediation.services import activities_refresh_progress, activity_complete, daily_figures_record
from remediation.tasks import refresh_activity_progress
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, expose
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db
TODAY = timezone.localdate()
M = DailyFigure.Metric


def figures(metric, **filters):
    return {
        (f.device_group.name, f.band, f.activity_id): f.value
        for f in DailyFigure.objects.filter(day=TODAY, metric=metric, **filters).select_related("device_group")
    }


def fix(activity, n):
    device_ids = list(activity.devices.values_list("device_id", flat=True)[:n])
    Exposure.objects.filter(recommendation=activity.recommendation, device_id__in=device_ids).update(
        remediated_at=timezone.now()
    )
    activities_refresh_progress(recommendation_ids=[activity.recommendation_id])


@pytest.fixture
def two_groups(security_user):
    """A critical recommendation on 4 Servers and 2 Laptops, a low one on 3 Servers (other devices)."""
    servers, laptops = DeviceGroupFactory(name="Servers"), DeviceGroupFactory(name="Laptops")
    critical = RecommendationFactory(name="Critical thing", severity_score=9.5)
    low = RecommendationFactory(name="Low thing", severity_score=2.0)
    expose(critical, servers, 4)
    expose(critical, laptops, 2)
    expose(low, servers, 3)
    activity = make_activity(user=security_user, recommendation=critical, groups=[servers, laptops])
    return servers, laptops, activity


def test_record_counts_open_targets_fixed_devices_and_exposed_devices_per_band(two_groups):
    servers, laptops, activity = two_groups
    fix(activity, 1)  # one of the six target devices (the first by id: a server)

    daily_figures_record()

    assert figures(M.OPEN_TARGETS) == {("Servers", "", None): 3, ("Laptops", "", None): 2}
    assert figures(M.ACTIVITY_FIXED) == {("Servers", "", activity.pk): 1, ("Laptops", "", activity.pk): 0}
    assert figures(M.EXPOSED_DEVICES) == {
        ("Servers", "critical", None): 3,
        ("Servers", "low", None): 3,
        ("Servers", "", None): 6,  # distinct devices, whatever the band
        ("Laptops", "critical", None): 2,
        ("Laptops", "", None): 2,
    }


def test_a_second_record_the_same_day_replaces_the_days_figures(two_groups):
    _servers, _laptops, activity = two_groups
    daily_figures_record()
    fix(activity, 6)  # all fixed: the activity completes itself

    daily_figures_record()

    assert figures(M.OPEN_TARGETS) == {}
    assert figures(M.ACTIVITY_FIXED) == {}  # completed activities are no longer counted
    assert DailyFigure.objects.filter(day=TODAY, metric=M.EXPOSED_DEVICES, band="").count() == 1


def test_the_refresh_job_and_command_write_todays_figures(two_groups):
    refresh_activity_progress.apply()
    assert figures(M.OPEN_TARGETS) == {("Servers", "", None): 4, ("Laptops", "", None): 2}
    DailyFigure.objects.all().delete()
    call_command("refresh_activity_progress", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert sum(figures(M.OPEN_TARGETS).values()) == 6


def test_charts_read_the_stored_figures_summed_over_the_viewers_groups(two_groups, it_user):
    servers, laptops, _activity = two_groups
    ten_days_ago = TODAY - dt.timedelta(days=10)
    for group, value in ((servers, 40), (laptops, 7)):
        DailyFigure.objects.create(day=ten_days_ago, metric=M.OPEN_TARGETS, device_group=group, value=value)
        DailyFigure.objects.create(
            day=ten_days_ago, metric=M.EXPOSED_DEVICES, device_group=group, band="high", value=value + 1
        )

    everyone = dict(burn_down(user=_sees_all(two_groups)))
    scoped = dict(burn_down(user=it_user))  # IT sees Servers (and Workstations), not Laptops

    assert everyone[ten_days_ago] == 47
    assert scoped[ten_days_ago] == 40
    assert scoped[ten_days_ago - dt.timedelta(days=1)] is None  # no figure stored: a gap, not a 0
    assert dict(exposed_by_band(user=it_user)["high"])[ten_days_ago] == 41
    assert len(burn_down(user=it_user)) == 90


def test_the_dashboard_draws_real_charts_with_their_data_tables(client, two_groups, security_user):
    servers, _laptops, _activity = two_groups
    DailyFigure.objects.create(
        day=TODAY - dt.timedelta(days=3), metric=M.OPEN_TARGETS, device_group=servers, value=1234
    )
    client.force_login(security_user)

    html = client.get(reverse("admin:index")).content.decode()

    assert html.count('<svg viewBox="0 0 640') >= 4
    assert "Remediation burn-down" in html
    assert 'role="img"' in html
    assert "<title id=" in html
    burn = html[html.index("Remediation burn-down") :]
    burn = burn[: burn.index("</figure>")]
    assert "<polyline" in burn or "<circle" in burn
    row = re.search(
        r"<tr><th scope='row'>" + (TODAY - dt.timedelta(days=3)).isoformat() + r"</th><td>([^<]+)</td>", burn
    )
    assert row
    assert row.group(1) == "1,234"


def test_tiles_count_in_the_viewers_scope_and_link_to_the_filtered_lists(client, security_user, it_user):
    servers, laptops = DeviceGroupFactory(name="Servers"), DeviceGroupFactory(name="Laptops")
    rec = RecommendationFactory()
    expose(rec, servers, 2)
    expose(rec, laptops, 2)
    pending = make_activity(user=security_user, recommendation=rec, groups=[servers])
    late = make_activity(user=security_user, recommendation=rec, groups=[servers])
    RemediationActivity.objects.filter(pk=late.pk).update(due_on=TODAY - dt.timedelta(days=1), ticket_status="approved")
    make_activity(user=security_user, recommendation=rec, groups=[laptops], due_on=TODAY + dt.timedelta(days=30))
    assert pending.due_on <= TODAY + dt.timedelta(days=7)

    assert tile_counts(user=security_user) == {"active": 3, "awaiting_decision": 2, "overdue": 1, "due_soon": 1}
    assert tile_counts(user=it_user) == {"active": 2, "awaiting_decision": 1, "overdue": 1, "due_soon": 1}

    daily_figures_record()
    client.force_login(it_user)
    html = client.get(reverse("admin:index")).content.decode()
    tiles = html[html.index('id="dashboard-tiles"') : html.index("</ul>", html.index('id="dashboard-tiles"'))]
    assert re.search(r'id="tile-active">\s*<a href="[^"]*\?status__exact=active"><span class="rp-tile-value">2<', tiles)
    assert 'id="tile-overdue"' in tiles
    assert "overdue=yes" in tiles
    assert re.search(r'id="tile-exposed-devices">\s*<a [^>]*><span class="rp-tile-value">2<', tiles)  # Servers only

    listed = client.get(reverse("admin:remediation_remediationactivity_changelist") + "?overdue=soon")
    assert [a.pk for a in listed.context["cl"].result_list] == [pending.pk]


def test_mean_time_to_remediate_and_share_on_time_come_from_completed_activities(security_user):
    group = DeviceGroupFactory(name="Servers")
    critical, low = RecommendationFactory(severity_score=9.8), RecommendationFactory(severity_score=1.0)
    expose(critical, group, 1)
    expose(low, group, 1)
    now = timezone.now()
    for rec, days, due_in in ((critical, 4, 10), (critical, 2, -1), (low, 10, 30)):
        activity = make_activity(user=security_user, recommendation=rec, groups=[group])
        activity_complete(activity=activity, user=security_user)
        RemediationActivity.objects.filter(pk=activity.pk).update(
            created_at=now - dt.timedelta(days=days), due_on=TODAY + dt.timedelta(days=due_in)
        )

    ttr = {
        band: (round(mean, 1) if mean is not None else None, n)
        for band, mean, n in time_to_remediate(user=security_user)
    }

    assert ttr == {"critical": (3.0, 2), "high": (None, 0), "medium": (None, 0), "low": (10.0, 1)}
    assert completed_on_time(user=security_user) == (2, 3)


def _sees_all(two_groups):
    from django.contrib.auth.models import Group

    from tests.recommendations.factories import UserFactory

    user = UserFactory(username="all-seeing")
    user.groups.add(Group.objects.get(name="Security staff"))
    return user
