"""Which inventory rows a user may write (DESIGN.md section 5: scoping covers writes too).

A user who sees every device group (superusers, `view_all_device_groups`) writes everywhere; any
other user only the devices of their device groups, and only moves devices between those groups.
Operator commands run without a user keep full scope. The imports call these checks on their
records (each refused record is a problem, so nothing is imported); the admin's edits call
`require_writable_*` (a PermissionError_, 403).
"""

from __future__ import annotations

from collections.abc import Iterable

from portal.errors import PermissionError_

from ..imports.records import Problems, Record
from ..models import UNASSIGNED_GROUP_NAME, Device, DeviceGroup
from ..selectors.scope import User, device_group_list, user_sees_all_device_groups

LOOKUP_CHUNK = 2000


def writable_group_ids(user: User | None) -> set[int] | None:
    """The device groups `user` may write in; None for every group (no user, or one who sees all)."""
    if user is None or user_sees_all_device_groups(user):
        return None
    return set(device_group_list(user=user).values_list("pk", flat=True))


def _writable_group_names(user: User) -> dict[str, int]:
    return dict(device_group_list(user=user).values_list("name", "pk"))


def device_groups_in_scope(
    rows: list[tuple[Record, dict]], *, user: User | None, source: str, problems: Problems
) -> list[tuple[Record, dict]]:
    """Device-group import rows the user may write: only existing groups of their own."""
    if writable_group_ids(user) is None:
        return rows
    names = _writable_group_names(user)
    kept = []
    for record, values in rows:
        if values["name"] not in names:
            problems.add(
                source,
                record.position,
                f"device group {values['name']!r} is not one of your device groups; you may not create or change it",
                record.line,
            )
            continue
        kept.append((record, values))
    return kept


def _current_groups(machine_ids: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for start in range(0, len(machine_ids), LOOKUP_CHUNK):
        chunk = machine_ids[start : start + LOOKUP_CHUNK]
        found.update(Device.objects.filter(machine_id__in=chunk).values_list("machine_id", "device_group_id"))
    return found


def devices_in_scope(
    rows: list[tuple[Record, dict]], *, user: User | None, source: str, problems: Problems
) -> list[tuple[Record, dict]]:
    """Device import rows the user may write: a device already stored must be in one of their
    groups, and the group it ends up in (named, kept, or UnassignedGroup for a new one) too."""
    if writable_group_ids(user) is None:
        return rows
    names = _writable_group_names(user)
    ids = set(names.values())
    current = _current_groups([values["machine_id"] for _, values in rows])
    kept = []
    for record, values in rows:
        machine_id = values["machine_id"]
        stored = current.get(machine_id)
        if stored is not None and stored not in ids:
            problems.add(
                source,
                record.position,
                f"device {machine_id!r} is outside your device groups; you may not change it",
                record.line,
            )
            continue
        target = values.get("device_group")
        if target is None and stored is None:
            target = UNASSIGNED_GROUP_NAME
        if target is not None and target not in names:
            problems.add(
                source,
                record.position,
                f"device group {target!r} is not one of your device groups; you may not put devices in it",
                record.line,
            )
            continue
        kept.append((record, values))
    return kept


# --- the admin's edits ---------------------------------------------------------------------------


def require_writable_groups(*, user: User | None, group_ids: Iterable[int | None]) -> None:
    """PermissionError_ unless every one of these device groups is writable by `user`."""
    writable = writable_group_ids(user)
    if writable is None:
        return
    if any(pk not in writable for pk in group_ids):
        raise PermissionError_("You may change only the devices and exposures of your device groups.")


def require_writable_device_groups_edit(*, user: User | None, group: DeviceGroup | None) -> None:
    """Device groups: a scoped user may edit their own groups' descriptions, never create one."""
    writable = writable_group_ids(user)
    if writable is None:
        return
    if group is None or group.pk is None:
        raise PermissionError_("Only people who see every device group can create device groups.")
    if group.pk not in writable:
        raise PermissionError_("You may change only your own device groups.")
