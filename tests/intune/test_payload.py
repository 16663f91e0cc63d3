"""The devices a task carries (intune.payload): at most INTUNE_MAX_DEVICES_PER_TASK, never above 10,000."""

import uuid

import pytest
from django.utils import timezone

from intune.payload import GRAPH_MAX_DEVICES_PER_TASK, select_devices, task_body
from recommendations.models import Device, Exposure
from recommendations.services import recommendations_refresh_exposed_devices
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db


def activity_with_devices(user, count: int):
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
    return make_activity(user=user, recommendation=rec, groups=[group])


@pytest.mark.parametrize(("setting", "sent"), [(20_000, GRAPH_MAX_DEVICES_PER_TASK), (10_000, 10_000), (25, 25)])
def test_a_task_carries_at_most_the_setting_and_never_more_than_ten_thousand(security_user, settings, setting, sent):
    settings.INTUNE_MAX_DEVICES_PER_TASK = setting
    activity = activity_with_devices(security_user, 10_050)

    selection = select_devices(activity)
    body = task_body(activity, selection)

    assert activity.target_devices == 10_050  # the activity keeps every target device
    assert len(selection.device_pks) == sent
    assert len(body["managedDevices"]) == sent
    assert body["managedDeviceCount"] == sent
