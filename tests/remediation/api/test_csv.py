"""The two CSV downloads of the API (DESIGN.md sections 6 and 7)."""

import csv
import io

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from recommendations.models import Device
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, expose
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db

API = "/api/v1/remediation-activities/"
ACTIVITY_HEADER = [
    "Remediation activity",
    "Status",
    "Priority",
    "Remediation option",
    "Device groups",
    "Created by",
    "Created on",
    "Due date",
    "Ticket status",
    "Completed by",
    "Completed on",
    "Target devices",
    "Fixed devices",
    "Progress",
]
DEVICE_HEADER = ["Device ID", "Device name", "OS platform", "Device group", "Status", "Remediated on", "Sent to Intune"]


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.get_or_create(user=user)[0].key)
    return client


def read_csv(response) -> list[list[str]]:
    assert response.status_code == 200, getattr(response, "content", b"")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment; filename=")
    assert response.streaming
    text = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.reader(io.StringIO(text)))


def test_export_has_the_contract_header_and_one_row_per_activity(security_user, it_user):
    activity = make_activity(user=security_user)
    client_for(it_user).post(f"{API}{activity.pk}/complete/", {}, format="json")

    rows = read_csv(client_for(it_user).get(API + "export.csv"))

    assert rows[0] == ACTIVITY_HEADER
    assert len(rows) == 2
    row = dict(zip(ACTIVITY_HEADER, rows[1], strict=True))
    assert row["Status"] == "Completed"
    assert row["Priority"] == "High"
    assert row["Device groups"] == "Servers"
    assert row["Created by"] == "sec@example.com"
    assert row["Completed by"] == "it@example.com"
    assert row["Target devices"] == "3"
    assert row["Progress"] == "0%"


def test_export_honours_the_list_filters_and_ordering(security_user):
    servers = DeviceGroupFactory(name="Servers")
    for name, priority in (("Low one", "low"), ("High one", "high"), ("Medium one", "medium")):
        rec = RecommendationFactory(name=name)
        expose(rec, servers, 1)
        make_activity(user=security_user, recommendation=rec, groups=[servers], priority=priority)
    client = client_for(security_user)

    rows = read_csv(client.get(API + "export.csv?ordering=priority"))
    assert [r[0] for r in rows[1:]] == ["High one", "Medium one", "Low one"]
    rows = read_csv(client.get(API + "export.csv?priority=low"))
    assert [r[0] for r in rows[1:]] == ["Low one"]
    assert client.get(API + "export.csv?priority=urgent").status_code == 400


def test_cells_that_a_spreadsheet_would_run_are_neutralised(security_user, it_user):
    servers = DeviceGroupFactory(name="Servers")
    rec = RecommendationFactory(name='=HYPERLINK("http://evil.example","click")')
    devices = expose(rec, servers, 1)
    Device.objects.filter(pk=devices[0].pk).update(computer_dns_name="@SUM(1+1)", os_platform="-cmd|' /C calc'!A0")
    activity = make_activity(user=security_user, recommendation=rec, groups=[servers])
    client = client_for(it_user)

    rows = read_csv(client.get(API + "export.csv"))
    assert rows[1][0] == '\'=HYPERLINK("http://evil.example","click")'

    rows = read_csv(client.get(f"{API}{activity.pk}/devices.csv"))
    assert rows[0] == DEVICE_HEADER
    assert rows[1][1] == "'@SUM(1+1)"
    assert rows[1][2] == "'-cmd|' /C calc'!A0"


def test_devices_csv_lists_every_target_device(security_user, it_user):
    activity = make_activity(user=security_user, devices=5)

    rows = read_csv(client_for(it_user).get(f"{API}{activity.pk}/devices.csv", HTTP_ACCEPT="text/csv"))

    assert rows[0] == DEVICE_HEADER
    assert sorted(r[0] for r in rows[1:]) == sorted(activity.devices.values_list("device__machine_id", flat=True))
    assert {r[3] for r in rows[1:]} == {"Servers"}
    assert {r[4] for r in rows[1:]} == {"Exposed"}
    assert {r[6] for r in rows[1:]} == {"No"}


def test_csv_errors_are_json_even_when_csv_is_asked_for(it_user):
    response = client_for(it_user).get(f"{API}not-an-id/devices.csv", HTTP_ACCEPT="text/csv")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert "detail" in response.json()


def test_scoped_it_staff_see_only_their_groups_devices_in_an_activity_that_spans_groups(security_user, it_user):
    rec = RecommendationFactory()
    servers, finance = DeviceGroupFactory(name="Servers"), DeviceGroupFactory(name="Finance laptops")
    expose(rec, servers, 2)
    expose(rec, finance, 3)
    activity = make_activity(user=security_user, recommendation=rec, groups=[servers, finance])
    client = client_for(it_user)

    rows = read_csv(client.get(f"{API}{activity.pk}/devices.csv"))
    listed = client.get(f"{API}{activity.pk}/devices/").json()["results"]

    assert {row[3] for row in rows[1:]} == {"Servers"}
    assert len(rows) == 1 + 2
    assert {item["device_group"] for item in listed} == {"Servers"}
    assert len(read_csv(client_for(security_user).get(f"{API}{activity.pk}/devices.csv"))) == 1 + 5
