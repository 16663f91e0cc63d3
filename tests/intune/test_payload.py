"""Every body the portal can send to Intune, checked against Graph's published beta metadata.

The metadata excerpt (tests/intune/data/graph-beta-tasks.xml) is the authority (DESIGN.md
section 9): every property declared on the task's type or its base, every enum value a member,
every non-nullable property present and non-null, and the same for each managed device sent.
"""

import uuid
import zlib

import pytest
from django.utils import timezone

from intune.payload import GRAPH_MAX_DEVICES_PER_TASK, select_devices, task_body
from intune.services.push import client_for_sync
from recommendations.models import Device, Exposure
from recommendations.services import recommendations_refresh_exposed_devices
from tests.intune.odata_schema import graph_beta
from tests.recommendations.factories import DeviceFactory, DeviceGroupFactory, RecommendationFactory
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db

SERVER_SET = ("id", "createdDateTime")  # Graph gives a new task these itself
TASKS_TYPE = "deviceAppManagementTask"


def activity_with_devices(user, count: int, **kwargs):
    rec = RecommendationFactory()
    group = DeviceGroupFactory(name="Servers")
    devices = Device.objects.bulk_create(
        Device(
            machine_id=f"{i:040x}",
            computer_dns_name=f"host-{i:05d}",
            device_group=group,
            aad_device_id=str(uuid.UUID(int=i + 1)),
        )
        for i in range(count)
    )
    now = timezone.now()
    Exposure.objects.bulk_create(
        Exposure(recommendation=rec, device=device, first_seen=now, last_seen=now) for device in devices
    )
    recommendations_refresh_exposed_devices(recommendation_ids=[rec.pk])
    return make_activity(user=user, recommendation=rec, groups=[group], **kwargs)


def exposed_group(recommendation, name: str, platforms: list[str]):
    group = DeviceGroupFactory(name=name)
    for platform in platforms:
        device = DeviceFactory(device_group=group, os_platform=platform)
        Exposure.objects.create(
            recommendation=recommendation, device=device, first_seen=timezone.now(), last_seen=timezone.now()
        )
    recommendations_refresh_exposed_devices(recommendation_ids=[recommendation.pk])
    return group


def body_for(activity) -> dict:
    client = client_for_sync()
    try:
        return task_body(activity, select_devices(activity, client))
    finally:
        client.close()


def assert_accepted_by_graph(body: dict) -> None:
    """What Graph's schema demands of a create body, and of each managed device in it."""
    schema = graph_beta()
    assert schema.errors(body, expected_type=TASKS_TYPE) == []
    task_type = body["@odata.type"].removeprefix("#microsoft.graph.")
    missing = [name for name in schema.required(task_type, server_set=SERVER_SET) if name not in body]
    assert missing == []
    device_type = schema.properties(task_type)["managedDevices"].type.removeprefix("Collection(graph.").rstrip(")")
    for device in body["managedDevices"]:
        assert [name for name in schema.required(device_type) if name not in device] == []
        assert set(device) == {"id", "managedDeviceId", "displayName", "lastSyncDateTime"}


# INTUNE_MAX_DEVICES_PER_TASK at its default (10,000) is the push test in services/test_sync.py.
@pytest.mark.parametrize(("setting", "targets", "sent"), [(20_000, 10_050, GRAPH_MAX_DEVICES_PER_TASK), (25, 60, 25)])
def test_a_task_carries_at_most_the_setting_and_never_more_than_ten_thousand(
    graph, intune_on, security_user, settings, setting, targets, sent
):
    settings.INTUNE_MAX_DEVICES_PER_TASK = setting
    activity = activity_with_devices(security_user, targets, create_intune_task=True)

    body = body_for(activity)

    assert activity.target_devices == targets  # the activity keeps every target device
    assert len(body["managedDevices"]) == sent
    assert body["managedDeviceCount"] == sent
    # Only the devices needed are looked up: 15 a request, never more than the limit needs.
    assert len(graph.device_lookups) == -(-sent // 15)


# --- software tasks -------------------------------------------------------------------------------
@pytest.mark.parametrize(("priority", "graph_priority"), [("high", "high"), ("medium", "none"), ("low", "low")])
@pytest.mark.parametrize(("option", "mitigation"), [("software_update", "update"), ("software_uninstall", "uninstall")])
def test_software_bodies_are_what_graph_accepts(
    graph, intune_on, security_user, option, mitigation, priority, graph_priority
):
    rec = RecommendationFactory(
        name="Update Google Chrome", product_name="chrome", vendor="google", recommended_version="131.0.6778.86"
    )
    activity = make_activity(
        user=security_user, recommendation=rec, remediation_option=option, priority=priority, create_intune_task=True
    )

    body = body_for(activity)

    assert_accepted_by_graph(body)
    assert body["@odata.type"] == "#microsoft.graph.appVulnerabilityTask"
    assert body["priority"] == graph_priority
    assert body["mitigationType"] == mitigation
    assert body["appName"] == "chrome"
    assert body["appPublisher"] == "google"
    assert ("appVersion" in body) is (option == "software_update")  # an uninstall has no version to reach
    assert body["mobileAppCount"] == 0
    assert body["managedDeviceCount"] == len(body["managedDevices"]) == 3


def test_a_software_body_without_product_facts_leaves_the_app_fields_out(graph, intune_on, security_user):
    rec = RecommendationFactory(product_name="", vendor="", related_component="", recommended_version="")

    body = body_for(make_activity(user=security_user, recommendation=rec, create_intune_task=True))

    assert_accepted_by_graph(body)
    assert not {"appName", "appPublisher", "appVersion"} & set(body)


# --- configuration tasks --------------------------------------------------------------------------
CONFIGURATIONS = [
    # name, sub-category, category, platforms, policy, profile, intended settings
    (
        "Enable Microsoft Defender Firewall for the domain profile",
        "Firewall",
        "SecurityControls",
        ["Windows11", "Windows10"],
        "firewall",
        "firewall",
        [{"name": "Microsoft Defender Firewall for the domain profile", "value": "Enabled"}],
    ),
    (
        "Turn on real-time protection",
        "Antivirus",
        "SecurityControls",
        ["Windows11"],
        "antivirus",
        "antivirus",
        [{"name": "real-time protection", "value": "On"}],
    ),
    (
        "Encrypt all BitLocker-supported drives",
        "BitLocker",
        "SecurityControls",
        ["Windows10", "WindowsServer2022"],
        "diskEncryption",
        "bitLocker",
        None,
    ),
    (
        "Turn on FileVault",
        "Disk encryption",
        "SecurityControls",
        ["macOS"],
        "diskEncryption",
        "fileVault",
        [{"name": "FileVault", "value": "On"}],
    ),
    (
        "Block Office applications from creating child processes",
        "Attack Surface Reduction",
        "SecurityControls",
        ["Windows11"],
        "attackSurfaceReduction",
        "attackSurfaceReductionRules",
        [{"name": "Block Office applications from creating child processes", "value": "Block"}],
    ),
    (
        "Turn on Credential Guard",
        "Credential Guard",
        "Accounts",
        ["Windows11"],
        "accountProtection",
        "accountProtection",
        [{"name": "Credential Guard", "value": "On"}],
    ),
    (
        "Turn on EDR in block mode",
        "EDR",
        "SecurityControls",
        ["WindowsServer2019"],
        "endpointDetectionAndResponse",
        "endpointDetectionAndResponse",
        [{"name": "EDR in block mode", "value": "On"}],
    ),
    (
        "Set 'Minimum password length' to 14 or more characters",
        "Password policy",
        "Accounts",
        ["Windows10", "Linux"],
        "unknown",
        "unknown",
        [{"name": "Minimum password length", "value": "14 or more characters"}],
    ),
]


@pytest.mark.parametrize(("priority", "graph_priority"), [("high", "high"), ("medium", "none"), ("low", "low")])
@pytest.mark.parametrize(
    ("name", "sub_category", "category", "platforms", "policy", "profile", "intended"),
    CONFIGURATIONS,
    ids=[c[4] + "-" + c[5] for c in CONFIGURATIONS],
)
def test_configuration_bodies_are_what_graph_accepts(
    graph,
    intune_on,
    security_user,
    name,
    sub_category,
    category,
    platforms,
    policy,
    profile,
    intended,
    priority,
    graph_priority,
):
    rec = RecommendationFactory(
        external_id=f"scid-{zlib.crc32(name.encode()) % 9000}",
        name=name,
        sub_category=sub_category,
        category=category,
        remediation_type="ConfigurationChange",
        product_name="",
        recommended_version="",
    )
    group = exposed_group(rec, "Workstations", platforms)
    activity = make_activity(
        user=security_user,
        recommendation=rec,
        groups=[group],
        remediation_option="configuration_change",
        priority=priority,
        create_intune_task=True,
    )

    body = body_for(activity)

    assert_accepted_by_graph(body)
    assert body["@odata.type"] == "#microsoft.graph.securityConfigurationTask"
    assert body["priority"] == graph_priority
    assert (body["endpointSecurityPolicy"], body["endpointSecurityPolicyProfile"]) == (policy, profile)
    assert body.get("intendedSettings") == intended
    assert not {"mitigationType", "appName", "appPublisher", "appVersion", "remediation", "mobileAppCount"} & set(body)
    assert body["managedDeviceCount"] == len(platforms)


@pytest.mark.parametrize(
    ("platforms", "expected"),
    [
        (["Windows10", "Windows11"], "windows10AndLater"),
        (["Windows11", "WindowsServer2022"], "windows10AndWindowsServer"),
        (["WindowsServer2019"], "windows10AndWindowsServer"),
        (["macOS"], "macOS"),
        (["macOS", "Windows11"], "unknown"),
        (["Linux"], "unknown"),
    ],
)
def test_the_applicable_platform_is_the_one_of_the_devices_sent(graph, intune_on, security_user, platforms, expected):
    rec = RecommendationFactory(
        external_id="scid-2010", name="Turn on Tamper Protection", remediation_type="ConfigurationChange"
    )
    group = exposed_group(rec, "Workstations", platforms)
    activity = make_activity(
        user=security_user,
        recommendation=rec,
        groups=[group],
        remediation_option="configuration_change",
        create_intune_task=True,
    )

    body = body_for(activity)

    assert_accepted_by_graph(body)
    assert body["applicablePlatform"] == expected


def test_the_platform_counts_only_devices_intune_manages(graph, intune_on, security_user):
    rec = RecommendationFactory(
        external_id="scid-91", name="Turn on PUA protection", remediation_type="ConfigurationChange"
    )
    group = exposed_group(rec, "Workstations", ["Windows11", "Linux"])
    linux = Device.objects.get(device_group=group, os_platform="Linux")
    graph.not_managed(linux.aad_device_id)
    activity = make_activity(
        user=security_user,
        recommendation=rec,
        groups=[group],
        remediation_option="configuration_change",
        create_intune_task=True,
    )

    body = body_for(activity)

    assert body["applicablePlatform"] == "windows10AndLater"
    assert [d["id"] for d in body["managedDevices"]] == [Device.objects.get(os_platform="Windows11").aad_device_id]
