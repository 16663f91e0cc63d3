"""A scoped reader's device counts come from each row's copy of its device's group
(ActivityDevice.scope_group_id, kept by database triggers): they follow every move."""

import pytest

from recommendations.imports.records import Record
from recommendations.models import Device, DeviceGroup
from recommendations.services import devices_upsert
from remediation.models import ActivityDevice
from remediation.selectors import activity_list
from tests.recommendations.factories import DeviceGroupFactory, expose
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db


def groups(activity) -> dict[int, int | None]:
    return dict(ActivityDevice.objects.filter(activity=activity).values_list("device_id", "scope_group_id"))


def shown(user, activity) -> tuple[int, int]:
    row = activity_list(user=user).get(pk=activity.pk)
    return row.shown_target_devices, row.shown_fixed_devices


def test_rows_carry_their_devices_group_from_the_request_and_from_the_database(security_user):
    activity = make_activity(user=security_user, devices=3)
    assert groups(activity) == dict(Device.objects.values_list("pk", "device_group_id"))
    device = expose(activity.recommendation, DeviceGroupFactory(name="Laptops"), 1)[0]
    link = ActivityDevice.objects.create(activity=activity, device=device)  # no group given: the trigger's
    link.refresh_from_db()
    assert link.scope_group_id == device.device_group_id


def test_a_scoped_reader_sees_a_moved_device_leave_and_join_their_counts(security_user, it_user):
    activity = make_activity(user=security_user, devices=3)  # in Servers, one of the IT user's groups
    servers = DeviceGroup.objects.get(name="Servers")
    laptops = DeviceGroupFactory(name="Laptops")  # not one of theirs
    assert shown(it_user, activity) == (3, 0)

    moved = Device.objects.filter(device_group=servers).order_by("pk").first()
    moved.device_group = laptops
    moved.save()
    assert groups(activity)[moved.pk] == laptops.pk
    assert shown(it_user, activity) == (2, 0)

    # Back through an import (one upsert statement for every device it names)
    devices_upsert(records=[Record(1, None, {"id": moved.machine_id, "rbacGroupName": "Servers"})])
    assert groups(activity)[moved.pk] == servers.pk
    assert shown(it_user, activity) == (3, 0)
