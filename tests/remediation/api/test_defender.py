"""GET /api/remediationTasks (DESIGN.md section 13): Defender's values, scope, paging and query counts."""

import base64
import datetime as dt
import json

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from recommendations.models import Exposure
from recommendations.services import recommendations_refresh_exposed_devices
from remediation.api.defender import RemediationTaskSerializer
from remediation.models import RemediationActivity
from remediation.services import activities_refresh_progress, activity_complete
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, expose
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db

TASKS = "/api/remediationTasks"


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer " + Token.objects.get_or_create(user=user)[0].key)
    return client


def task(client, activity) -> dict:
    response = client.get(f"{TASKS}/{activity.pk}")
    assert response.status_code == 200, response.content
    return response.json()


def test_an_active_software_task_in_defenders_values(security_user):
    rec = RecommendationFactory(
        external_id="va-_-microsoft-_-silverlight",
        vendor="microsoft",
        product_name="silverlight",
        related_component="Microsoft Silverlight",
        recommended_version="5.1.50918.0",
        recommended_vendor="",
    )
    activity = make_activity(
        user=security_user, recommendation=rec, priority="medium", requester_notes="Before the audit", devices=2
    )

    data = task(client_for(security_user), activity)

    assert data["@odata.context"] == "http://testserver/api/$metadata#RemediationTasks/$entity"
    assert data["id"] == str(activity.pk)
    assert data["createdOn"] == activity.created_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    assert data["statusLastModifiedOn"] == data["createdOn"]
    assert data["requesterId"] == str(security_user.pk)
    assert (data["requesterEmail"], data["requesterNotes"]) == ("sec@example.com", "Before the audit")
    assert (data["status"], data["priority"], data["category"], data["type"]) == (
        "Active",
        "Medium",
        "Software",
        "Update",
    )
    assert data["dueOn"] == f"{activity.due_on.isoformat()}T00:00:00Z"
    assert (data["targetDevices"], data["fixedDevices"], data["rbacGroupNames"]) == (2, 0, ["Servers"])
    assert (data["productId"], data["vendorId"], data["nameId"]) == (
        "microsoft-_-silverlight",
        "microsoft",
        "silverlight",
    )
    assert (data["relatedComponent"], data["recommendedVersion"]) == ("Microsoft Silverlight", "5.1.50918.0")
    # What the portal does not hold is null.
    for name in ("recommendedVendor", "recommendedProgram", "scid", "productivityImpactRemediationType"):
        assert data[name] is None, name
    for name in ("completionMethod", "completerId", "completerEmail"):
        assert data[name] is None, name


def test_configuration_and_attention_required_tasks(security_user):
    scid = RecommendationFactory(
        external_id="sca-_-scid-2000",
        remediation_type="ConfigurationChange",
        category="SecurityControls",
        vendor="",
        product_name="",
    )
    configuration = make_activity(user=security_user, recommendation=scid, remediation_option="configuration_change")
    attention = make_activity(user=security_user, remediation_option="attention_required")
    uninstall = make_activity(user=security_user, remediation_option="software_uninstall")
    client = client_for(security_user)

    data = task(client, configuration)
    assert (data["category"], data["type"], data["scid"]) == (
        "Security configuration",
        "ConfigurationChange",
        "scid-2000",
    )
    assert (data["productId"], data["vendorId"], data["nameId"]) == (None, None, None)
    attention_data = task(client, attention)
    assert (attention_data["type"], attention_data["dueOn"]) == ("AttentionRequired", None)
    assert task(client, uninstall)["type"] == "Uninstall"


def test_completion_methods(security_user, it_user):
    manual = make_activity(user=security_user)
    activity_complete(activity=manual, user=it_user)
    automatic = make_activity(user=security_user, devices=1)
    Exposure.objects.filter(recommendation=automatic.recommendation).update(remediated_at=timezone.now())
    recommendations_refresh_exposed_devices(recommendation_ids=[automatic.recommendation_id])
    activities_refresh_progress(recommendation_ids=[automatic.recommendation_id])
    imported = make_activity(user=security_user)
    RemediationActivity.objects.filter(pk=imported.pk).update(
        status="completed", completion_method="unknown", completed_at=timezone.now()
    )
    client = client_for(security_user)

    manual_data = task(client, manual)
    manual.refresh_from_db()
    assert (manual_data["status"], manual_data["completionMethod"]) == ("Completed", "Manual")
    assert (manual_data["completerEmail"], manual_data["completerId"]) == ("it@example.com", str(it_user.pk))
    assert manual_data["statusLastModifiedOn"] == manual.completed_at.isoformat().replace("+00:00", "Z")
    automatic_data = task(client, automatic)
    assert (automatic_data["status"], automatic_data["completionMethod"]) == ("Completed", "Automatic")
    assert (automatic_data["completerEmail"], automatic_data["completerId"]) == (None, None)
    assert (automatic_data["targetDevices"], automatic_data["fixedDevices"]) == (1, 1)
    imported_data = task(client, imported)
    assert (imported_data["status"], imported_data["completionMethod"], imported_data["completerEmail"]) == (
        "Completed",
        None,
        None,
    )


@pytest.fixture
def spanning(security_user, it_group):
    """One activity over Servers (theirs, 3 devices, 1 fixed) and Finance (not theirs, 4 devices, 2 fixed)."""
    rec = RecommendationFactory()
    servers, finance = DeviceGroupFactory(name="Servers"), DeviceGroupFactory(name="Finance")
    server_devices, finance_devices = expose(rec, servers, 3), expose(rec, finance, 4)
    activity = make_activity(user=security_user, recommendation=rec, groups=[servers, finance])
    finance_only = make_activity(user=security_user, recommendation=rec, groups=[finance])
    Exposure.objects.filter(device__in=[server_devices[0], *finance_devices[:2]]).update(remediated_at=timezone.now())
    recommendations_refresh_exposed_devices(recommendation_ids=[rec.pk])
    activities_refresh_progress(recommendation_ids=[rec.pk])
    return activity, finance_only, server_devices


def test_counts_and_group_names_are_those_of_the_callers_device_groups(spanning, security_user, it_user):
    activity, _, server_devices = spanning

    everything = task(client_for(security_user), activity)
    assert (everything["targetDevices"], everything["fixedDevices"]) == (7, 3)
    assert everything["rbacGroupNames"] == ["Finance", "Servers"]
    scoped = task(client_for(it_user), activity)
    assert (scoped["targetDevices"], scoped["fixedDevices"]) == (3, 1)
    assert scoped["rbacGroupNames"] == ["Servers"]
    listed = client_for(it_user).get(TASKS).json()["value"]
    assert [(t["id"], t["targetDevices"], t["fixedDevices"]) for t in listed] == [(str(activity.pk), 3, 1)]

    devices = client_for(it_user).get(f"{TASKS}/{activity.pk}/machineReferences").json()["value"]
    assert sorted(d["id"] for d in devices) == sorted(d.machine_id for d in server_devices[1:])


def test_tasks_outside_the_callers_groups_answer_404_everywhere(spanning, it_user):
    _, finance_only, _ = spanning
    client = client_for(it_user)

    for url in (f"{TASKS}/{finance_only.pk}", f"{TASKS}/{finance_only.pk}/machineReferences"):
        response = client.get(url)
        assert response.status_code == 404
        error = response.json()["error"]
        assert error["code"] == "ResourceNotFound"
        assert error["message"] == f"Remediation task {finance_only.pk} was not found in your device groups."
    for malformed in ("not-a-uuid", "0" * 5000, "%00"):
        assert client.get(f"{TASKS}/{malformed}").status_code == 404


def test_machine_references_can_be_filtered_and_paged(security_user):
    activity = make_activity(user=security_user, devices=5)
    client = client_for(security_user)
    every = client.get(f"{TASKS}/{activity.pk}/machineReferences").json()["value"]

    first = client.get(f"{TASKS}/{activity.pk}/machineReferences", {"$top": 2}).json()
    second = client.get(first["@odata.nextLink"]).json()
    assert [d["id"] for d in first["value"] + second["value"]] == [d["id"] for d in every[:4]]
    name = every[3]["computerDnsName"]
    one = client.get(f"{TASKS}/{activity.pk}/machineReferences", {"$filter": f"computerDnsName eq '{name}'"})
    assert [d["computerDnsName"] for d in one.json()["value"]] == [name]


def test_the_next_link_keeps_the_filter_and_survives_new_tasks(security_user):
    made = [make_activity(user=security_user) for _ in range(5)]
    RemediationActivity.objects.filter(pk=made[2].pk).update(status="completed", completed_at=timezone.now())
    client = client_for(security_user)

    first = client.get(TASKS, {"$filter": "status eq 'Active'", "$top": "2", "$skip": "1"}).json()
    link = first["@odata.nextLink"]
    assert "$filter=status%20eq%20%27Active%27" in link
    assert "$top=2" in link
    assert "$skip=" not in link
    late = make_activity(user=security_user)  # created while the script pages: comes last, shifts nothing
    second = client.get(link).json()

    seen = [t["id"] for t in first["value"] + second["value"]]
    assert seen == [str(a.pk) for a in (made[1], made[3], made[4], late)]
    assert "@odata.nextLink" not in second


def test_skip_after_a_skiptoken_skips_further(security_user):
    made = [make_activity(user=security_user) for _ in range(5)]
    client = client_for(security_user)
    link = client.get(TASKS, {"$top": "1"}).json()["@odata.nextLink"]

    page = client.get(link + "&$skip=2").json()

    assert [t["id"] for t in page["value"]] == [str(made[3].pk)]


def forged(payload: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        forged({"k": ["pk"], "v": [2]}),  # another ordering
        forged({"k": ["created_at", "pk"], "v": [1, 2]}),  # values of the wrong type
        forged(
            {
                "k": ["created_at", "pk"],
                "v": ["2024-01-01T00:00:00+00:00", "00000000-0000-0000-0000-000000000000"],
                "b": 1,
            }
        ),
    ],
)
def test_a_forged_skiptoken_answers_400(security_user, token):
    make_activity(user=security_user)

    response = client_for(security_user).get(TASKS, {"$skiptoken": token})

    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "ODataError",
        "message": "$skiptoken is not one this API made; start again without it.",
        "target": response["X-Request-ID"],
    }


def test_created_on_filters_use_utc(security_user):
    old, new = make_activity(user=security_user), make_activity(user=security_user)
    RemediationActivity.objects.filter(pk=old.pk).update(created_at=dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC))
    RemediationActivity.objects.filter(pk=new.pk).update(created_at=dt.datetime(2024, 3, 2, 12, 0, tzinfo=dt.UTC))
    client = client_for(security_user)

    def ids(text):
        return [t["id"] for t in client.get(TASKS, {"$filter": text}).json()["value"]]

    assert ids("createdOn gt 2024-03-01T12:00:00Z") == [str(new.pk)]
    assert ids("createdOn ge 2024-03-01T12:00:00Z") == [str(old.pk), str(new.pk)]
    assert ids("createdOn lt 2024-03-02T13:00:00+02:00") == [str(old.pk)]
    assert ids("createdOn le 2024-03-01T12:00:00Z or createdOn gt 2024-03-02T00:00:00Z") == [str(old.pk), str(new.pk)]
    assert ids("status ne 'Active'") == []


def test_other_methods_answer_405_in_defenders_error_shape(security_user):
    response = client_for(security_user).post(TASKS, {}, format="json")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "MethodNotAllowed"


def test_the_shape_matches_the_schema(security_user):
    """The dictionaries the views build and the serializer the OpenAPI schema shows list the same fields."""
    data = task(client_for(security_user), make_activity(user=security_user))

    assert list(data) == ["@odata.context", *RemediationTaskSerializer().fields]


# Token, the user's permissions (user and group), the page, its device groups; for a scoped user
# also their device groups and the counts in scope: a constant, whatever the page holds.
MAX_QUERIES = 7


@pytest.mark.parametrize("rows", [1, 100])
@pytest.mark.parametrize("viewer", ["security_user", "it_user"])
def test_a_page_of_tasks_costs_a_constant_number_of_queries(
    request, django_assert_max_num_queries, security_user, viewer, rows
):
    servers = DeviceGroupFactory(name="Servers")
    rec = RecommendationFactory()
    expose(rec, servers, 2)
    for _ in range(rows):
        make_activity(user=security_user, recommendation=rec, groups=[servers])
    client = client_for(request.getfixturevalue(viewer))

    with django_assert_max_num_queries(MAX_QUERIES):
        response = client.get(TASKS)

    assert len(response.json()["value"]) == rows


@pytest.mark.parametrize("rows", [1, 100])
@pytest.mark.parametrize("viewer", ["security_user", "it_user"])
def test_a_page_of_a_tasks_devices_costs_a_constant_number_of_queries(
    request, django_assert_max_num_queries, security_user, viewer, rows
):
    activity = make_activity(user=security_user, devices=rows)
    client = client_for(request.getfixturevalue(viewer))

    # Token, permissions (user and group), the activity and its device groups, the page.
    with django_assert_max_num_queries(6):
        response = client.get(f"{TASKS}/{activity.pk}/machineReferences")

    assert len(response.json()["value"]) == rows
