import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from recommendations.models import RecommendationException
from recommendations.services import exception_create
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, UserFactory, expose

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()
NEXT_MONTH = (TODAY + dt.timedelta(days=30)).isoformat()
URL = "/api/v1/exceptions/"


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def rec():
    rec = RecommendationFactory(external_id="va-_-microsoft-_-silverlight", name="Update Microsoft Silverlight")
    expose(rec, DeviceGroupFactory(name="Servers"), 3)
    expose(rec, DeviceGroupFactory(name="Laptops"), 2)
    return rec


def body(**overrides):
    data = {
        "recommendation": "va-_-microsoft-_-silverlight",
        "justification": "alternate_mitigation",
        "context": "Blocked at the proxy.",
        "expires_on": NEXT_MONTH,
        "scope": "device_groups",
        "device_groups": ["Servers"],
    }
    data.update(overrides)
    return data


def test_security_staff_create_and_read_back_an_exception(security_user, rec):
    response = client_for(security_user).post(URL, body(), format="json")

    assert response.status_code == 201, response.content
    data = response.json()
    assert data["recommendation"] == {"id": "va-_-microsoft-_-silverlight", "name": "Update Microsoft Silverlight"}
    assert (data["justification"], data["scope"], data["status"], data["expires_on"]) == (
        "alternate_mitigation",
        "device_groups",
        "active",
        NEXT_MONTH,
    )
    assert [(g["name"], g["status"]) for g in data["device_groups"]] == [("Servers", "active")]
    assert data["created_by"] == "sec@example.com"
    assert data["suspended"] is False
    assert [(e["kind"], e["actor"]) for e in data["events"]] == [("created", "sec@example.com")]

    detail = client_for(security_user).get(f"{URL}{data['id']}/")
    assert detail.status_code == 200
    assert detail.json()["context"] == "Blocked at the proxy."
    listed = client_for(security_user).get(URL).json()
    assert [row["id"] for row in listed["results"]] == [data["id"]]
    assert "next" in listed
    assert "previous" in listed


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"recommendation": "va-_-nobody-_-nothing"}, "recommendation"),
        ({"justification": "because"}, "justification"),
        ({"context": ""}, "context"),
        ({"expires_on": TODAY.isoformat()}, "expires_on"),
        ({"expires_on": "next tuesday"}, "expires_on"),
        ({"scope": "all"}, "scope"),
        ({"device_groups": []}, "device_groups"),
        ({"device_groups": ["Nowhere"]}, "device_groups"),
    ],
)
def test_bad_bodies_get_400_with_field_messages_and_create_nothing(security_user, rec, overrides, field):
    data = body(**overrides)
    response = client_for(security_user).post(URL, data, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert response.json()[field]
    assert RecommendationException.objects.count() == 0


def test_missing_fields_get_400_naming_each(security_user, rec):
    response = client_for(security_user).post(URL, {}, format="json")
    assert response.status_code == 400
    assert {"recommendation", "justification", "context", "expires_on", "scope"} <= set(response.json())


def test_it_staff_and_users_without_the_permission_get_403_on_create_and_cancel(it_user, security_user, rec):
    plain = UserFactory(username="plain")
    exception = exception_create(
        user=security_user,
        recommendation=rec,
        justification="risk_accepted",
        context="c",
        expires_on=TODAY + dt.timedelta(days=5),
        scope="device_groups",
        device_groups=[rec.exposures.first().device.device_group],
    )
    for user in (it_user, plain):
        assert client_for(user).post(URL, body(device_groups=["Laptops"]), format="json").status_code == 403
        assert client_for(user).post(f"{URL}{exception.pk}/cancel/", {}, format="json").status_code == 403
    assert RecommendationException.objects.count() == 1
    exception.refresh_from_db()
    assert exception.status == "active"


def test_anonymous_is_refused(rec):
    assert APIClient().get(URL).status_code in (401, 403)
    assert APIClient().post(URL, body(), format="json").status_code in (401, 403)


def test_global_scope_is_for_superusers_only(security_user, superuser, rec):
    refused = client_for(security_user).post(URL, body(scope="global", device_groups=[]), format="json")
    assert refused.status_code == 403
    created = client_for(superuser).post(URL, body(scope="global", device_groups=[]), format="json")
    assert created.status_code == 201
    assert created.json()["device_groups"] == []


def test_cancel_one_group_then_all(security_user, rec):
    api = client_for(security_user)
    created = api.post(URL, body(device_groups=["Servers", "Laptops"]), format="json").json()
    cancel_url = f"{URL}{created['id']}/cancel/"

    one = api.post(cancel_url, {"device_group": "Servers"}, format="json")
    assert one.status_code == 200
    assert one.json()["status"] == "active"
    assert {g["name"]: g["status"] for g in one.json()["device_groups"]} == {"Servers": "canceled", "Laptops": "active"}
    assert one.json()["device_groups"][1]["canceled_by"] == "sec@example.com"

    unknown = api.post(cancel_url, {"device_group": "Nowhere"}, format="json")
    assert unknown.status_code == 400
    assert "device_group" in unknown.json()

    again = api.post(cancel_url, {"device_group": "Servers"}, format="json")
    assert again.status_code == 409

    rest = api.post(cancel_url, {}, format="json")
    assert rest.status_code == 200
    assert rest.json()["status"] == "canceled"
    assert [e["kind"] for e in rest.json()["events"]] == ["created", "group_canceled", "canceled"]
    assert api.post(cancel_url, {}, format="json").status_code == 409


def test_cancel_is_post_only(security_user, rec):
    api = client_for(security_user)
    created = api.post(URL, body(), format="json").json()
    assert api.get(f"{URL}{created['id']}/cancel/").status_code == 405
    assert RecommendationException.objects.get().status == "active"


def test_scoped_like_activities_out_of_scope_is_404(it_user, security_user, superuser, rec):
    api = client_for(security_user)
    laptops_only = api.post(URL, body(device_groups=["Laptops"]), format="json").json()
    servers = api.post(URL, body(device_groups=["Servers"]), format="json").json()
    global_exc = client_for(superuser).post(URL, body(scope="global", device_groups=[]), format="json").json()

    it_api = client_for(it_user)  # sees Servers and Workstations only
    ids = [row["id"] for row in it_api.get(URL).json()["results"]]
    assert sorted(ids) == sorted([servers["id"], global_exc["id"]])
    assert it_api.get(f"{URL}{laptops_only['id']}/").status_code == 404
    assert it_api.get(f"{URL}{servers['id']}/").status_code == 200
    assert it_api.get(f"{URL}999999/").status_code == 404


def test_suspended_flag_and_filters(security_user, superuser, rec):
    api = client_for(security_user)
    group_exc = api.post(URL, body(), format="json").json()
    client_for(superuser).post(URL, body(scope="global", device_groups=[]), format="json")

    row = api.get(f"{URL}{group_exc['id']}/").json()
    assert row["suspended"] is True
    assert [r["scope"] for r in api.get(URL, {"scope": "global"}).json()["results"]] == ["global"]
    assert [r["id"] for r in api.get(URL, {"device_group": "Servers"}).json()["results"]] == [group_exc["id"]]
    assert len(api.get(URL, {"expiring_within": 30}).json()["results"]) == 2
    assert api.get(URL, {"expiring_within": 5}).json()["results"] == []
    assert api.get(URL, {"status": "bogus"}).status_code == 400


def test_list_query_count_does_not_grow_with_rows(security_user, rec, django_assert_max_num_queries):
    groups = [DeviceGroupFactory(name=f"G{i}") for i in range(6)]
    for i in range(6):
        other = RecommendationFactory()
        exception_create(
            user=security_user,
            recommendation=other,
            justification="risk_accepted",
            context="c",
            expires_on=TODAY + dt.timedelta(days=5),
            scope="device_groups",
            device_groups=groups[: i + 1],
        )
    api = client_for(security_user)
    with django_assert_max_num_queries(8):
        response = api.get(URL)
    assert len(response.json()["results"]) == 6


def test_schema_describes_the_exception_endpoints(security_user):
    schema = client_for(security_user).get("/api/v1/schema/", {"format": "json"}).json()
    assert {"/api/v1/exceptions/", "/api/v1/exceptions/{id}/", "/api/v1/exceptions/{id}/cancel/"} <= set(
        schema["paths"]
    )
    assert "post" in schema["paths"]["/api/v1/exceptions/{id}/cancel/"]


@pytest.mark.parametrize("bad_id", ["AAA", "0.5", "99999999999999999999999"])
def test_malformed_ids_get_a_json_404(security_user, bad_id):
    response = client_for(security_user).get(f"{URL}{bad_id}/")
    assert response.status_code == 404
    assert "detail" in response.json()


def test_out_of_range_filter_values_get_400(security_user):
    response = client_for(security_user).get(URL, {"expiring_within": "1e20"})
    assert response.status_code == 400
    assert "expiring_within" in response.json()


def test_reading_exceptions_needs_the_view_permission(superuser, rec):
    """Exceptions name their creators: a signed-in account without a role reads none of them."""
    exception = exception_create(
        user=superuser,
        recommendation=rec,
        justification="risk_accepted",
        context="Accepted by the CISO.",
        expires_on=TODAY + dt.timedelta(days=5),
        scope="global",
    )
    nobody = UserFactory(username="no-role", is_staff=True)

    for url in (URL, f"{URL}{exception.pk}/", f"{URL}?scope=global"):
        response = client_for(nobody).get(url)
        assert response.status_code == 403, url
        assert "root@example.com" not in response.content.decode()
    assert client_for(nobody).post(URL, body(), format="json").status_code == 403
    assert client_for(nobody).post(f"{URL}{exception.pk}/cancel/", {}, format="json").status_code == 403
    assert RecommendationException.objects.get().status == "active"
