"""Every endpoint of DESIGN.md section 6 (exceptions aside: tests/recommendations/test_exception_api.py)
x {anonymous, security staff, IT staff in scope, IT staff out of scope, superuser}.

The activity lives in device group "Servers". IT staff in scope (fixture `it_user`) see
"Servers" and "Workstations"; IT staff out of scope belong to an auth group linked only to
"Laptops". Out-of-scope ids answer 404 everywhere; lists and exports simply omit them.
"""

import csv
import io

import pytest
from django.contrib.auth.models import Group
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from remediation.models import RemediationActivity
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, UserFactory, expose
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db

ROLES = ["anonymous", "security", "it_in_scope", "it_out_of_scope", "superuser"]


@pytest.fixture
def world(security_user, it_user, superuser):
    rec = RecommendationFactory(external_id="va-_-contoso-_-widget")
    servers = DeviceGroupFactory(name="Servers")
    laptops = DeviceGroupFactory(name="Laptops")
    expose(rec, servers, 3)
    expose(rec, laptops, 2)
    activity = make_activity(user=security_user, recommendation=rec, groups=[servers])

    outsiders = Group.objects.create(name="IT laptops team")
    laptops.user_groups.add(outsiders)
    it_out = UserFactory(username="it-out", email="it-out@example.com")
    it_out.groups.add(Group.objects.get(name="IT staff"), outsiders)

    users = {
        "anonymous": None,
        "security": security_user,
        "it_in_scope": it_user,
        "it_out_of_scope": it_out,
        "superuser": superuser,
    }
    return {"activity": activity, "users": users}


def client_as(world, role) -> APIClient:
    client = APIClient()
    user = world["users"][role]
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.get_or_create(user=user)[0].key)
    return client


def results(response) -> list:
    return response.json()["results"]


def csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


# (method, path template, body, {role: status}, check(response, role) for 2xx answers)
A = "/api/v1/remediation-activities/"
R = "/api/v1/recommendations/"
CREATE_BODY = {
    "recommendation": "va-_-contoso-_-widget",
    "remediation_option": "software_update",
    "priority": "low",
    "due_on": "2999-01-01",
    "device_groups": ["Servers"],
    "confirm_duplicate": True,  # the world's activity already covers Servers
}


def _sees_one_activity_unless_out_of_scope(response, role):
    assert len(results(response)) == (0 if role == "it_out_of_scope" else 1)


def _export_rows(response, role):
    rows = csv_rows(response)
    assert rows[0][0] == "Remediation activity"
    assert len(rows) - 1 == (0 if role == "it_out_of_scope" else 1)


def _device_rows(response, role):
    assert len(csv_rows(response)) == 1 + 3


def _exposed_count(response, role):
    expected = {"it_in_scope": 3, "it_out_of_scope": 2}.get(role, 5)
    assert response.json()["exposed_devices"] == expected


def _exposed_devices(response, role):
    groups = {row["device_group"] for row in results(response)}
    expected = {"it_in_scope": {"Servers"}, "it_out_of_scope": {"Laptops"}}.get(role, {"Servers", "Laptops"})
    assert groups == expected


def _device_groups(response, role):
    names = [row["name"] for row in results(response)]
    expected = {
        "it_in_scope": ["Servers", "Workstations"],
        "it_out_of_scope": ["Laptops"],
    }.get(role, ["Laptops", "Servers", "Workstations"])
    assert names == expected


def _approved(response, role):
    assert response.json()["ticket_status"] == "approved"


def _rejected(response, role):
    assert response.json()["ticket_status"] == "rejected"


def _completed(response, role):
    assert response.json()["status"] == "completed"


def _created(response, role):
    assert RemediationActivity.objects.filter(pk=response.json()["id"]).exists()


def _three_items(response, role):
    assert len(results(response)) == 3


def _one_event(response, role):
    assert [e["kind"] for e in results(response)] == ["created"]


def _same_activity(response, role):
    assert response.json()["device_groups"] == ["Servers"]


def _any(response, role):
    pass


def codes(anonymous, security, it_in, it_out, superuser):
    return dict(zip(ROLES, (anonymous, security, it_in, it_out, superuser), strict=True))


MATRIX = [
    ("get", A, None, codes(401, 200, 200, 200, 200), _sees_one_activity_unless_out_of_scope),
    ("post", A, CREATE_BODY, codes(401, 201, 403, 403, 201), _created),
    ("get", A + "{id}/", None, codes(401, 200, 200, 404, 200), _same_activity),
    ("get", A + "{id}/devices/", None, codes(401, 200, 200, 404, 200), _three_items),
    ("get", A + "{id}/events/", None, codes(401, 200, 200, 404, 200), _one_event),
    ("post", A + "{id}/approve/", {"notes": "ok"}, codes(401, 403, 200, 404, 200), _approved),
    ("post", A + "{id}/reject/", {"notes": "no"}, codes(401, 403, 200, 404, 200), _rejected),
    ("post", A + "{id}/complete/", {}, codes(401, 200, 200, 404, 200), _completed),
    ("get", A + "export.csv", None, codes(401, 200, 200, 200, 200), _export_rows),
    ("get", A + "{id}/devices.csv", None, codes(401, 200, 200, 404, 200), _device_rows),
    ("get", R, None, codes(401, 200, 200, 200, 200), _any),
    ("get", R + "va-_-contoso-_-widget/", None, codes(401, 200, 200, 200, 200), _exposed_count),
    ("get", R + "va-_-contoso-_-widget/devices/", None, codes(401, 200, 200, 200, 200), _exposed_devices),
    ("get", R + "va-_-nobody-_-nothing/", None, codes(401, 404, 404, 404, 404), _any),
    ("get", R + "va-_-nobody-_-nothing/devices/", None, codes(401, 404, 404, 404, 404), _any),
    ("get", "/api/v1/device-groups/", None, codes(401, 200, 200, 200, 200), _device_groups),
    ("get", "/api/v1/schema/", None, codes(200, 200, 200, 200, 200), _any),
    ("get", "/api/v1/docs/", None, codes(200, 200, 200, 200, 200), _any),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("method", "path", "body", "expected", "check"), MATRIX, ids=[f"{m.upper()} {p}" for m, p, *_ in MATRIX]
)
def test_endpoint_by_role(world, role, method, path, body, expected, check):
    activity = world["activity"]
    before = RemediationActivity.objects.values_list("status", "ticket_status").get(pk=activity.pk)
    url = path.format(id=activity.pk)

    response = (
        getattr(client_as(world, role), method)(url, body, format="json")
        if body is not None
        else (getattr(client_as(world, role), method)(url))
    )

    assert response.status_code == expected[role], getattr(response, "content", b"")[:300]
    if response.status_code < 300:
        check(response, role)
    else:
        if not url.endswith(("schema/", "docs/")):
            assert "detail" in response.json()
        # A refused write changes nothing.
        after = RemediationActivity.objects.values_list("status", "ticket_status").get(pk=activity.pk)
        assert after == before
        assert RemediationActivity.objects.count() == 1
    if response.status_code == 401:
        assert response["WWW-Authenticate"] == "Token"
