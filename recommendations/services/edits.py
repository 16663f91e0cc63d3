"""The admin's edits of inventory rows: devices, exposures and device groups, scoped to the editor.

A user who does not see every device group changes only the rows of their groups: a device of
another group cannot be renamed, moved into theirs or deleted, an exposure of such a device
cannot be edited, and another group cannot be edited (DESIGN.md section 5). The stored exposure
counters follow every save and delete (database triggers). Each function raises PermissionError_
(403) when the rule forbids the write.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection, transaction

from ..models import Device, DeviceGroup, Exposure
from .counters import hold_snapshot_lock
from .write_scope import require_writable_device_groups_edit, require_writable_groups


def _stored_group_of_device(device_id) -> int | None:
    if device_id is None:
        return None
    return Device.objects.filter(pk=device_id).values_list("device_group_id", flat=True).first()


def _groups(*ids) -> list[int]:
    return [pk for pk in ids if pk is not None]


@transaction.atomic
def device_save(*, user, device: Device) -> Device:
    """Create or change a device: its stored group and its new group must both be the editor's."""
    require_writable_groups(user=user, group_ids=_groups(_stored_group_of_device(device.pk), device.device_group_id))
    device.save()
    return device


@transaction.atomic
def devices_delete(*, user, devices: Iterable[Device]) -> int:
    """Delete devices (and their exposures): every one must be in one of the editor's groups."""
    ids = [d.pk for d in devices]
    with connection.cursor() as cursor:
        hold_snapshot_lock(cursor)  # no snapshot may add exposures to them before this commits
    stored = Device.objects.filter(pk__in=ids)
    require_writable_groups(user=user, group_ids=set(stored.values_list("device_group_id", flat=True)))
    deleted, _ = stored.delete()
    return deleted


@transaction.atomic
def exposure_save(*, user, exposure: Exposure) -> Exposure:
    """Create or change an exposure: the device it was on and the device it is on must be the editor's."""
    before = None
    if exposure.pk is not None:
        before = Exposure.objects.filter(pk=exposure.pk).values_list("device_id", flat=True).first()
    require_writable_groups(
        user=user,
        group_ids=_groups(_stored_group_of_device(before), _stored_group_of_device(exposure.device_id)),
    )
    exposure.save()
    return exposure


@transaction.atomic
def exposures_delete(*, user, exposures: Iterable[Exposure]) -> int:
    ids = [e.pk for e in exposures]
    stored = Exposure.objects.filter(pk__in=ids)
    require_writable_groups(user=user, group_ids=set(stored.values_list("device__device_group_id", flat=True)))
    deleted, _ = stored.delete()
    return deleted


@transaction.atomic
def device_group_save(*, user, group: DeviceGroup) -> DeviceGroup:
    """Create or change a device group. A scoped editor changes only their own groups and creates
    none (who may see a group, `user_groups`, is not theirs to change: the admin shows it read-only)."""
    require_writable_device_groups_edit(user=user, group=group if group.pk is not None else None)
    group.save()
    return group


@transaction.atomic
def device_groups_delete(*, user, groups: Iterable[DeviceGroup]) -> int:
    groups = list(groups)
    for group in groups:
        require_writable_device_groups_edit(user=user, group=group)
    deleted, _ = DeviceGroup.objects.filter(pk__in=[g.pk for g in groups]).delete()
    return deleted
