"""A client written from Microsoft's documentation of the Defender for Endpoint API, pointed at the portal.

`DefenderClient` knows only what Microsoft's pages say ("List all remediation activities", "Get one
remediation activity by Id", "List exposed devices of one remediation activity", "List all
recommendations", "List devices by recommendation", "List machines", "Get machine by ID", "OData
queries with Microsoft Defender for Endpoint", "Handling REST API errors"): the paths under
`{base}/api/`, an `Authorization: Bearer {token}` header, `$filter`/`$top`/`$skip`, following
`@odata.nextLink`, the property names of the documented tables and `{"error": {"code", "message"}}`.
It talks real HTTP (requests) to a live server; the only change from a Defender script is the base
URL and the token (the portal's own, from `manage.py create_api_token`).
"""

import datetime as dt
import importlib

import pytest
import requests
from django.contrib.auth.models import Group, Permission
from django.utils import timezone
from rest_framework.authtoken.models import Token

from recommendations.models import Exposure
from recommendations.services import recommendations_refresh_exposed_devices
from remediation.models import RemediationActivity
from remediation.services import activities_refresh_progress, activity_complete
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, UserFactory, expose
from tests.remediation.factories import make_activity

# live_server needs committed rows, and the database is flushed after each test.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

# The property tables of Microsoft's pages, as documented.
TASK_PROPERTIES = {
    "category", "completerEmail", "completerId", "completionMethod", "createdOn", "description", "dueOn",
    "fixedDevices", "id", "nameId", "priority", "productId", "productivityImpactRemediationType", "rbacGroupNames",
    "recommendedProgram", "recommendedVendor", "recommendedVersion", "relatedComponent", "requesterEmail",
    "requesterId", "requesterNotes", "scid", "status", "statusLastModifiedOn", "targetDevices", "title", "type",
    "vendorId",
}  # fmt: skip
MACHINE_REFERENCE_PROPERTIES = {"id", "computerDnsName", "osPlatform", "rbacGroupName"}
RECOMMENDATION_PROPERTIES = {
    "id", "productName", "recommendationName", "weaknesses", "vendor", "recommendedVersion", "recommendedProgram",
    "recommendedVendor", "recommendationCategory", "subCategory", "severityScore", "publicExploit", "activeAlert",
    "associatedThreats", "remediationType", "status", "configScoreImpact", "exposureImpact", "totalMachineCount",
    "exposedMachinesCount", "nonProductivityImpactedAssets", "relatedComponent", "exposedCriticalDevices",
}  # fmt: skip
MACHINE_PROPERTIES = {
    "id", "computerDnsName", "firstSeen", "lastSeen", "osPlatform", "onboardingStatus", "osProcessor", "version",
    "osBuild", "lastIpAddress", "lastExternalIpAddress", "healthStatus", "rbacGroupName", "rbacGroupId", "riskScore",
    "aadDeviceId", "machineTags", "exposureLevel", "deviceValue", "ipAddresses", "osArchitecture",
}  # fmt: skip


@pytest.fixture(autouse=True)
def roles(transactional_db):
    """The roles of remediation's data migration, which a flush by an earlier live-server test removes.

    (Not serialized_rollback: after another test's flush the content types come back with other
    ids, and Django's restore of the serialized rows then fails.)"""
    for name, codes in importlib.import_module("remediation.migrations.0002_roles").ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        for code in codes:
            app_label, codename = code.split(".")
            group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


class DefenderClient:
    """GET {base}/api/..., Bearer token, OData options, follows @odata.nextLink (as Microsoft's samples do)."""

    def __init__(self, base_url: str, token: str):
        self.api = base_url.rstrip("/") + "/api"
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/json"})

    def get(self, path: str, **odata) -> requests.Response:
        params = {f"${name}": value for name, value in odata.items()}
        return self.session.get(f"{self.api}/{path}", params=params, timeout=30)

    def read(self, path: str, **odata) -> dict:
        response = self.get(path, **odata)
        assert response.status_code == 200, response.text
        return response.json()

    def list_all(self, path: str, **odata) -> tuple[list[dict], int]:
        """Every item of a list, following @odata.nextLink; also how many requests it took."""
        page = self.read(path, **odata)
        items, requests_made = list(page["value"]), 1
        while "@odata.nextLink" in page:
            response = self.session.get(page["@odata.nextLink"], timeout=30)
            assert response.status_code == 200, response.text
            page = response.json()
            items += page["value"]
            requests_made += 1
        return items, requests_made


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def world(security_user, it_group):
    """Servers and Workstations (the IT user's groups) and Finance (not theirs); five activities."""
    servers = DeviceGroupFactory(name="Servers")
    workstations = DeviceGroupFactory(name="Workstations")
    finance = DeviceGroupFactory(name="Finance")
    silverlight = RecommendationFactory(
        external_id="va-_-microsoft-_-silverlight",
        name="Update Microsoft Silverlight",
        vendor="microsoft",
        product_name="silverlight",
        related_component="Microsoft Silverlight",
        recommended_version="",
    )
    exposed = {
        "Servers": expose(silverlight, servers, 3),
        "Workstations": expose(silverlight, workstations, 2),
        "Finance": expose(silverlight, finance, 4),
    }
    for device in exposed["Servers"]:
        device.health_status, device.risk_score = "Active", "High"
        device.save()
    made = {}
    for name, groups, days_ago in [
        ("servers-old", [servers], 40),
        ("mixed", [servers, workstations, finance], 30),
        ("finance", [finance], 20),
        ("workstations", [workstations], 10),
        ("servers-new", [servers], 1),
    ]:
        activity = make_activity(user=security_user, recommendation=silverlight, groups=groups, priority="high")
        RemediationActivity.objects.filter(pk=activity.pk).update(
            created_at=timezone.now() - dt.timedelta(days=days_ago)
        )
        made[name] = activity
    activity_complete(activity=made["servers-old"], user=security_user)
    # One Servers device and one Finance device of the mixed activity are fixed.
    fixed = [exposed["Servers"][0], exposed["Finance"][0]]
    Exposure.objects.filter(device__in=fixed).update(remediated_at=timezone.now())
    recommendations_refresh_exposed_devices(recommendation_ids=[silverlight.pk])
    activities_refresh_progress(recommendation_ids=[silverlight.pk])
    return {"activities": made, "devices": exposed, "fixed": fixed, "recommendation": silverlight}


def client_for(live_server, user) -> DefenderClient:
    return DefenderClient(live_server.url, Token.objects.get_or_create(user=user)[0].key)


def test_a_defender_script_lists_filters_and_pages_remediation_tasks(live_server, world, security_user):
    client = client_for(live_server, security_user)

    tasks, _ = client.list_all("remediationTasks")
    assert len(tasks) == 5
    assert all(set(task) == TASK_PROPERTIES for task in tasks)
    assert [t["status"] for t in tasks].count("Completed") == 1

    completed = client.read("remediationTasks", filter="status eq 'Completed'")["value"]
    assert [t["id"] for t in completed] == [str(world["activities"]["servers-old"].pk)]
    assert completed[0]["completionMethod"] == "Manual"
    assert completed[0]["completerEmail"] == "sec@example.com"

    since = (timezone.now() - dt.timedelta(days=15)).strftime("%Y-%m-%dT%H:%M:%SZ")
    recent = client.read("remediationTasks", filter=f"createdOn ge {since} and status eq 'Active'")["value"]
    assert {t["id"] for t in recent} == {str(world["activities"][n].pk) for n in ("workstations", "servers-new")}
    assert all(utc(t["createdOn"]) >= utc(since) for t in recent)

    paged, requests_made = client.list_all("remediationTasks", top=2)
    assert requests_made == 3
    assert [t["id"] for t in paged] == [t["id"] for t in tasks]

    window = client.read("remediationTasks", top=2, skip=2)
    assert [t["id"] for t in window["value"]] == [t["id"] for t in tasks[2:4]]
    assert "@odata.nextLink" in window
    last = client.read("remediationTasks", top=2, skip=4)
    assert [t["id"] for t in last["value"]] == [tasks[4]["id"]]
    assert "@odata.nextLink" not in last


def test_a_defender_script_reads_one_task_and_its_exposed_devices(live_server, world, security_user):
    client = client_for(live_server, security_user)
    mixed = world["activities"]["mixed"]

    task = client.read(f"remediationTasks/{mixed.pk}")
    assert task["id"] == str(mixed.pk)
    assert task["title"] == "Update Microsoft Silverlight"
    assert (task["status"], task["priority"], task["category"], task["type"]) == (
        "Active",
        "High",
        "Software",
        "Update",
    )
    assert task["rbacGroupNames"] == ["Finance", "Servers", "Workstations"]
    assert (task["targetDevices"], task["fixedDevices"]) == (9, 2)
    assert task["dueOn"] == f"{mixed.due_on.isoformat()}T00:00:00Z"
    assert (task["productId"], task["vendorId"], task["nameId"]) == (
        "microsoft-_-silverlight",
        "microsoft",
        "silverlight",
    )
    assert task["relatedComponent"] == "Microsoft Silverlight"
    assert task["requesterEmail"] == "sec@example.com"
    assert task["completionMethod"] is None
    assert task["productivityImpactRemediationType"] is None

    devices, _ = client.list_all(f"remediationTasks/{mixed.pk}/machineReferences")
    assert all(set(device) == MACHINE_REFERENCE_PROPERTIES for device in devices)
    still_exposed = {d.machine_id for group in world["devices"].values() for d in group} - {
        d.machine_id for d in world["fixed"]
    }
    assert {d["id"] for d in devices} == still_exposed
    assert {d["rbacGroupName"] for d in devices} == {"Servers", "Workstations", "Finance"}

    # Defender's own sample URL spells the path in lower case with a trailing slash.
    assert client.get(f"remediationtasks/{mixed.pk}/machinereferences/").status_code == 200


def test_a_defender_script_reads_recommendations_and_machines(live_server, world, security_user):
    client = client_for(live_server, security_user)
    silverlight = world["recommendation"]

    recommendations, _ = client.list_all("recommendations", filter="remediationType eq 'Update'")
    assert [r["id"] for r in recommendations] == ["va-_-microsoft-_-silverlight"]
    rec = client.read("recommendations/va-_-microsoft-_-silverlight")
    assert set(rec) - {"@odata.context", "tags"} == RECOMMENDATION_PROPERTIES
    assert (rec["recommendationName"], rec["exposedMachinesCount"], rec["status"]) == (
        "Update Microsoft Silverlight",
        7,
        "Active",
    )
    exposed, _ = client.list_all(f"recommendations/{silverlight.external_id}/machineReferences", top=3)
    assert len(exposed) == 7

    machines, requests_made = client.list_all("machines", top=4)
    assert (len(machines), requests_made) == (9, 3)
    assert all(set(m) - {"isAadJoined"} == MACHINE_PROPERTIES for m in machines)
    risky = client.read("machines", filter="riskScore eq 'High' and healthStatus eq 'Active'")["value"]
    assert {m["id"] for m in risky} == {d.machine_id for d in world["devices"]["Servers"]}
    one = world["devices"]["Finance"][1]
    machine = client.read(f"machines/{one.machine_id}")
    assert (machine["id"], machine["computerDnsName"], machine["rbacGroupName"]) == (
        one.machine_id,
        one.computer_dns_name,
        "Finance",
    )


def test_a_scoped_user_sees_only_their_device_groups(live_server, world, it_user):
    client = client_for(live_server, it_user)
    activities = world["activities"]

    tasks, _ = client.list_all("remediationTasks")
    assert {t["id"] for t in tasks} == {
        str(activities[n].pk) for n in ("servers-old", "mixed", "workstations", "servers-new")
    }
    mixed = next(t for t in tasks if t["id"] == str(activities["mixed"].pk))
    assert mixed["rbacGroupNames"] == ["Servers", "Workstations"]
    assert (mixed["targetDevices"], mixed["fixedDevices"]) == (5, 1)

    missing = client.get(f"remediationTasks/{activities['finance'].pk}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "ResourceNotFound"
    assert client.get(f"remediationTasks/{activities['finance'].pk}/machineReferences").status_code == 404
    devices, _ = client.list_all(f"remediationTasks/{activities['mixed'].pk}/machineReferences")
    assert {d["rbacGroupName"] for d in devices} == {"Servers", "Workstations"}

    machines, _ = client.list_all("machines")
    assert {m["rbacGroupName"] for m in machines} == {"Servers", "Workstations"}
    assert client.get(f"machines/{world['devices']['Finance'][1].machine_id}").status_code == 404
    rec = client.read("recommendations/va-_-microsoft-_-silverlight")
    assert rec["exposedMachinesCount"] == 4  # 2 + 2 of their groups still exposed
    exposed, _ = client.list_all("recommendations/va-_-microsoft-_-silverlight/machineReferences")
    assert len(exposed) == 4


def test_bad_filter_and_top_answer_400_in_defenders_error_shape(live_server, world, security_user):
    client = client_for(live_server, security_user)

    bad_filter = client.get("remediationTasks", filter="status eq Active")
    assert bad_filter.status_code == 400
    error = bad_filter.json()["error"]
    assert error["code"] == "ODataError"
    assert error["message"] == (
        "$filter: Active (position 11) is not a value; put text in single quotes, as in status eq 'Active'."
    )

    too_many = client.get("remediationTasks", top=10001)
    assert too_many.status_code == 400
    assert too_many.json()["error"]["message"] == "$top must be a whole number from 1 to 10,000; got '10001'."

    assert client.get("machines", filter="lastSeen gt yesterday").status_code == 400
    assert client.get("recommendations", orderby="severityScore desc").status_code == 400


def test_the_portal_token_works_as_bearer_and_as_token_and_nothing_else(live_server, world, security_user):
    key = Token.objects.get_or_create(user=security_user)[0].key
    url = f"{live_server.url}/api/remediationTasks"

    assert requests.get(url, headers={"Authorization": f"Token {key}"}, timeout=30).status_code == 200
    anonymous = requests.get(url, timeout=30)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    assert anonymous.json()["error"]["code"] == "Unauthorized"
    wrong = requests.get(url, headers={"Authorization": "Bearer " + "0" * 40}, timeout=30)
    assert wrong.status_code == 401


def test_a_role_without_the_permission_answers_403(live_server, world):
    reader = UserFactory(username="nobody")
    reader.groups.add(Group.objects.create(name="Readers of nothing"))

    response = client_for(live_server, reader).get("remediationTasks")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "Forbidden"
