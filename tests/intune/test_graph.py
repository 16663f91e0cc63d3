"""The Graph client's task and managed-device calls against the fake, and the fake's schema check.

The fake answers a body that breaks Graph's beta metadata with 400 and OData's message, so the
bodies the contract used to prescribe (a configuration task with `mitigationType`, a `medium`
priority) would fail here exactly as they fail against real Graph.
"""

import pytest

from intune.graph import MANAGED_DEVICE_FILTER_BATCH, GraphClient, GraphError
from tests.intune.graph_fake import MANAGED_DEVICES
from tests.intune.odata_schema import graph_beta

pytestmark = pytest.mark.django_db  # the client shares its token through the database

DEVICE = {
    "id": "6f1d0c52-0d7c-4b8e-9a33-1c2b3d4e5f60",
    "displayName": "PC-1",
    "lastSyncDateTime": "2026-01-05T08:30:00Z",
}
VALID = {
    "@odata.type": "#microsoft.graph.securityConfigurationTask",
    "displayName": "Turn on real-time protection",
    "dueDateTime": "2026-03-01T23:59:59+00:00",
    "category": "advancedThreatProtection",
    "priority": "high",
    "status": "pending",
    "applicablePlatform": "windows10AndLater",
    "endpointSecurityPolicy": "antivirus",
    "endpointSecurityPolicyProfile": "antivirus",
    "intendedSettings": [{"name": "real-time protection", "value": "On"}],
    "managedDeviceCount": 1,
    "managedDevices": [{**DEVICE, "managedDeviceId": "a1"}],
}


@pytest.fixture
def client(graph):
    client = GraphClient.from_settings()
    yield client
    client.close()


def test_a_body_that_keeps_to_the_schema_is_created(client, graph):
    created = client.create_task(VALID)

    assert created["id"] in graph.tasks
    assert created["status"] == "pending"
    assert "managedDevices" not in created  # a navigation property: not in the entity Graph answers
    assert graph.task_devices[created["id"]] == VALID["managedDevices"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"mitigationType": "securityConfiguration"},  # what the old contract sent
            "The property 'mitigationType' does not exist on type 'microsoft.graph.securityConfigurationTask'",
        ),
        (
            {"priority": "medium"},
            "Cannot convert the literal 'medium' to the expected type "
            "'microsoft.graph.deviceAppManagementTaskPriority'",
        ),
        (
            {"dueDateTime": None},
            "A null value was found for the property named 'dueDateTime'",
        ),
        (
            {"endpointSecurityPolicy": "bitLocker"},  # a profile, not a policy type
            "Cannot convert the literal 'bitLocker' to the expected type "
            "'microsoft.graph.endpointSecurityConfigurationType'",
        ),
        (
            {"managedDevices": [{"id": "6f1d0c52", "displayName": "PC-1", "lastSyncDateTime": None}]},
            "A null value was found for the property named 'lastSyncDateTime'",
        ),
        (
            {"managedDevices": [{**DEVICE, "deviceName": "PC-1"}]},
            "The property 'deviceName' does not exist on type 'microsoft.graph.vulnerableManagedDevice'",
        ),
        (
            {"intendedSettings": [{"name": None, "value": "On"}]},
            "A null value was found for the property named 'name'",
        ),
        (
            {"managedDeviceCount": "1"},
            "Cannot convert the literal '1' to the expected type 'Edm.Int32'",
        ),
        (
            {"@odata.type": "#microsoft.graph.mobileAppTask"},
            "A type named 'microsoft.graph.mobileAppTask' could not be resolved by the model",
        ),
    ],
)
def test_a_body_that_breaks_the_schema_is_refused_with_400_as_odata_does(client, graph, change, message):
    with pytest.raises(GraphError) as exc:
        client.create_task({**VALID, **change})

    assert exc.value.status == 400
    assert message in exc.value.message
    assert graph.tasks == {}
    assert len(graph.creates) == 1  # a 400 is not retried


def test_mitigation_type_and_app_fields_belong_to_software_tasks_only():
    schema = graph_beta()
    app_task = {**VALID, "@odata.type": "#microsoft.graph.appVulnerabilityTask"}
    for name in ("applicablePlatform", "endpointSecurityPolicy", "endpointSecurityPolicyProfile", "intendedSettings"):
        app_task.pop(name)

    assert (
        schema.errors(
            {**app_task, "mitigationType": "update", "appName": "chrome"}, expected_type="deviceAppManagementTask"
        )
        == []
    )
    assert schema.errors({**VALID, "appName": "chrome"}, expected_type="deviceAppManagementTask") == [
        "The property 'appName' does not exist on type 'microsoft.graph.securityConfigurationTask'. Make sure to "
        "only use property names that are defined by the type or mark the type as open type."
    ]


def test_managed_devices_are_looked_up_by_entra_id_with_the_contracts_select(client, graph):
    known = graph.enroll("11111111-2222-4333-8444-555555555555", device_name="LAPTOP-7")
    graph.not_managed("99999999-2222-4333-8444-555555555555")

    found = client.managed_devices(["11111111-2222-4333-8444-555555555555", "99999999-2222-4333-8444-555555555555"])

    assert found == [
        {
            "id": known["id"],
            "azureADDeviceId": "11111111-2222-4333-8444-555555555555",
            "deviceName": "LAPTOP-7",
            "lastSyncDateTime": known["lastSyncDateTime"],
        }
    ]
    (lookup,) = graph.device_lookups
    assert lookup.query["$filter"] == (
        "azureADDeviceId eq '11111111-2222-4333-8444-555555555555' or "
        "azureADDeviceId eq '99999999-2222-4333-8444-555555555555'"
    )
    assert lookup.query["$select"] == "id,azureADDeviceId,deviceName,lastSyncDateTime"


def test_a_full_batch_stays_within_graphs_filter_and_url_limits(client, graph):
    ids = [f"{i:08d}-aaaa-4bbb-8ccc-dddddddddddd" for i in range(MANAGED_DEVICE_FILTER_BATCH)]

    assert len(client.managed_devices(ids)) == MANAGED_DEVICE_FILTER_BATCH

    assert graph.device_lookups[0].url_length <= 2048
    with pytest.raises(ValueError, match="1 to 15"):
        client.managed_devices([*ids, "one-too-many"])


def test_the_fake_refuses_a_filter_with_more_than_15_expressions(client, graph):
    odata_filter = " or ".join(f"azureADDeviceId eq '{i}'" for i in range(16))

    with pytest.raises(GraphError) as exc:
        client.json(MANAGED_DEVICES.removeprefix("/beta"), what="Listing", params={"$filter": odata_filter})

    assert exc.value.status == 400
    assert "at most 15" in exc.value.message


def test_an_entra_id_with_a_quote_is_quoted_as_odata_wants(client, graph):
    graph.enroll("o'brien")

    assert [d["azureADDeviceId"] for d in client.managed_devices(["o'brien"])] == ["o'brien"]
    assert graph.device_lookups[0].query["$filter"] == "azureADDeviceId eq 'o''brien'"
