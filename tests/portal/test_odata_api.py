"""portal.odata_api and portal.authentication: what every Defender-compatible endpoint shares.

Bearer and Token headers, errors in Defender's shape (401, 429 included), paths in any letter case,
`@odata.nextLink`, and the endpoints in the OpenAPI schema.
"""

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.recommendations.factories import DeviceFactory, DeviceGroupFactory

pytestmark = pytest.mark.django_db

MACHINES = "/api/machines"


@pytest.fixture
def key(security_user) -> str:
    DeviceFactory.create_batch(3, device_group=DeviceGroupFactory(name="Servers"))
    return Token.objects.create(user=security_user).key


def get(url, authorization=None, **params):
    client = APIClient()
    if authorization is not None:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    return client.get(url, params)


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "Token", "BEARER"])
def test_the_portal_token_works_with_either_scheme(key, scheme):
    response = get(MACHINES, f"{scheme} {key}")

    assert response.status_code == 200
    assert len(response.json()["value"]) == 3


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        ("Bearer", "Invalid Authorization header: expected `Bearer <token>`."),
        ("Bearer a b", "Invalid Authorization header: expected `Bearer <token>`."),
        ("Bearer " + "0" * 40, "Invalid token."),
        ("Bearer abc\x00def", "Invalid token."),
        ("Bearer " + "a" * 500, "Invalid token."),
        ("Bearer eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2FwaSJ9.c2ln", "Invalid token."),  # an Entra ID JWT
    ],
)
def test_bad_credentials_answer_401_in_defenders_error_shape(key, authorization, message):
    response = get(MACHINES, authorization)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "Unauthorized"
    assert response.json()["error"]["message"] == message


def test_an_inactive_users_token_answers_401(key, security_user):
    security_user.is_active = False
    security_user.save()

    assert get(MACHINES, f"Bearer {key}").status_code == 401


def test_throttled_requests_answer_429_with_retry_after(key, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"user": "2/min", "anon": "2/min"}}

    codes = [get(MACHINES, f"Bearer {key}").status_code for _ in range(2)]
    throttled = get(MACHINES, f"Bearer {key}")

    assert codes == [200, 200]
    assert throttled.status_code == 429
    assert int(throttled["Retry-After"]) > 0
    assert throttled.json()["error"]["code"] == "TooManyRequests"


def test_answers_and_errors_are_never_cached(key):
    assert "no-store" in get(MACHINES, f"Bearer {key}")["Cache-Control"]
    assert "no-store" in get(MACHINES)["Cache-Control"]


def test_a_session_works_too_for_the_swagger_ui(key, security_user):
    client = APIClient()
    client.force_login(security_user)

    assert client.get(MACHINES).status_code == 200


@pytest.mark.parametrize(
    "path", ["/api/machines", "/api/machines/", "/api/Machines", "/api/MACHINES/", "/api/remediationtasks/"]
)
def test_paths_match_in_any_letter_case_with_or_without_a_slash(key, path):
    assert get(path, f"Bearer {key}").status_code == 200


def test_routes_reverse_to_their_canonical_spelling():
    assert reverse("defender:remediation-task-machine-references", args=["x"]) == (
        "/api/remediationTasks/x/machineReferences"
    )
    assert reverse("defender:machines") == "/api/machines"


def test_the_next_link_is_absolute_keeps_top_and_replaces_skip(key):
    first = get(MACHINES, f"Bearer {key}", **{"$top": "1", "$skip": "1"}).json()

    link = first["@odata.nextLink"]
    assert link.startswith("http://testserver/api/machines?$top=1&$skiptoken=")
    last = get(link, f"Bearer {key}").json()
    assert len(last["value"]) == 1
    assert "@odata.nextLink" not in last
    assert last["value"][0]["id"] != first["value"][0]["id"]


def test_a_single_entity_refuses_list_options(key):
    machine = get(MACHINES, f"Bearer {key}").json()["value"][0]["id"]

    response = get(f"{MACHINES}/{machine}", f"Bearer {key}", **{"$filter": "id eq 'x'"})

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "$filter is not supported on this endpoint."


def test_the_endpoints_are_in_the_openapi_schema(key, security_user):
    client = APIClient()
    client.force_login(security_user)
    schema = client.get("/api/v1/schema/", {"format": "json"}).json()

    defender = {path for path in schema["paths"] if not path.startswith("/api/v1/")}
    assert defender == {
        "/api/remediationTasks",
        "/api/remediationTasks/{id}",
        "/api/remediationTasks/{id}/machineReferences",
        "/api/recommendations",
        "/api/recommendations/{id}",
        "/api/recommendations/{id}/machineReferences",
        "/api/machines",
        "/api/machines/{id}",
    }
    tasks = schema["paths"]["/api/remediationTasks"]["get"]
    assert {p["name"] for p in tasks["parameters"]} == {"$filter", "$top", "$skip", "$skiptoken"}
    assert "status, createdOn" in next(p for p in tasks["parameters"] if p["name"] == "$filter")["description"]
    assert {"bearerAuth": []} in tasks["security"]
    assert set(tasks["responses"]) == {"200", "400", "401", "403", "429"}
    item = schema["components"]["schemas"]["RemediationTask"]["properties"]
    assert item["status"]["$ref"].endswith("/DefenderTaskStatusEnum")
    assert schema["components"]["schemas"]["DefenderTaskStatusEnum"]["enum"] == ["Active", "Completed"]
