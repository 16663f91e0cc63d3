"""Device-group scoping in the admin: IT staff scoped to Servers and Workstations see nothing else."""

import pytest
from django.urls import reverse

from remediation.models import RemediationActivity
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, expose
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(security_user, it_group):
    """Activities on Servers, on Laptops, and on Servers+Laptops; devices and exposures in each group."""
    servers, laptops = DeviceGroupFactory(name="Servers"), DeviceGroupFactory(name="Laptops")
    DeviceGroupFactory(name="Workstations")
    rec = RecommendationFactory(name="Update Viewer")
    server_devices = expose(rec, servers, 2)
    laptop_devices = expose(rec, laptops, 3)
    return {
        "servers": make_activity(user=security_user, recommendation=rec, groups=[servers]),
        "laptops": make_activity(user=security_user, recommendation=rec, groups=[laptops]),
        "both": make_activity(user=security_user, recommendation=rec, groups=[servers, laptops]),
        "rec": rec,
        "server_devices": server_devices,
        "laptop_devices": laptop_devices,
    }


@pytest.fixture
def it_client(client, it_user):
    client.force_login(it_user)
    return client


def test_it_user_lists_only_activities_of_their_groups(it_client, world):
    shown = it_client.get(reverse("admin:remediation_remediationactivity_changelist")).context["cl"].result_list
    assert {a.pk for a in shown} == {world["servers"].pk, world["both"].pk}


def test_it_user_gets_404_for_out_of_scope_activities(it_client, world):
    laptops = world["laptops"]
    page_url = reverse("admin:remediation_remediationactivity_change", args=[laptops.pk])
    assert it_client.get(page_url).status_code == 404
    complete_url = reverse("admin:remediation_remediationactivity_complete", args=[laptops.pk])
    assert it_client.post(complete_url).status_code == 404
    csv_url = reverse("admin:remediation_remediationactivity_devices_csv", args=[laptops.pk])
    assert it_client.get(csv_url).status_code == 404
    laptops.refresh_from_db()
    assert laptops.status == "active"


def test_it_user_sees_only_in_scope_devices_of_a_shared_activity(it_client, world):
    both = world["both"]
    page = it_client.get(reverse("admin:remediation_remediationactivity_change", args=[both.pk]))
    assert page.status_code == 200
    assert {d.device.device_group.name for d in page.context["device_page"]} == {"Servers"}
    assert page.context["device_count"] == 2
    assert page.context["device_groups"] == ["Servers"]

    response = it_client.get(reverse("admin:remediation_remediationactivity_devices_csv", args=[both.pk]))
    rows = b"".join(response.streaming_content).decode().splitlines()[1:]
    assert len(rows) == 2
    assert all(",Servers," in row for row in rows)


def test_security_staff_see_every_device_of_a_shared_activity(client, security_user, world):
    client.force_login(security_user)
    page = client.get(reverse("admin:remediation_remediationactivity_change", args=[world["both"].pk]))
    assert page.context["device_count"] == 5


def test_it_user_export_names_only_their_groups(it_client, world):
    export = it_client.get(reverse("admin:remediation_remediationactivity_export"))
    body = b"".join(export.streaming_content).decode()
    assert body.count("\r\n") == 3  # header + the Servers and the shared activity
    assert "Laptops" not in body


def test_it_user_device_group_choices_are_scoped(it_client, world):
    response = it_client.get(reverse("admin:remediation_remediationactivity_changelist"))
    html = response.content.decode()
    specs = response.context["cl"].filter_specs
    group_filter = next(f for f in specs if getattr(f, "parameter_name", "") == "device_group")
    assert [name for _, name in group_filter.lookup_choices] == ["Servers", "Workstations"]
    assert "Laptops" not in html


def test_it_user_device_groups_devices_and_exposures_are_scoped(it_client, world):
    groups = it_client.get(reverse("admin:recommendations_devicegroup_changelist")).context["cl"].result_list
    assert sorted(g.name for g in groups) == ["Servers", "Workstations"]

    devices = it_client.get(reverse("admin:recommendations_device_changelist")).context["cl"].result_list
    assert {d.pk for d in devices} == {d.pk for d in world["server_devices"]}

    exposures = it_client.get(reverse("admin:recommendations_exposure_changelist")).context["cl"].result_list
    assert {e.device_id for e in exposures} == {d.pk for d in world["server_devices"]}

    laptop = world["laptop_devices"][0]
    assert it_client.get(reverse("admin:recommendations_device_change", args=[laptop.pk])).status_code == 302


def test_it_user_sees_exposed_counts_of_their_groups_only(it_client, client, security_user, world):
    url = reverse("admin:recommendations_securityrecommendation_changelist")
    row = it_client.get(url).content.decode()
    (rec,) = it_client.get(url).context["cl"].result_list
    assert rec.scoped_exposed == 2
    assert '<td class="field-exposed_devices_column">2</td>' in row

    client.force_login(security_user)
    html = client.get(url).content.decode()
    assert '<td class="field-exposed_devices_column">5</td>' in html


def test_top_card_lists_only_in_scope_activities(it_client, world):
    html = it_client.get(reverse("admin:index")).content.decode()
    servers_url = reverse("admin:remediation_remediationactivity_change", args=[world["servers"].pk])
    laptops_url = reverse("admin:remediation_remediationactivity_change", args=[world["laptops"].pk])
    assert servers_url in html
    assert laptops_url not in html
    assert RemediationActivity.objects.count() == 3
