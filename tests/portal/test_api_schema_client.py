"""A client that knows only /api/v1/schema/ (operation ids, paths, parameters) does the IT workflow,
and the same client scoped to other device groups can neither see nor touch the activities."""

import pytest
from django.contrib.auth.models import Group
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, UserFactory, expose
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db


class SchemaClient:
    """Calls operations by operationId, building URLs from the schema's paths only."""

    def __init__(self, token: str):
        self.http = APIClient()
        self.http.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        schema = self.http.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
        self.operations = {
            op["operationId"]: (method, path, op)
            for path, item in schema["paths"].items()
            for method, op in item.items()
        }

    def call(self, operation_id: str, *, path_params=None, query=None, body=None):
        method, path, op = self.operations[operation_id]
        for name, value in (path_params or {}).items():
            path = path.replace("{" + name + "}", str(value))
        known = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
        assert set(query or {}) <= known, f"{operation_id} documents no {set(query) - known}"
        if method == "get":
            return self.http.get(path, query or {})
        return getattr(self.http, method)(path, body or {}, format="json")


@pytest.fixture
def activities(security_user):
    servers = DeviceGroupFactory(name="Servers")
    made = []
    for priority in ("high", "low", "medium"):
        rec = RecommendationFactory()
        expose(rec, servers, 2)
        made.append(make_activity(user=security_user, recommendation=rec, groups=[servers], priority=priority))
    return made


def test_it_staff_work_from_the_schema_alone(activities, it_user):
    client = SchemaClient(Token.objects.create(user=it_user).key)

    listed = client.call("remediation_activities_list", query={"ticket_status": "pending", "ordering": "priority"})
    assert [a["priority"] for a in listed.json()["results"]] == ["high", "medium", "low"]
    high, medium, low = (a["id"] for a in listed.json()["results"])

    assert (
        client.call("remediation_activities_approve", path_params={"id": high}, body={"notes": "go"}).json()[
            "ticket_status"
        ]
        == "approved"
    )
    assert (
        client.call("remediation_activities_reject", path_params={"id": low}, body={"notes": "no"}).json()[
            "ticket_status"
        ]
        == "rejected"
    )
    assert client.call("remediation_activities_complete", path_params={"id": medium}).json()["status"] == "completed"
    assert client.call("remediation_activities_complete", path_params={"id": medium}).status_code == 409

    exported = client.call("remediation_activities_export_csv", query={"status": "active"})
    assert len(b"".join(exported.streaming_content).decode().splitlines()) == 1 + 2
    devices = client.call("remediation_activities_devices_csv", path_params={"id": high})
    assert len(b"".join(devices.streaming_content).decode().splitlines()) == 1 + 2
    events = client.call("remediation_activities_events_list", path_params={"id": high}).json()["results"]
    assert [e["kind"] for e in events] == ["created", "approved"]


def test_the_same_client_scoped_elsewhere_cannot_see_or_touch_them(activities):
    outsiders = Group.objects.create(name="Laptop team")
    DeviceGroupFactory(name="Laptops").user_groups.add(outsiders)
    stranger = UserFactory(username="stranger")
    stranger.groups.add(Group.objects.get(name="IT staff"), outsiders)
    client = SchemaClient(Token.objects.create(user=stranger).key)
    target = str(activities[0].pk)

    assert client.call("remediation_activities_list").json()["results"] == []
    exported = client.call("remediation_activities_export_csv")
    assert len(b"".join(exported.streaming_content).decode().splitlines()) == 1
    for operation in (
        "remediation_activities_retrieve",
        "remediation_activities_devices_list",
        "remediation_activities_events_list",
        "remediation_activities_devices_csv",
    ):
        assert client.call(operation, path_params={"id": target}).status_code == 404, operation
    for operation in (
        "remediation_activities_approve",
        "remediation_activities_reject",
        "remediation_activities_complete",
    ):
        assert client.call(operation, path_params={"id": target}, body={"notes": "x"}).status_code == 404
    activities[0].refresh_from_db()
    assert (activities[0].status, activities[0].ticket_status) == ("active", "pending")
