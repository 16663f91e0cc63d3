"""Writes are scoped (DESIGN.md section 5): a user who does not see every device group imports,
snapshots and edits only the devices of their groups. Operators (no user) keep full scope."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.utils import timezone

from portal.errors import PermissionError_
from recommendations.imports.records import ImportRejected
from recommendations.models import Device, DeviceGroup, Exposure
from recommendations.services import (
    device_groups_upsert,
    devices_upsert,
    exposures_import_snapshot,
    import_tvm_files,
)
from recommendations.services.edits import device_group_save, device_save, exposure_save
from remediation.models import RemediationActivity
from remediation.services import activities_refresh_progress
from tests.recommendations.factories import DeviceFactory, DeviceGroupFactory, RecommendationFactory, UserFactory
from tests.remediation.factories import make_activity

pytestmark = pytest.mark.django_db

INVENTORY_PERMS = ["add_device", "change_device", "view_device", "add_devicegroup", "change_devicegroup"]


@pytest.fixture
def world(it_group):
    """Servers and Workstations (the scoped user's), Laptops (not theirs), one device in each."""
    laptops = DeviceGroupFactory(name="Laptops")
    devices = {
        name: DeviceFactory(machine_id=f"m-{name.lower()}", computer_dns_name=f"{name.lower()}-1", device_group=group)
        for name, group in (
            ("Servers", DeviceGroup.objects.get(name="Servers")),
            ("Workstations", DeviceGroup.objects.get(name="Workstations")),
            ("Laptops", laptops),
        )
    }
    return devices


@pytest.fixture
def scoped(it_group):
    """Imports inventory, sees only Servers and Workstations."""
    user = UserFactory(username="scoped-importer")
    user.groups.add(it_group)
    user.user_permissions.add(*Permission.objects.filter(codename__in=INVENTORY_PERMS))
    return user


def machine(machine_id, **fields):
    return {"id": machine_id, **fields}


def rejected(call) -> list[str]:
    with pytest.raises(ImportRejected) as exc:
        call()
    return [p.message for p in exc.value.problems.items]


def test_a_scoped_import_cannot_rename_or_take_another_groups_device(world, scoped):
    before = list(Device.objects.order_by("pk").values())

    problems = rejected(
        lambda: devices_upsert(
            records=[
                machine("m-laptops", computerDnsName="stolen"),  # rename another group's device
                machine("m-laptops", rbacGroupName="Servers"),  # ... or pull it into theirs
                machine("m-servers", rbacGroupName="Laptops"),  # push theirs into another group
                machine("m-new", computerDnsName="new"),  # a new device would land in UnassignedGroup
                machine("m-new-2", rbacGroupName="Brand new group"),
            ],
            user=scoped,
        )
    )

    assert problems == [
        "duplicate device id 'm-laptops' (first at record 1)",
        "device 'm-laptops' is outside your device groups; you may not change it",
        "device group 'Laptops' is not one of your device groups; you may not put devices in it",
        "device group 'UnassignedGroup' is not one of your device groups; you may not put devices in it",
        "device group 'Brand new group' is not one of your device groups; you may not put devices in it",
    ]
    assert list(Device.objects.order_by("pk").values()) == before
    assert not DeviceGroup.objects.filter(name="Brand new group").exists()


def test_a_scoped_import_changes_and_moves_devices_within_its_groups(world, scoped):
    counts = devices_upsert(
        records=[
            machine("m-servers", computerDnsName="renamed", rbacGroupName="Workstations"),
            machine("m-ws-new", computerDnsName="fresh", rbacGroupName="Servers"),
        ],
        user=scoped,
    )

    assert (counts["created"], counts["updated"]) == (1, 1)
    assert set(Device.objects.values_list("machine_id", "computer_dns_name", "device_group__name")) >= {
        ("m-servers", "renamed", "Workstations"),
        ("m-ws-new", "fresh", "Servers"),
        ("m-laptops", "laptops-1", "Laptops"),
    }


def test_an_operator_import_keeps_full_scope(world):
    devices_upsert(records=[machine("m-laptops", rbacGroupName="Servers"), machine("m-new")])
    assert dict(Device.objects.values_list("machine_id", "device_group__name")) == {
        "m-servers": "Servers",
        "m-workstations": "Workstations",
        "m-laptops": "Servers",
        "m-new": "UnassignedGroup",
    }


def test_a_scoped_import_edits_only_its_own_device_groups(world, scoped):
    problems = rejected(
        lambda: device_groups_upsert(
            records=[
                {"name": "Servers", "description": "Ours"},
                {"name": "Laptops", "description": "Not ours"},
                {"name": "Phones", "description": "New"},
            ],
            user=scoped,
        )
    )
    assert problems == [
        "device group 'Laptops' is not one of your device groups; you may not create or change it",
        "device group 'Phones' is not one of your device groups; you may not create or change it",
    ]
    assert set(DeviceGroup.objects.values_list("name", "description")) == {
        ("Servers", ""),
        ("Workstations", ""),
        ("Laptops", ""),
    }
    device_groups_upsert(records=[{"name": "Servers", "description": "Ours"}], user=scoped)
    assert DeviceGroup.objects.get(name="Servers").description == "Ours"


def _exposed_activity(security_user, rec, group, devices):
    for device in devices:
        Exposure.objects.create(recommendation=rec, device=device, first_seen=timezone.now(), last_seen=timezone.now())
    return make_activity(user=security_user, recommendation=rec, groups=[group])


def test_a_scoped_snapshot_cannot_remediate_or_complete_another_groups_activity(world, scoped, security_user):
    rec = RecommendationFactory(external_id="va-widget")
    laptops = DeviceGroup.objects.get(name="Laptops")
    servers = DeviceGroup.objects.get(name="Servers")
    laptop_activity = _exposed_activity(security_user, rec, laptops, [world["Laptops"]])
    _exposed_activity(security_user, rec, servers, [world["Servers"]])

    # The scoped user's snapshot names the recommendation but none of its exposed devices: from
    # their point of view, every device is fixed.
    counts = exposures_import_snapshot(pairs=[], recommendation_ids=["va-widget"], user=scoped)
    activities_refresh_progress(recommendation_ids=[rec.pk])

    assert counts["remediated"] == 1  # their server only
    assert Exposure.objects.get(device=world["Laptops"]).remediated_at is None
    laptop_activity.refresh_from_db()
    assert (laptop_activity.status, laptop_activity.fixed_devices) == (RemediationActivity.Status.ACTIVE, 0)
    assert RemediationActivity.objects.filter(status="completed").count() == 1  # the Servers one


def test_a_scoped_snapshot_treats_another_groups_devices_as_unknown(world, scoped):
    rec = RecommendationFactory(external_id="va-widget")
    problems = rejected(
        lambda: exposures_import_snapshot(
            pairs=[("va-widget", "m-servers"), ("va-widget", "m-laptops"), ("va-widget", "m-nowhere")], user=scoped
        )
    )
    assert problems == [
        "unknown device 'm-laptops' (none in your device groups)",
        "unknown device 'm-nowhere' (none in your device groups)",
    ]
    assert not Exposure.objects.filter(recommendation=rec).exists()


def test_an_operator_snapshot_still_completes_every_group(world, security_user):
    rec = RecommendationFactory(external_id="va-widget")
    laptop_activity = _exposed_activity(security_user, rec, DeviceGroup.objects.get(name="Laptops"), [world["Laptops"]])

    exposures_import_snapshot(pairs=[], recommendation_ids=["va-widget"])
    activities_refresh_progress(recommendation_ids=[rec.pk])

    laptop_activity.refresh_from_db()
    assert laptop_activity.status == RemediationActivity.Status.COMPLETED


def test_import_files_for_a_user_apply_their_scope(world, scoped, tmp_path):
    machines = tmp_path / "machines.json"
    machines.write_text('{"value": [{"id": "m-laptops", "computerDnsName": "mine now", "rbacGroupName": "Servers"}]}')
    with pytest.raises(ImportRejected, match="outside your device groups"):
        import_tvm_files(machines=str(machines), user=scoped)
    assert Device.objects.get(machine_id="m-laptops").device_group.name == "Laptops"


def test_admin_edit_services_refuse_rows_outside_the_editors_groups(world, scoped):
    laptops = DeviceGroup.objects.get(name="Laptops")
    own = world["Servers"]
    own.device_group = laptops
    with pytest.raises(PermissionError_):
        device_save(user=scoped, device=own)
    foreign = world["Laptops"]
    foreign.computer_dns_name = "renamed"
    with pytest.raises(PermissionError_):
        device_save(user=scoped, device=foreign)
    exposure = Exposure(
        recommendation=RecommendationFactory(), device=foreign, first_seen=timezone.now(), last_seen=timezone.now()
    )
    with pytest.raises(PermissionError_):
        exposure_save(user=scoped, exposure=exposure)
    with pytest.raises(PermissionError_):
        device_group_save(user=scoped, group=laptops)
    with pytest.raises(PermissionError_, match="create"):
        device_group_save(user=scoped, group=DeviceGroup(name="Phones"))

    assert set(Device.objects.values_list("machine_id", "computer_dns_name", "device_group__name")) == {
        ("m-servers", "servers-1", "Servers"),
        ("m-workstations", "workstations-1", "Workstations"),
        ("m-laptops", "laptops-1", "Laptops"),
    }
    assert not Exposure.objects.exists()
    assert not DeviceGroup.objects.filter(name="Phones").exists()


def test_a_user_without_groups_writes_nothing(world):
    nobody = UserFactory(username="nobody")
    nobody.groups.add(Group.objects.create(name="No device groups"))
    assert rejected(lambda: devices_upsert(records=[machine("m-servers", computerDnsName="x")], user=nobody)) == [
        "device 'm-servers' is outside your device groups; you may not change it"
    ]
    assert rejected(lambda: exposures_import_snapshot(pairs=[], recommendation_ids=["nope"], user=nobody)) == [
        "unknown recommendation 'nope'"
    ]
    # Given a recommendation, a snapshot by someone without groups remediates nothing.
    rec = RecommendationFactory(external_id="va-x")
    Exposure.objects.create(
        recommendation=rec, device=world["Servers"], first_seen=timezone.now(), last_seen=timezone.now()
    )
    assert exposures_import_snapshot(pairs=[], recommendation_ids=["va-x"], user=nobody)["remediated"] == 0
    assert Exposure.objects.get(recommendation=rec).remediated_at is None
