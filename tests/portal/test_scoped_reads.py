"""What a scoped user sees is in scope (DESIGN.md section 5): counts and names of their device
groups only, on every page, API answer and export; an unknown device group and an out-of-scope
one get the same answer.

The world: recommendation "va-widget" exposed on 2 Servers devices (the IT user's group) and 3
Laptops devices (not theirs); one activity targets both groups, one Laptops device is fixed; a
device-group exception covers Servers and Laptops, then is canceled for Laptops.
"""

import csv
import datetime as dt
import io

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from intune.models import IntuneTask
from recommendations.models import DeviceGroup, Exposure
from recommendations.services import exception_cancel, exception_create
from remediation.services import activities_refresh_progress
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, expose
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(security_user, it_user):
    rec = RecommendationFactory(external_id="va-widget", name="Update Widget")
    servers = DeviceGroup.objects.get(name="Servers")
    laptops = DeviceGroupFactory(name="Laptops")
    expose(rec, servers, 2)
    fixed, *_ = expose(rec, laptops, 3)
    activity = make_activity(user=security_user, recommendation=rec, groups=[servers, laptops])
    Exposure.objects.filter(recommendation=rec, device=fixed).update(remediated_at=timezone.now())
    activities_refresh_progress(recommendation_ids=[rec.pk])
    exception = exception_create(
        user=security_user,
        recommendation=rec,
        justification="risk_accepted",
        context="Accepted until the upgrade.",
        expires_on=timezone.localdate() + dt.timedelta(days=20),
        scope="device_groups",
        device_groups=[servers, laptops],
    )
    exception_cancel(exception=exception, user=security_user, device_group=laptops)
    return {"rec": rec, "servers": servers, "laptops": laptops, "activity": activity, "exception": exception}


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def csv_rows(response) -> list[dict]:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))


# --- activities ------------------------------------------------------------------------------


def test_the_api_shows_an_activity_as_its_scoped_reader_may_see_it(world, it_user, security_user):
    url = f"/api/v1/remediation-activities/{world['activity'].pk}/"

    mine = api(it_user).get(url).json()
    everything = api(security_user).get(url).json()

    assert (mine["device_groups"], mine["target_devices"], mine["fixed_devices"], mine["progress"]) == (
        ["Servers"],
        2,
        0,
        0,
    )
    assert (everything["device_groups"], everything["target_devices"], everything["fixed_devices"]) == (
        ["Laptops", "Servers"],
        5,
        1,
    )
    listed = api(it_user).get("/api/v1/remediation-activities/").json()["results"]
    assert [(a["device_groups"], a["target_devices"], a["fixed_devices"]) for a in listed] == [(["Servers"], 2, 0)]


def test_the_csv_export_counts_and_names_only_the_readers_groups(world, it_user):
    rows = csv_rows(api(it_user).get("/api/v1/remediation-activities/export.csv"))
    assert [(r["Device groups"], r["Target devices"], r["Fixed devices"], r["Progress"]) for r in rows] == [
        ("Servers", "2", "0", "0%")
    ]


def test_the_admin_list_and_its_export_count_only_the_readers_groups(world, client, it_user):
    client.force_login(it_user)
    html = client.get(reverse("admin:remediation_remediationactivity_changelist")).content.decode()
    assert '<span class="rp-progress-label">0 / 2</span>' in html
    assert "Laptops" not in html.split('id="result_list"')[1]
    rows = csv_rows(client.get(reverse("admin:remediation_remediationactivity_export")))
    assert [(r["Device groups"], r["Target devices"]) for r in rows] == [("Servers", "2")]


def test_filtering_by_a_group_outside_scope_answers_like_an_unknown_group(world, it_user):
    answers = [
        api(it_user).get("/api/v1/remediation-activities/", {"device_group": name}).json()["results"]
        for name in ("Laptops", "No such group")
    ]
    assert answers == [[], []]
    assert len(api(it_user).get("/api/v1/remediation-activities/", {"device_group": "Servers"}).json()["results"]) == 1


def test_a_body_naming_a_group_outside_scope_answers_like_an_unknown_group(world, scoped_security_user):
    body = {
        "recommendation": "va-widget",
        "remediation_option": "software_update",
        "priority": "high",
        "due_on": (timezone.localdate() + dt.timedelta(days=5)).isoformat(),
    }
    answers = [
        api(scoped_security_user).post(
            "/api/v1/remediation-activities/", {**body, "device_groups": [name]}, format="json"
        )
        for name in ("Laptops", "Nowhere")
    ]
    assert [r.status_code for r in answers] == [400, 400]
    assert [r.json() for r in answers] == [
        {"device_groups": ["Unknown device groups: Laptops."]},
        {"device_groups": ["Unknown device groups: Nowhere."]},
    ]


# --- recommendations ---------------------------------------------------------------------------


def test_the_recommendation_page_counts_only_the_readers_devices(world, client, it_user):
    client.force_login(it_user)
    html = client.get(
        reverse("admin:recommendations_securityrecommendation_change", args=[world["rec"].pk])
    ).content.decode()
    # Servers: 2 exposed (the Laptops' 2 still exposed are not theirs); risk accepted lowers nothing.
    assert "Partial exception: 2 exposed devices, 2 after exceptions." in html
    assert '<div class="readonly">2</div>' in html  # the "Exposed devices" field


def test_the_recommendation_export_counts_only_the_readers_devices(world, client, it_user, security_user):
    def exported(user):
        client.force_login(user)
        response = client.post(
            reverse("admin:recommendations_securityrecommendation_export"),
            {
                "format": "0",
                "resource": "0",
                "securityrecommendationresource_external_id": "on",
                "securityrecommendationresource_exposed_devices": "on",
            },
        )
        return [(r["external_id"], r["exposed_devices"]) for r in csv_rows(response)]

    assert exported(it_user) == [("va-widget", "2")]
    assert exported(security_user) == [("va-widget", "4")]


# --- exceptions --------------------------------------------------------------------------------


def test_an_exceptions_groups_and_history_name_only_the_readers_groups(world, it_user, security_user):
    url = f"/api/v1/exceptions/{world['exception'].pk}/"

    mine = api(it_user).get(url).json()
    everything = api(security_user).get(url).json()

    assert [g["name"] for g in mine["device_groups"]] == ["Servers"]
    assert [(e["kind"], e["notes"]) for e in mine["events"]] == [("created", "Device groups: Servers")]
    assert [g["name"] for g in everything["device_groups"]] == ["Laptops", "Servers"]
    assert [(e["kind"], e["notes"]) for e in everything["events"]] == [
        ("created", "Device groups: Laptops, Servers"),
        ("group_canceled", "Device group: Laptops"),
    ]
    listed = api(it_user).get("/api/v1/exceptions/").json()["results"]
    assert [[g["name"] for g in e["device_groups"]] for e in listed] == [["Servers"]]
    by_group = [
        api(it_user).get("/api/v1/exceptions/", {"device_group": name}).json()["results"]
        for name in ("Laptops", "No such group")
    ]
    assert by_group == [[], []]  # a group outside scope answers like an unknown one
    cancel = api(it_user).post(f"{url}cancel/", {"device_group": "Laptops"}, format="json")
    assert cancel.status_code == 403  # IT staff may not cancel at all


def test_the_exception_page_names_only_the_readers_groups(world, client, it_user):
    client.force_login(it_user)
    html = client.get(
        reverse("admin:recommendations_recommendationexception_change", args=[world["exception"].pk])
    ).content.decode()
    assert "Servers" in html
    assert "Laptops" not in html


def test_the_dashboard_counts_only_the_exceptions_the_reader_may_see(world, client, it_user, security_user):
    other = RecommendationFactory(external_id="va-other")
    expose(other, world["laptops"], 1)
    exception_create(
        user=security_user,
        recommendation=other,
        justification="risk_accepted",
        context="Laptops only.",
        expires_on=timezone.localdate() + dt.timedelta(days=20),
        scope="device_groups",
        device_groups=[world["laptops"]],
    )
    client.force_login(it_user)
    assert "1 active exception" in client.get(reverse("admin:index")).content.decode()
    client.force_login(security_user)
    assert "2 active exceptions" in client.get(reverse("admin:index")).content.decode()


# --- Intune ------------------------------------------------------------------------------------


def test_the_advanced_features_page_counts_only_the_readers_failing_tasks(world, client, it_user, security_user):
    laptop_rec = RecommendationFactory()
    expose(laptop_rec, world["laptops"], 1)
    laptops_only = make_activity(user=security_user, recommendation=laptop_rec, groups=[world["laptops"]])
    for activity in (world["activity"], laptops_only):
        IntuneTask.objects.create(activity=activity, last_error="Graph answered 500")
    other = make_activity(user=security_user, recommendation=RecommendationFactory(), groups=None)
    IntuneTask.objects.create(activity=other, last_error="Graph answered 503")

    client.force_login(it_user)
    page = client.get(reverse("admin:intune_advanced_features"))
    assert page.context["failing_tasks"] == 2  # the shared activity's and the Servers one's


def test_the_request_form_counts_only_the_requesters_devices(world, client, scoped_security_user):
    client.force_login(scoped_security_user)
    url = reverse("admin:recommendations_securityrecommendation_remediation_options", args=[world["rec"].pk])
    html = client.get(url).content.decode()
    # Servers: 2 exposed (the 2 Laptops devices still exposed are not theirs).
    assert "2 exposed devices." in html
    assert "4 exposed devices." not in html
