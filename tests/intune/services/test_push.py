"""Pushing a task (intune.services.push) sends only the devices Intune manages, looked up in Intune.

Against the HTTPS Graph fake, which checks every create body against Graph's beta metadata.
"""

import pytest
from django.utils import timezone

from intune.models import IntuneTask
from intune.services import intune_sync
from recommendations.models import Device, Exposure
from recommendations.services import recommendations_refresh_exposed_devices
from remediation.models import ActivityDevice
from tests.intune.graph_fake import MANAGED_DEVICES, TASKS
from tests.recommendations.factories import DeviceFactory, DeviceGroupFactory, RecommendationFactory
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db


def exposed(recommendation, group, devices):
    now = timezone.now()
    Exposure.objects.bulk_create(
        Exposure(recommendation=recommendation, device=device, first_seen=now, last_seen=now) for device in devices
    )
    recommendations_refresh_exposed_devices(recommendation_ids=[recommendation.pk])
    return devices


def request_for(user, devices, *, group, recommendation=None):
    recommendation = recommendation or RecommendationFactory()
    exposed(recommendation, group, devices)
    return make_activity(user=user, recommendation=recommendation, groups=[group], create_intune_task=True)


def sent_ids(graph, create: int = 0) -> list[str]:
    return [d["id"] for d in graph.creates[create].body["managedDevices"]]


def test_devices_intune_does_not_manage_are_not_sent_and_are_counted(graph, intune_on, security_user):
    group = DeviceGroupFactory(name="Servers")
    devices = DeviceFactory.create_batch(15, device_group=group)
    graph.not_managed(*(d.aad_device_id for d in devices[3:]))
    activity = request_for(security_user, devices, group=group)

    result = intune_sync()

    assert result.ok, result.summary()
    assert sorted(sent_ids(graph)) == sorted(d.aad_device_id for d in devices[:3])
    assert graph.creates[0].body["managedDeviceCount"] == 3
    task = IntuneTask.objects.get(activity=activity)
    assert (task.devices_sent, task.devices_total, task.devices_not_managed) == (3, 15, 12)
    sent = ActivityDevice.objects.filter(activity=activity, sent_to_intune=True)
    assert sorted(sent.values_list("device__aad_device_id", flat=True)) == sorted(d.aad_device_id for d in devices[:3])
    notes = activity.events.get(kind="intune_task_created").notes
    assert "3 of 15 devices sent; 12 not managed by Intune were not sent" in notes


def test_each_device_carries_intunes_id_name_and_last_sync(graph, intune_on, security_user):
    group = DeviceGroupFactory(name="Servers")
    device = DeviceFactory(device_group=group, computer_dns_name="web-01.corp.example")
    record = graph.enroll(device.aad_device_id, device_name="WEB-01", last_sync="2026-02-01T06:00:00Z")
    request_for(security_user, [device], group=group)

    intune_sync()

    assert graph.creates[0].body["managedDevices"] == [
        {
            "id": device.aad_device_id,
            "managedDeviceId": record["id"],
            "displayName": "WEB-01",
            "lastSyncDateTime": "2026-02-01T06:00:00Z",
        }
    ]


def test_a_device_without_a_name_in_intune_keeps_the_portals_name(graph, intune_on, security_user):
    group = DeviceGroupFactory(name="Servers")
    device = DeviceFactory(device_group=group, computer_dns_name="db-02.corp.example")
    graph.enroll(device.aad_device_id, device_name="")
    request_for(security_user, [device], group=group)

    intune_sync()

    assert graph.creates[0].body["managedDevices"][0]["displayName"] == "db-02.corp.example"


def test_a_re_enrolled_device_is_sent_with_its_latest_intune_record(graph, intune_on, security_user):
    group = DeviceGroupFactory(name="Servers")
    device = DeviceFactory(device_group=group)
    graph.enroll(device.aad_device_id, last_sync="2025-03-01T00:00:00Z")
    latest = graph.enroll(device.aad_device_id, last_sync="2026-01-20T12:00:00Z")
    request_for(security_user, [device], group=group)

    intune_sync()

    assert graph.creates[0].body["managedDevices"][0]["managedDeviceId"] == latest["id"]


def test_entra_ids_match_whatever_their_case(graph, intune_on, security_user):
    group = DeviceGroupFactory(name="Servers")
    device = DeviceFactory(device_group=group, aad_device_id="A1B2C3D4-0000-4000-8000-00000000ABCD")
    record = graph.enroll("a1b2c3d4-0000-4000-8000-00000000abcd")
    request_for(security_user, [device], group=group)

    intune_sync()

    assert graph.creates[0].body["managedDevices"][0]["managedDeviceId"] == record["id"]


def test_two_portal_devices_intune_knows_as_one_are_sent_once(graph, intune_on, security_user):
    group = DeviceGroupFactory(name="Servers")
    twin_id = "0f0f0f0f-1111-4222-8333-444455556666"
    devices = [DeviceFactory(device_group=group, aad_device_id=twin_id) for _ in range(2)]
    activity = request_for(security_user, devices, group=group)

    intune_sync()

    assert sent_ids(graph) == [twin_id]
    assert ActivityDevice.objects.filter(activity=activity, sent_to_intune=True).count() == 2
    assert IntuneTask.objects.get(activity=activity).devices_not_managed == 0


def test_intunes_answers_are_cached_so_the_next_push_asks_again_only_after_they_expire(
    graph, intune_on, security_user, settings
):
    group = DeviceGroupFactory(name="Servers")
    devices = DeviceFactory.create_batch(20, device_group=group)
    graph.not_managed(devices[0].aad_device_id)
    first = request_for(security_user, devices, group=group)
    intune_sync()
    assert len(graph.device_lookups) == 2  # 20 ids, 15 a request

    second = request_for(security_user, devices, group=group)
    intune_sync()

    assert len(graph.device_lookups) == 2  # the second push asked nothing
    assert len(sent_ids(graph, 1)) == 19  # and the unmanaged answer was remembered too
    assert IntuneTask.objects.get(activity=second).devices_not_managed == 1

    settings.INTUNE_DEVICE_CACHE_SECONDS = 0  # no cache: every push asks
    request_for(security_user, devices, group=group)
    intune_sync()

    assert len(graph.device_lookups) == 4
    assert IntuneTask.objects.get(activity=first).devices_sent == 19


def test_a_failed_look_up_is_recorded_sends_no_task_and_the_next_sync_succeeds(graph, intune_on, security_user):
    group = DeviceGroupFactory(name="Servers")
    activity = request_for(security_user, DeviceFactory.create_batch(3, device_group=group), group=group)
    graph.fail("GET", MANAGED_DEVICES, status=500, times=3)

    result = intune_sync()

    assert not result.ok
    task = IntuneTask.objects.get(activity=activity)
    assert "Looking up Intune's managed devices failed after 3 attempts: HTTP 500" in task.last_error
    assert task.push_started_at is None  # nothing was created: the next push starts afresh
    assert graph.creates == []

    assert intune_sync().ok
    task.refresh_from_db()
    assert (task.graph_id, task.devices_sent, task.last_error) == (next(iter(graph.tasks)), 3, "")


def test_a_throttled_look_up_waits_and_goes_on(graph, intune_on, security_user):
    group = DeviceGroupFactory(name="Servers")
    activity = request_for(security_user, DeviceFactory.create_batch(3, device_group=group), group=group)
    graph.fail("GET", MANAGED_DEVICES, status=429, headers={"Retry-After": "0"})

    assert intune_sync().ok

    assert len(graph.device_lookups) == 2
    assert IntuneTask.objects.get(activity=activity).devices_sent == 3


def test_a_task_found_again_after_a_lost_answer_is_not_read_back_in_the_same_sync(graph, intune_on, security_user):
    group = DeviceGroupFactory(name="Servers")
    activity = request_for(security_user, DeviceFactory.create_batch(2, device_group=group), group=group)
    graph.drop_after_create()
    intune_sync()
    graph.requests.clear()

    result = intune_sync()

    assert result.recovered == 1
    assert [(r.method, r.path) for r in graph.requests] == [("GET", TASKS)]  # the look-up by name, nothing else
    assert IntuneTask.objects.get(activity=activity).graph_id == next(iter(graph.tasks))


def test_a_configuration_task_is_created_without_a_schema_rejection(graph, intune_on, security_user):
    rec = RecommendationFactory(
        external_id="scid-2012",
        name="Turn on real-time protection",
        sub_category="Antivirus",
        category="SecurityControls",
        remediation_type="ConfigurationChange",
    )
    group = DeviceGroupFactory(name="Workstations")
    devices = DeviceFactory.create_batch(2, device_group=group, os_platform="Windows11")
    exposed(rec, group, devices)
    activity = make_activity(
        user=security_user,
        recommendation=rec,
        groups=[group],
        remediation_option="configuration_change",
        create_intune_task=True,
    )

    result = intune_sync()

    assert result.ok, result.summary()
    task = IntuneTask.objects.get(activity=activity)
    created = graph.tasks[task.graph_id]
    assert created["@odata.type"] == "#microsoft.graph.securityConfigurationTask"
    assert "mitigationType" not in created
    assert (created["applicablePlatform"], created["endpointSecurityPolicy"]) == ("windows10AndLater", "antivirus")
    assert sorted(d["id"] for d in graph.task_devices[task.graph_id]) == sorted(
        Device.objects.filter(device_group=group).values_list("aad_device_id", flat=True)
    )
