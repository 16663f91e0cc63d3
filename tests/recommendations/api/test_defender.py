"""GET /api/machines and /api/recommendations (DESIGN.md section 13): Defender's fields, filters, scope."""

import datetime as dt

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from recommendations.api.defender_shapes import MachineReferenceSerializer, MachineSerializer, RecommendationSerializer
from recommendations.services import exception_create
from tests.recommendations.factories import (
    DeviceFactory,
    DeviceGroupFactory,
    RecommendationFactory,
    UserFactory,
    expose,
)

pytestmark = pytest.mark.django_db

MACHINES = "/api/machines"
RECOMMENDATIONS = "/api/recommendations"
UTC = dt.UTC


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer " + Token.objects.get_or_create(user=user)[0].key)
    return client


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["value"]]


@pytest.fixture
def fleet(it_group):
    servers, finance = DeviceGroupFactory(name="Servers"), DeviceGroupFactory(name="Finance")
    return {
        "web": DeviceFactory(
            machine_id="1e5bc9d7e413ddd7902c2932e418702b84d0cc07",
            computer_dns_name="web01.contoso.com",
            os_platform="WindowsServer2022",
            os_version="21H2",
            device_group=servers,
            aad_device_id="80fe8ff8-2624-418e-9591-41f0491218f9",
            first_seen=dt.datetime(2020, 8, 2, 14, 55, 3, 779185, tzinfo=UTC),
            last_seen=dt.datetime(2024, 5, 1, 8, 0, tzinfo=UTC),
            health_status="Active",
            risk_score="High",
            exposure_level="Medium",
            machine_tags=["web", "prod"],
            last_ip_address="172.17.230.209",
        ),
        "db": DeviceFactory(
            computer_dns_name="db01.contoso.com",
            os_platform="Linux",
            device_group=servers,
            aad_device_id="",
            last_seen=dt.datetime(2024, 4, 1, 8, 0, tzinfo=UTC),
            health_status="Inactive",
            risk_score="Low",
            machine_tags=["prod"],
        ),
        "ledger": DeviceFactory(
            computer_dns_name="ledger.contoso.com",
            device_group=finance,
            health_status="Active",
            last_seen=dt.datetime(2023, 1, 1, tzinfo=UTC),
        ),
    }


def test_a_machine_in_defenders_fields(fleet, security_user):
    response = client_for(security_user).get(f"{MACHINES}/1e5bc9d7e413ddd7902c2932e418702b84d0cc07")

    assert response.status_code == 200
    assert response.json() == {
        "@odata.context": "http://testserver/api/$metadata#Machines/$entity",
        "id": "1e5bc9d7e413ddd7902c2932e418702b84d0cc07",
        "computerDnsName": "web01.contoso.com",
        "firstSeen": "2020-08-02T14:55:03.779185Z",
        "lastSeen": "2024-05-01T08:00:00Z",
        "osPlatform": "WindowsServer2022",
        "onboardingStatus": None,
        "osProcessor": None,
        "version": "21H2",
        "lastIpAddress": "172.17.230.209",
        "lastExternalIpAddress": None,
        "osBuild": None,
        "healthStatus": "Active",
        "deviceValue": None,
        "rbacGroupId": fleet["web"].device_group_id,
        "rbacGroupName": "Servers",
        "riskScore": "High",
        "exposureLevel": "Medium",
        "isAadJoined": None,
        "aadDeviceId": "80fe8ff8-2624-418e-9591-41f0491218f9",
        "machineTags": ["web", "prod"],
        "ipAddresses": None,
        "osArchitecture": None,
    }


def test_empty_values_are_null(fleet, security_user):
    db = client_for(security_user).get(f"{MACHINES}/{fleet['db'].machine_id}").json()

    assert (db["aadDeviceId"], db["version"], db["exposureLevel"], db["firstSeen"]) == (None, None, None, None)


def test_a_machine_is_also_found_by_computer_name(fleet, security_user):
    response = client_for(security_user).get(f"{MACHINES}/WEB01.contoso.com")

    assert response.json()["id"] == fleet["web"].machine_id


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("computerDnsName eq 'db01.contoso.com'", ["db"]),
        ("id eq '1e5bc9d7e413ddd7902c2932e418702b84d0cc07'", ["web"]),
        ("version eq '21H2'", ["web"]),
        ("aadDeviceId eq null", ["db"]),
        ("machineTags/any(t: t eq 'prod')", ["web", "db"]),
        ("lastSeen gt 2024-04-15Z", ["web"]),
        ("exposureLevel eq 'Medium'", ["web"]),
        ("lastIpAddress eq '172.17.230.209'", ["web"]),
        ("healthStatus ne 'Active'", ["db"]),
        ("osPlatform eq 'Linux'", ["db"]),
        ("riskScore eq 'High' or riskScore eq 'Low'", ["web", "db"]),
        ("deviceValue eq null and onboardingStatus eq null", ["web", "db", "ledger"]),
        ("HealthStatus eq 'Active' and RiskScore eq 'High'", ["web"]),  # Defender's sample spelling
    ],
)
def test_machines_filter_on_every_property_defender_documents(fleet, security_user, text, expected):
    response = client_for(security_user).get(MACHINES, {"$filter": text})

    assert ids(response) == [fleet[name].machine_id for name in expected]


def test_machines_filter_on_the_device_group_id(fleet, security_user):
    servers = fleet["web"].device_group_id

    assert ids(client_for(security_user).get(MACHINES, {"$filter": f"rbacGroupId eq {servers}"})) == [
        fleet["web"].machine_id,
        fleet["db"].machine_id,
    ]


def test_a_scoped_user_sees_only_the_machines_of_their_groups(fleet, it_user):
    client = client_for(it_user)

    assert ids(client.get(MACHINES)) == [fleet["web"].machine_id, fleet["db"].machine_id]
    hidden = client.get(f"{MACHINES}/{fleet['ledger'].machine_id}")
    assert hidden.status_code == 404
    assert hidden.json()["error"]["message"] == (
        f"Machine {fleet['ledger'].machine_id} was not found in your device groups."
    )
    assert client.get(f"{MACHINES}/ledger.contoso.com").status_code == 404


def test_machines_need_the_view_device_permission(fleet, scoped_security_user):
    response = client_for(scoped_security_user).get(MACHINES)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "Forbidden"


@pytest.fixture
def catalogue(it_group):
    servers, finance = DeviceGroupFactory(name="Servers"), DeviceGroupFactory(name="Finance")
    chrome = RecommendationFactory(
        external_id="va-_-google-_-chrome",
        name="Update Chrome",
        product_name="chrome",
        vendor="google",
        related_component="Chrome",
        category="Application",
        remediation_type="Update",
        severity_score=8.1,
        exposure_impact=3.94,
        config_score_impact=0,
        public_exploit=True,
        weaknesses=38,
        recommended_version="",
        sub_category="",
        associated_threats=["3098b8ef-23b1-46b3-aed4-499e1928f9ed"],
        tags=["internetFacing"],
    )
    expose(chrome, servers, 2)
    expose(chrome, finance, 3)
    firewall = RecommendationFactory(
        external_id="scid-2001",
        name="Turn on the firewall",
        product_name="windows",
        vendor="microsoft",
        category="Network",
        remediation_type="ConfigurationChange",
        severity_score=5.0,
        sub_category="Firewall",
    )
    expose(firewall, finance, 1)
    return {"chrome": chrome, "firewall": firewall, "servers": servers, "finance": finance}


def test_a_recommendation_in_defenders_fields(catalogue, security_user):
    response = client_for(security_user).get(f"{RECOMMENDATIONS}/va-_-google-_-chrome")

    assert response.json() == {
        "@odata.context": "http://testserver/api/$metadata#Recommendations/$entity",
        "id": "va-_-google-_-chrome",
        "productName": "chrome",
        "recommendationName": "Update Chrome",
        "weaknesses": 38,
        "vendor": "google",
        "recommendedVersion": "",
        "recommendedProgram": "",
        "recommendedVendor": "",
        "recommendationCategory": "Application",
        "subCategory": "",
        "severityScore": 8.1,
        "publicExploit": True,
        "activeAlert": False,
        "associatedThreats": ["3098b8ef-23b1-46b3-aed4-499e1928f9ed"],
        "remediationType": "Update",
        "status": "Active",
        "configScoreImpact": 0.0,
        "exposureImpact": 3.94,
        "totalMachineCount": None,
        "exposedMachinesCount": 5,
        "nonProductivityImpactedAssets": None,
        "relatedComponent": "Chrome",
        "tags": ["internetFacing"],
        "exposedCriticalDevices": None,
    }


def test_exposed_counts_and_devices_are_those_of_the_callers_groups(catalogue, it_user):
    client = client_for(it_user)

    listed = client.get(RECOMMENDATIONS).json()["value"]
    assert [(r["id"], r["exposedMachinesCount"]) for r in listed] == [("scid-2001", 0), ("va-_-google-_-chrome", 2)]
    devices = client.get(f"{RECOMMENDATIONS}/va-_-google-_-chrome/machineReferences").json()["value"]
    assert {d["rbacGroupName"] for d in devices} == {"Servers"}
    assert len(devices) == 2
    assert set(devices[0]) == {"id", "computerDnsName", "osPlatform", "rbacGroupName"}


def test_status_is_exception_while_an_exception_covers_every_group(catalogue, superuser):
    exception_create(
        user=superuser,
        recommendation=catalogue["firewall"],
        justification="third_party_control",
        context="Another firewall",
        expires_on=timezone.localdate() + dt.timedelta(days=30),
        scope="global",
    )
    client = client_for(superuser)

    assert client.get(f"{RECOMMENDATIONS}/scid-2001").json()["status"] == "Exception"
    assert ids(client.get(RECOMMENDATIONS, {"$filter": "status eq 'Exception'"})) == ["scid-2001"]
    assert ids(client.get(RECOMMENDATIONS, {"$filter": "status eq 'Active'"})) == ["va-_-google-_-chrome"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("id eq 'scid-2001'", ["scid-2001"]),
        ("productName eq 'chrome'", ["va-_-google-_-chrome"]),
        ("vendor eq 'microsoft'", ["scid-2001"]),
        ("recommendedVersion eq ''", ["va-_-google-_-chrome"]),
        ("recommendationCategory eq 'Network'", ["scid-2001"]),
        ("subCategory eq 'Firewall'", ["scid-2001"]),
        ("severityScore gt 6", ["va-_-google-_-chrome"]),
        ("severityScore le 5.0", ["scid-2001"]),
        ("remediationType eq 'ConfigurationChange'", ["scid-2001"]),
        ("recommendedProgram eq 'x' or recommendedVendor ne ''", []),
        ("status eq 'Active'", ["scid-2001", "va-_-google-_-chrome"]),
    ],
)
def test_recommendations_filter_on_every_property_defender_documents(catalogue, security_user, text, expected):
    assert ids(client_for(security_user).get(RECOMMENDATIONS, {"$filter": text})) == expected


def test_unknown_recommendations_answer_404(catalogue, security_user):
    client = client_for(security_user)

    for url in (
        f"{RECOMMENDATIONS}/va-_-nobody-_-nothing",
        f"{RECOMMENDATIONS}/va-_-nobody-_-nothing/machineReferences",
    ):
        response = client.get(url)
        assert response.status_code == 404
        assert response.json()["error"]["message"] == "Recommendation va-_-nobody-_-nothing was not found."


def test_a_user_without_a_role_gets_403_and_anonymous_401(catalogue):
    nobody = UserFactory(username="nobody")
    nobody.groups.add(Group.objects.create(name="No role"))

    assert client_for(nobody).get(RECOMMENDATIONS).status_code == 403
    anonymous = APIClient().get(RECOMMENDATIONS)
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("schema", "url"),
    [
        (MachineSerializer, lambda c: f"{MACHINES}/{c['device'].machine_id}"),
        (RecommendationSerializer, lambda c: f"{RECOMMENDATIONS}/va-_-google-_-chrome"),
    ],
)
def test_the_shapes_match_the_schema(catalogue, security_user, schema, url):
    """The dictionaries the views build and the serializers the OpenAPI schema shows list the same fields."""
    catalogue["device"] = catalogue["chrome"].exposures.first().device
    data = client_for(security_user).get(url(catalogue)).json()

    assert list(data) == ["@odata.context", *schema().fields]


def test_the_machine_reference_shape_matches_the_schema(catalogue, security_user):
    data = client_for(security_user).get(f"{RECOMMENDATIONS}/va-_-google-_-chrome/machineReferences").json()

    assert list(data["value"][0]) == list(MachineReferenceSerializer().fields)


# Token, the user's permissions (user and group), the page: constant whatever the page holds.
MAX_QUERIES = 4


@pytest.mark.parametrize("rows", [1, 100])
@pytest.mark.parametrize("viewer", ["security_user", "it_user"])
@pytest.mark.parametrize("what", ["machines", "recommendations", "machine references"])
def test_a_page_costs_a_constant_number_of_queries(
    request, django_assert_max_num_queries, it_group, viewer, rows, what
):
    servers = DeviceGroupFactory(name="Servers")
    if what == "machines":
        DeviceFactory.create_batch(rows, device_group=servers)
        url = MACHINES
    elif what == "recommendations":
        for _ in range(rows):
            expose(RecommendationFactory(), servers, 1)
        url = RECOMMENDATIONS
    else:
        expose(RecommendationFactory(external_id="va-_-contoso-_-widget"), servers, rows)
        url = f"{RECOMMENDATIONS}/va-_-contoso-_-widget/machineReferences"
    client = client_for(request.getfixturevalue(viewer))

    with django_assert_max_num_queries(MAX_QUERIES + (1 if what == "machine references" else 0)):
        response = client.get(url)

    assert len(response.json()["value"]) == rows
