"""GET recommendations/, recommendations/{external_id}/, .../devices/ and device-groups/."""

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from recommendations.models import Exposure, SecurityRecommendation
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, UserFactory, expose

pytestmark = pytest.mark.django_db

R = "/api/v1/recommendations/"


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.get_or_create(user=user)[0].key)
    return client


@pytest.fixture
def catalogue(it_group):
    servers = DeviceGroupFactory(name="Servers")
    laptops = DeviceGroupFactory(name="Laptops")
    widget = RecommendationFactory(
        external_id="va-_-contoso-_-widget", name="Update Contoso Widget", severity_score=9.0, public_exploit=True
    )
    expose(widget, servers, 3)
    expose(widget, laptops, 2)
    firewall = RecommendationFactory(
        external_id="scid-2001",
        name="Turn on the firewall",
        product_name="Windows",
        vendor="microsoft",
        category=SecurityRecommendation.Category.NETWORK,
        remediation_type=SecurityRecommendation.RemediationType.CONFIGURATION_CHANGE,
        severity_score=5.0,
    )
    expose(firewall, laptops, 4)
    RecommendationFactory(external_id="va-_-nobody-_-quiet", name="Quiet", severity_score=1.0)
    return {"widget": widget, "firewall": firewall}


def test_list_counts_exposed_devices_in_the_callers_groups(catalogue, it_user, security_user):
    it_rows = client_for(it_user).get(R).json()["results"]
    security_rows = client_for(security_user).get(R).json()["results"]

    assert [(r["id"], r["exposed_devices"]) for r in it_rows] == [
        ("va-_-contoso-_-widget", 3),
        ("scid-2001", 0),
        ("va-_-nobody-_-quiet", 0),
    ]
    assert [(r["id"], r["exposed_devices"]) for r in security_rows] == [
        ("va-_-contoso-_-widget", 5),
        ("scid-2001", 4),
        ("va-_-nobody-_-quiet", 0),
    ]
    assert it_rows[0]["public_exploit"] is True
    assert it_rows[0]["exception_state"] == "none"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("category=Network", ["scid-2001"]),
        ("remediation_type=ConfigurationChange", ["scid-2001"]),
        ("search=WIDGET", ["va-_-contoso-_-widget"]),
        ("search=MICROSOFT", ["scid-2001"]),
        ("public_exploit=true", ["va-_-contoso-_-widget"]),
        ("exposed=true", ["va-_-contoso-_-widget", "scid-2001"]),
        ("exposed=false", ["va-_-nobody-_-quiet"]),
    ],
)
def test_list_filters(catalogue, security_user, query, expected):
    response = client_for(security_user).get(f"{R}?{query}")

    assert response.status_code == 200
    assert [r["id"] for r in response.json()["results"]] == expected


@pytest.mark.parametrize("query", ["category=Gadgets", "exposed=maybe", "public_exploit=2", "page_size=0"])
def test_bad_filters_answer_400(catalogue, security_user, query):
    assert client_for(security_user).get(f"{R}?{query}").status_code == 400


def test_it_staff_see_only_their_groups_exposed_devices(catalogue, it_user):
    exposure = Exposure.objects.filter(device__device_group__name="Servers").first()
    Exposure.objects.filter(pk=exposure.pk).update(remediated_at=timezone.now())  # fixed: no longer listed

    response = client_for(it_user).get(f"{R}va-_-contoso-_-widget/devices/")

    assert response.status_code == 200
    rows = response.json()["results"]
    assert len(rows) == 2
    assert set(rows[0]) == {"device_id", "device_name", "os_platform", "device_group", "first_seen", "last_seen"}
    assert {r["device_group"] for r in rows} == {"Servers"}
    assert exposure.device.machine_id not in {r["device_id"] for r in rows}


def test_exposed_devices_filter_by_group(catalogue, security_user):
    rows = client_for(security_user).get(f"{R}va-_-contoso-_-widget/devices/?device_group=Laptops").json()["results"]

    assert {r["device_group"] for r in rows} == {"Laptops"}
    assert len(rows) == 2


def test_detail_is_addressed_by_external_id(catalogue, it_user):
    response = client_for(it_user).get(f"{R}scid-2001/")

    assert response.status_code == 200
    assert response.json()["name"] == "Turn on the firewall"
    assert response.json()["exposed_devices"] == 0
    assert client_for(it_user).get(f"{R}{catalogue['firewall'].pk}/").status_code == 404


def test_device_groups_are_the_callers(it_user, security_user):
    DeviceGroupFactory(name="Laptops")
    outsiders = Group.objects.create(name="Nobody's")
    stranger = UserFactory(username="stranger")
    stranger.groups.add(Group.objects.get(name="IT staff"), outsiders)

    assert [g["name"] for g in client_for(it_user).get("/api/v1/device-groups/").json()["results"]] == [
        "Servers",
        "Workstations",
    ]
    assert [g["name"] for g in client_for(security_user).get("/api/v1/device-groups/").json()["results"]] == [
        "Laptops",
        "Servers",
        "Workstations",
    ]
    assert client_for(stranger).get("/api/v1/device-groups/").json()["results"] == []


def test_nul_characters_in_ids_and_filters_never_reach_the_database(catalogue, it_user):
    client = client_for(it_user)

    assert client.get(f"{R}va%00x/").status_code == 404
    assert client.get(f"{R}va%00x/devices/").status_code == 404
    assert client.get(f"{R}va-_-contoso-_-widget/devices/?device_group=Serv%00ers").status_code == 400
    assert client.get(f"{R}?search=a%00").status_code == 400
