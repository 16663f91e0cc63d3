"""Input that cannot hurt (portal.parsers, portal.middleware.ApiGuardMiddleware): every bad body
or filter is a 4xx with a JSON message, answered quickly, and stores nothing."""

import json

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from recommendations.models import RecommendationException
from remediation.models import RemediationActivity
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, expose

pytestmark = pytest.mark.django_db

ACTIVITIES = "/api/v1/remediation-activities/"
EXCEPTIONS = "/api/v1/exceptions/"


@pytest.fixture
def api(security_user):
    client = APIClient()
    client.force_authenticate(security_user)
    return client


@pytest.fixture
def rec():
    rec = RecommendationFactory(external_id="va-_-contoso-_-widget")
    expose(rec, DeviceGroupFactory(name="Servers"), 2)
    return rec


def create_body(**overrides):
    return {
        "recommendation": "va-_-contoso-_-widget",
        "remediation_option": "software_update",
        "priority": "high",
        "due_on": "2999-01-01",
        "device_groups": ["Servers"],
        **overrides,
    }


@pytest.mark.parametrize("url", [ACTIVITIES, EXCEPTIONS])
def test_deeply_nested_json_is_a_400_not_a_crash(api, rec, url):
    deep = "[" * 100_000 + "]" * 100_000
    response = api.post(url, deep, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"detail": "JSON parse error - the document is nested too deeply."}
    assert not RemediationActivity.objects.exists()


def test_json_nested_deeper_than_any_record_needs_is_refused(api, rec):
    body = json.dumps(create_body(requester_notes=json.loads("[" * 40 + "]" * 40)))
    response = api.post(ACTIVITIES, body, content_type="application/json")
    assert response.status_code == 400
    assert "nested more than 32 levels deep" in response.json()["detail"]


@pytest.mark.parametrize("field", ["recommendation", "requester_notes", "unknown_field"])
def test_a_lone_surrogate_anywhere_in_a_body_is_a_400(api, rec, field):
    body = json.dumps(create_body(**{field: "PLACEHOLDER"})).replace("PLACEHOLDER", "\\ud800")
    response = api.post(ACTIVITIES, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {
        "detail": f"JSON parse error - field {field!r} contains an unpaired surrogate (U+D800), which cannot be stored."
    }
    assert not RemediationActivity.objects.exists()


@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
def test_a_body_over_the_upload_limit_answers_a_json_413(api, rec, settings, content_type):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    body = json.dumps(create_body(requester_notes="x" * 20_000))
    if content_type != "application/json":
        body = "requester_notes=" + "x" * 20_000
    response = api.post(ACTIVITIES, body, content_type=content_type)
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "The request body is larger than 10,000 bytes, the most the API accepts."}
    assert not RemediationActivity.objects.exists()


def test_two_hundred_thousand_device_group_names_are_refused_before_any_lookup(api, rec, django_assert_max_num_queries):
    names = [str(i) for i in range(200_000)]  # 1.3 MB: under the body limit
    with django_assert_max_num_queries(6):  # authentication and throttling only: no name is looked up
        response = api.post(ACTIVITIES, create_body(device_groups=names), format="json")
    assert response.status_code == 400
    assert response.json() == {"device_groups": ["Ensure this field has no more than 1000 elements."]}
    with django_assert_max_num_queries(6):
        response = api.post(
            EXCEPTIONS,
            {
                "recommendation": "va-_-contoso-_-widget",
                "justification": "risk_accepted",
                "context": "x",
                "expires_on": "2999-01-01",
                "scope": "device_groups",
                "device_groups": names,
            },
            format="json",
        )
    assert response.status_code == 400
    assert not RecommendationException.objects.exists()


def test_many_unknown_names_are_resolved_in_one_query_and_listed_briefly(api, rec, django_assert_max_num_queries):
    names = ["Servers", *(f"group-{i}" for i in range(999))]
    with django_assert_max_num_queries(8):
        response = api.post(ACTIVITIES, create_body(device_groups=names), format="json")
    assert response.status_code == 400
    message = response.json()["device_groups"][0]
    assert message.startswith("Unknown device groups: group-0, group-1, ")
    assert message.endswith(" and 979 more.")


def test_every_api_answer_says_no_store(api, rec, client):
    for response in (
        api.get(ACTIVITIES),
        api.get(f"{ACTIVITIES}export.csv"),
        api.get("/api/v1/recommendations/"),
        api.post(ACTIVITIES, {}, format="json"),
        APIClient().get(ACTIVITIES),
        api.get("/api/v1/schema/"),
    ):
        assert "no-store" in response["Cache-Control"], response.status_code


@pytest.mark.parametrize("value", ["abc", "99999999999999999999999", "%00"])
def test_unknown_device_group_filters_on_admin_changelists_and_export_are_no_500(client, superuser, rec, value):
    client.force_login(superuser)
    export = client.get(f"{reverse('admin:remediation_remediationactivity_export')}?device_group={value}")
    assert export.status_code == 400  # a download answers plainly, never with a redirect to a page
    assert export.content.decode().startswith("Nothing was exported: Unknown device group")
    for url in (
        reverse("admin:remediation_remediationactivity_changelist"),
        reverse("admin:recommendations_device_changelist"),
        reverse("admin:recommendations_exposure_changelist"),
    ):
        response = client.get(f"{url}?device_group={value}")
        assert response.status_code == 302, url  # back to the list, as Django does for a bad filter
        assert response["Location"].startswith(url)


def test_the_schema_says_what_queries_the_api_accepts(api):
    schema = api.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    def parameters(path):
        return {p["name"]: p["schema"] for p in schema["paths"][path]["get"]["parameters"] if p["in"] == "query"}

    activities = parameters(ACTIVITIES)
    assert activities["cursor"] == {"type": "string", "format": "cursor"}
    assert activities["search"]["pattern"] == "^[^\\u0000]*$"  # the API refuses NUL in text
    assert "" in activities["status"]["enum"]  # an empty filter is no filter
    assert {"type": "string", "enum": [""]} in activities["due_before"]["anyOf"]
    assert parameters(EXCEPTIONS)["expiring_within"]["anyOf"][0] == {"type": "integer", "minimum": 0, "maximum": 3650}
    assert "format" not in parameters(f"{ACTIVITIES}export.csv")  # CSV whatever ?format= says


def test_text_fields_take_text_only(api, rec):
    response = api.post(ACTIVITIES, create_body(requester_notes=42), format="json")
    assert response.status_code == 400
    assert response.json() == {"requester_notes": ["Not a valid string."]}


def test_too_many_form_fields_answer_json_not_html(api, rec, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    body = "&".join(f"device_groups=g{i}" for i in range(20))
    response = api.post(ACTIVITIES, body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert "DATA_UPLOAD_MAX_NUMBER_FIELDS" in response.json()["detail"]
