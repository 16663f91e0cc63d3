"""Every admin page checks its permission, before it looks anything up.

A staff account that belongs to a device group's auth group but holds no role (no permission at
all) reaches none of the portal's pages: each answers 403, and nothing changes. The roles reach
what their permissions allow, and a malformed id answers 404, never a 500.
"""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from recommendations.models import RecommendationException
from recommendations.services import exception_create
from remediation.models import RemediationActivity
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, UserFactory, expose
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(security_user):
    import datetime as dt

    from django.utils import timezone

    rec = RecommendationFactory(external_id="va-widget")
    servers = DeviceGroupFactory(name="Servers")
    expose(rec, servers, 3)
    activity = make_activity(user=security_user, recommendation=rec, groups=[servers])
    exception = exception_create(
        user=security_user,
        recommendation=rec,
        justification="risk_accepted",
        context="Accepted.",
        expires_on=timezone.localdate() + dt.timedelta(days=10),
        scope="device_groups",
        device_groups=[servers],
    )
    return {"rec": rec, "servers": servers, "activity": activity, "exception": exception}


@pytest.fixture
def roleless(client, world):
    """Staff, in the auth group that may see Servers, with no role and no permission."""
    team = Group.objects.create(name="Servers team")
    world["servers"].user_groups.add(team)
    user = UserFactory(username="roleless", is_staff=True)
    user.groups.add(team)
    client.force_login(user)
    return client


def pages(world):
    """(method, url) of every page the portal adds to the admin, and the model pages it relies on."""
    a, r, e = world["activity"].pk, world["rec"].pk, world["exception"].pk
    inventory = ["devicegroup", "device", "securityrecommendation", "exposure"]
    return [
        ("get", reverse("admin:remediation_remediationactivity_changelist")),
        ("get", reverse("admin:remediation_remediationactivity_change", args=[a])),
        ("post", reverse("admin:remediation_remediationactivity_complete", args=[a])),
        ("get", reverse("admin:remediation_remediationactivity_devices_csv", args=[a])),
        ("get", reverse("admin:remediation_remediationactivity_export")),
        ("get", reverse("admin:recommendations_securityrecommendation_remediation_options", args=[r])),
        ("get", reverse("admin:recommendations_securityrecommendation_changelist")),
        ("get", reverse("admin:recommendations_securityrecommendation_change", args=[r])),
        ("get", reverse("admin:recommendations_recommendationexception_options", args=[r])),
        ("get", reverse("admin:recommendations_recommendationexception_options", args=["x"])),
        ("get", reverse("admin:recommendations_recommendationexception_changelist")),
        ("get", reverse("admin:recommendations_recommendationexception_change", args=[e])),
        ("post", reverse("admin:recommendations_recommendationexception_cancel", args=[e])),
        *[("get", reverse(f"admin:recommendations_{model}_export")) for model in inventory],
        *[("get", reverse(f"admin:recommendations_{model}_import")) for model in inventory],
        ("get", reverse("admin:recommendations_importjob_changelist")),
        ("get", reverse("admin:intune_advanced_features")),
        ("post", reverse("admin:intune_intunetask_retry", args=[a])),
        ("get", reverse("admin:intune_intunetask_changelist")),
        ("get", reverse("admin:admin_logentry_changelist")),
    ]


def test_staff_without_a_role_reach_no_portal_page(roleless, world):
    answers = {url: getattr(roleless, method)(url).status_code for method, url in pages(world)}

    assert answers == dict.fromkeys(answers, 403)
    activity = RemediationActivity.objects.get()
    assert (activity.status, activity.completed_by) == ("active", None)
    assert RecommendationException.objects.get().status == "active"


def test_the_activity_page_needs_the_view_permission_even_in_scope(roleless, world):
    """The gap found: in a device group's auth group, the activity page opened without any role."""
    page = roleless.get(reverse("admin:remediation_remediationactivity_change", args=[world["activity"].pk]))
    assert page.status_code == 403
    assert world["activity"].title not in page.content.decode()


def test_a_malformed_recommendation_id_on_exception_options_is_a_404(client, security_user, world):
    client.force_login(security_user)
    for raw in ["x", "1.5", "9" * 30, "%00"]:
        response = client.get(f"/admin/recommendations/recommendationexception/new/{raw}/")
        assert response.status_code == 404, raw
    assert client.get(reverse("admin:recommendations_recommendationexception_change", args=["9" * 30])).status_code in (
        302,
        404,
    )


def test_inventory_exports_need_the_models_view_permission(client, it_user, world):
    """IT staff view devices (their groups), so they export them; a role without the view permission does not."""
    client.force_login(it_user)
    response = client.post(
        reverse("admin:recommendations_device_export"),
        {"format": "0", "resource": "0", "deviceresource_machine_id": "on"},
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert client.get(reverse("admin:recommendations_device_import")).status_code == 403  # no change permission
