"""Who sees which device groups (DESIGN.md section 5): every read and write of a scoped user goes through these."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Exists, OuterRef, QuerySet

from portal import permissions as perm

from ..models import Device, DeviceGroup

User = AbstractBaseUser | AnonymousUser


def user_sees_all_device_groups(user: User) -> bool:
    return bool(user.is_active and (user.is_superuser or user.has_perm(perm.VIEW_ALL_DEVICE_GROUPS)))


def device_group_list(*, user: User) -> QuerySet[DeviceGroup]:
    """The device groups the user may see (every group for superusers and 'view all')."""
    groups = DeviceGroup.objects.all()
    if user_sees_all_device_groups(user):
        return groups
    if not user.is_authenticated:
        return groups.none()
    return groups.filter(
        Exists(DeviceGroup.user_groups.through.objects.filter(devicegroup_id=OuterRef("pk"), group__user=user))
    )


def device_group_ids_for_user(*, user: User) -> QuerySet:
    return device_group_list(user=user).values("pk")


def device_list(*, user: User) -> QuerySet[Device]:
    qs = Device.objects.select_related("device_group")
    if user_sees_all_device_groups(user):
        return qs
    return qs.filter(device_group__in=device_group_ids_for_user(user=user))
