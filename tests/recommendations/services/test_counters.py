"""Stored per-device-group exposure counters and the scoped counts the lists show from them."""

import datetime as dt
import re

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from portal.locks import job_lock
from recommendations.imports.records import ImportRejected
from recommendations.models import (
    Device,
    DeviceGroup,
    Exposure,
    RecommendationGroupExposure,
    SecurityRecommendation,
)
from recommendations.selectors import exposed_counts_by_group, recommendation_list
from recommendations.services import (
    devices_upsert,
    exception_create,
    exposures_import_snapshot,
    import_tvm_files,
    recommendations_refresh_exposed_devices,
    recommendations_upsert,
)
from recommendations.tasks import recount_exposures
from tests.recommendations.factories import DeviceFactory, DeviceGroupFactory, RecommendationFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/recommendations/securityrecommendation/"
API = "/api/v1/recommendations/"

MACHINES = [
    ("srv-1", "Servers"),
    ("srv-2", "Servers"),
    ("ws-1", "Workstations"),
    ("lap-1", "Laptops"),
    ("lap-2", "Laptops"),
    ("lap-3", "Laptops"),
]


def machine(machine_id: str, group: str) -> dict:
    return {"id": machine_id, "computerDnsName": f"{machine_id}.corp.example.com", "rbacGroupName": group}


def group_counts(external_id: str) -> dict[str, int]:
    """{device group name: stored open exposures} of one recommendation (a group at 0 has no row)."""
    return dict(
        RecommendationGroupExposure.objects.filter(recommendation__external_id=external_id).values_list(
            "device_group__name", "exposed_devices"
        )
    )


def live_counts(external_id: str) -> dict[str, int]:
    """The same, counted from the exposures (what the counters must equal)."""
    counts: dict[str, int] = {}
    for group in Exposure.objects.filter(
        recommendation__external_id=external_id, remediated_at__isnull=True
    ).values_list("device__device_group__name", flat=True):
        counts[group] = counts.get(group, 0) + 1
    return counts


@pytest.fixture
def inventory(it_group):
    """widget on srv-1, srv-2, ws-1, lap-1, lap-2; firewall on lap-1..3; quiet on none."""
    recommendations_upsert(
        records=[
            {"id": "va-widget", "recommendationName": "Update Widget", "severityScore": 9.0},
            {"id": "scid-firewall", "recommendationName": "Turn on the firewall", "severityScore": 5.0},
            {"id": "scid-quiet", "recommendationName": "Quiet", "severityScore": 1.0},
        ]
    )
    devices_upsert(records=[machine(m, g) for m, g in MACHINES])
    exposures_import_snapshot(
        pairs=[
            *[("va-widget", m) for m in ("srv-1", "srv-2", "ws-1", "lap-1", "lap-2")],
            *[("scid-firewall", m) for m in ("lap-1", "lap-2", "lap-3")],
        ]
    )


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.get_or_create(user=user)[0].key)
    return client


def test_import_snapshot_stores_open_exposures_per_device_group(inventory):
    assert group_counts("va-widget") == {"Servers": 2, "Workstations": 1, "Laptops": 2}
    assert group_counts("scid-firewall") == {"Laptops": 3}
    assert group_counts("scid-quiet") == {}
    assert SecurityRecommendation.objects.get(external_id="va-widget").exposed_devices == 5


def test_remediation_snapshot_lowers_the_group_counts_and_drops_empty_groups(inventory):
    counts = exposures_import_snapshot(pairs=[("va-widget", "srv-1"), ("va-widget", "lap-2")])

    assert counts["remediated"] == 3
    assert group_counts("va-widget") == {"Servers": 1, "Laptops": 1}
    assert group_counts("va-widget") == live_counts("va-widget")
    # A recommendation the snapshot does not name keeps its counters.
    assert group_counts("scid-firewall") == {"Laptops": 3}

    # The device comes back: counted again.
    exposures_import_snapshot(pairs=[("va-widget", m) for m in ("srv-1", "lap-2", "ws-1")])
    assert group_counts("va-widget") == {"Servers": 1, "Workstations": 1, "Laptops": 1}


def test_device_moving_to_another_group_moves_its_exposures_in_the_counters(inventory):
    counts = devices_upsert(records=[machine("lap-1", "Servers"), machine("ws-1", "Design")])

    assert counts["updated"] == 2
    assert group_counts("va-widget") == {"Servers": 3, "Design": 1, "Laptops": 1}
    assert group_counts("scid-firewall") == {"Servers": 1, "Laptops": 2}
    assert group_counts("va-widget") == live_counts("va-widget")
    # Totals do not change when devices move.
    assert SecurityRecommendation.objects.get(external_id="va-widget").exposed_devices == 5


def test_device_import_from_files_keeps_the_counters(inventory, tmp_path):
    path = tmp_path / "machines.json"
    path.write_text('{"value": [{"id": "lap-2", "rbacGroupName": "Workstations"}]}')

    import_tvm_files(machines=path)

    assert group_counts("va-widget") == {"Servers": 2, "Workstations": 2, "Laptops": 1}
    assert group_counts("scid-firewall") == {"Workstations": 1, "Laptops": 2}


def test_rejected_snapshot_leaves_the_counters_unchanged(inventory):
    before = list(RecommendationGroupExposure.objects.order_by("pk").values())

    with pytest.raises(ImportRejected):
        exposures_import_snapshot(pairs=[("va-widget", "srv-1"), ("va-widget", "no-such-device")])

    assert list(RecommendationGroupExposure.objects.order_by("pk").values()) == before
    assert group_counts("va-widget") == {"Servers": 2, "Workstations": 1, "Laptops": 2}


def test_exposures_written_with_the_orm_are_counted_at_once(it_group, security_user):
    """Scripts use the model names (DESIGN.md section 3): whatever writes the rows, the database
    keeps the counters, so the list, the API and the exception state are right without a recount."""
    servers = DeviceGroupFactory(name="Servers")
    laptops = DeviceGroupFactory(name="Laptops")
    widget = RecommendationFactory(external_id="va-widget")
    other = RecommendationFactory(external_id="va-other")
    devices = [
        *DeviceFactory.create_batch(3, device_group=servers),
        *DeviceFactory.create_batch(4, device_group=laptops),
    ]
    now = timezone.now()
    Exposure.objects.bulk_create(
        [Exposure(recommendation=r, device=d, first_seen=now, last_seen=now) for r in (widget, other) for d in devices]
    )
    assert group_counts("va-widget") == {"Servers": 3, "Laptops": 4}

    Exposure.objects.filter(recommendation=widget, device__in=devices[:1] + devices[3:5]).update(remediated_at=now)
    assert group_counts("va-widget") == {"Servers": 2, "Laptops": 2}
    widget.refresh_from_db()
    assert widget.exposed_devices == 4

    Device.objects.filter(pk__in=[d.pk for d in devices[5:]]).update(device_group=servers)  # two laptops move
    assert group_counts("va-widget") == {"Servers": 4}
    assert group_counts("va-other") == {"Servers": 5, "Laptops": 2}

    Exposure.objects.filter(recommendation=other, device__device_group=laptops).delete()
    Exposure.objects.filter(recommendation=widget, remediated_at__isnull=False).update(remediated_at=None)
    Exposure(recommendation=other, device=DeviceFactory(device_group=laptops), first_seen=now, last_seen=now).save()
    assert group_counts("va-widget") == {"Servers": 5, "Laptops": 2}
    assert group_counts("va-other") == {"Servers": 5, "Laptops": 1}
    for external_id in ("va-widget", "va-other"):
        assert group_counts(external_id) == live_counts(external_id)

    rows = client_for(security_user).get(API).json()["results"]
    assert {r["id"]: r["exposed_devices"] for r in rows} == {"va-widget": 7, "va-other": 6}

    # The exception state follows at once too: every group with exposed devices is covered.
    Exposure.objects.filter(recommendation=other, device__device_group=laptops).update(remediated_at=now)
    exception_create(
        user=security_user,
        recommendation=other,
        justification="third_party_control",
        context="Blocked at the firewall.",
        expires_on=timezone.localdate() + dt.timedelta(days=30),
        scope="device_groups",
        device_groups=[servers],
    )
    row = recommendation_list(user=security_user).get(pk=other.pk)
    assert (row.exposed_devices, row.exception_state, row.exposed_after_exceptions) == (5, "exception", 0)


def test_the_recount_repairs_drifted_counters(it_group):
    servers = DeviceGroupFactory(name="Servers")
    widget = RecommendationFactory(external_id="va-widget")
    for device in DeviceFactory.create_batch(3, device_group=servers):
        Exposure.objects.create(
            recommendation=widget, device=device, first_seen=timezone.now(), last_seen=timezone.now()
        )
    # Counters written behind the triggers' back (what a TRUNCATE or a dropped trigger leaves).
    SecurityRecommendation.objects.filter(pk=widget.pk).update(exposed_devices=0)
    RecommendationGroupExposure.objects.all().delete()

    assert recommendations_refresh_exposed_devices(recommendation_ids=[widget.pk]) == 1

    widget.refresh_from_db()
    assert (widget.exposed_devices, group_counts("va-widget")) == (3, {"Servers": 3})


def test_seed_demo_leaves_counters_equal_to_the_exposures():
    call_command("seed_demo", devices=60, verbosity=0)

    recommendations = list(SecurityRecommendation.objects.values_list("external_id", "exposed_devices"))
    assert any(total for _, total in recommendations)
    for external_id, total in recommendations:
        assert group_counts(external_id) == live_counts(external_id)
        assert sum(group_counts(external_id).values()) == total


def test_request_form_counts_by_group_read_the_counters(inventory):
    widget = SecurityRecommendation.objects.get(external_id="va-widget")
    by_name = dict(DeviceGroup.objects.values_list("pk", "name"))

    counts = exposed_counts_by_group(recommendation=widget)

    assert {by_name[pk]: n for pk, n in counts.items()} == {"Servers": 2, "Workstations": 1, "Laptops": 2}


def test_admin_changelist_shows_counts_in_the_it_users_groups(
    client, inventory, it_user, security_user, django_assert_max_num_queries
):
    client.force_login(it_user)
    with django_assert_max_num_queries(11):  # + the sub-categories offered by the filter
        html = client.get(CHANGELIST).content.decode()
    assert '<td class="field-exposed_devices_column">3</td>' in html  # widget: Servers 2 + Workstations 1
    assert '<td class="field-exposed_devices_column">5</td>' not in html

    # A laptop joins Servers: the IT user now sees it.
    devices_upsert(records=[machine("lap-1", "Servers")])
    html = client.get(CHANGELIST).content.decode()
    assert '<td class="field-exposed_devices_column">4</td>' in html

    client.force_login(security_user)
    html = client.get(CHANGELIST).content.decode()
    assert '<td class="field-exposed_devices_column">5</td>' in html


def test_admin_changelist_sorts_by_the_scoped_count(client, inventory, it_user):
    # firewall: 6 exposed in all (more than widget's 5), none in the IT user's groups (widget: 3).
    devices_upsert(records=[machine(f"lap-{n}", "Laptops") for n in (4, 5, 6)])
    exposures_import_snapshot(pairs=[("scid-firewall", f"lap-{n}") for n in range(1, 7)])
    client.force_login(it_user)
    header = client.get(CHANGELIST).content.decode()
    order = re.search(r'column-exposed_devices_column">\s*<div class="text"><a href="\?o=(\d+)', header).group(1)

    html = client.get(CHANGELIST, {"o": order}).content.decode()

    assert html.index("Turn on the firewall") < html.index("Update Widget")
    html = client.get(CHANGELIST, {"o": f"-{order}"}).content.decode()
    assert html.index("Update Widget") < html.index("Turn on the firewall")


def test_api_list_shows_counts_in_the_it_users_groups(inventory, it_user, security_user):
    rows = client_for(it_user).get(API).json()["results"]
    assert [(r["id"], r["exposed_devices"]) for r in rows] == [
        ("va-widget", 3),
        ("scid-firewall", 0),
        ("scid-quiet", 0),
    ]

    devices_upsert(records=[machine("lap-3", "Workstations")])

    rows = client_for(it_user).get(API).json()["results"]
    assert [(r["id"], r["exposed_devices"]) for r in rows] == [
        ("va-widget", 3),
        ("scid-firewall", 1),
        ("scid-quiet", 0),
    ]
    exposed = client_for(it_user).get(API, {"exposed": "true"}).json()["results"]
    assert [r["id"] for r in exposed] == ["va-widget", "scid-firewall"]
    rows = client_for(security_user).get(API).json()["results"]
    assert [(r["id"], r["exposed_devices"]) for r in rows] == [
        ("va-widget", 5),
        ("scid-firewall", 3),
        ("scid-quiet", 0),
    ]


def test_exposed_after_exceptions_sums_the_uncovered_groups(inventory, it_user, security_user):
    widget = SecurityRecommendation.objects.get(external_id="va-widget")
    exception_create(
        user=security_user,
        recommendation=widget,
        justification="alternate_mitigation",
        context="Vendor fix next quarter.",
        expires_on=timezone.localdate() + dt.timedelta(days=30),
        scope="device_groups",
        device_groups=[DeviceGroup.objects.get(name="Servers")],
    )

    everyone = recommendation_list(user=security_user).get(pk=widget.pk)
    scoped = recommendation_list(user=it_user).get(pk=widget.pk)

    assert (everyone.exception_state, everyone.exposed_after_exceptions) == ("partial", 3)  # Workstations + Laptops
    assert (scoped.exception_state, scoped.exposed_after_exceptions) == ("partial", 1)  # Workstations only

    # Every exposed device moves into the covered group: nothing is left uncovered.
    devices_upsert(records=[machine("ws-1", "Servers"), machine("lap-1", "Servers"), machine("lap-2", "Servers")])
    everyone = recommendation_list(user=security_user).get(pk=widget.pk)
    assert (everyone.exception_state, everyone.exposed_after_exceptions) == ("exception", 0)


def test_device_moved_in_the_admin_moves_its_exposures_in_the_counters(client, inventory, superuser):
    laptop = Device.objects.get(machine_id="lap-1")
    servers = DeviceGroup.objects.get(name="Servers")
    client.force_login(superuser)

    response = client.post(
        reverse("admin:recommendations_device_change", args=[laptop.pk]),
        {
            "machine_id": laptop.machine_id,
            "computer_dns_name": laptop.computer_dns_name,
            "os_platform": "",
            "device_group": servers.pk,
            "aad_device_id": "",
            "last_seen_0": "",
            "last_seen_1": "",
        },
    )

    assert response.status_code == 302
    assert group_counts("va-widget") == {"Servers": 3, "Workstations": 1, "Laptops": 1}
    assert group_counts("scid-firewall") == {"Servers": 1, "Laptops": 2}


def test_device_deleted_in_the_admin_leaves_the_counters(client, inventory, superuser):
    laptop = Device.objects.get(machine_id="lap-2")
    client.force_login(superuser)

    response = client.post(reverse("admin:recommendations_device_delete", args=[laptop.pk]), {"post": "yes"})

    assert response.status_code == 302
    assert group_counts("va-widget") == {"Servers": 2, "Workstations": 1, "Laptops": 1}
    assert SecurityRecommendation.objects.get(external_id="scid-firewall").exposed_devices == 2


def test_device_deleted_in_the_admin_takes_its_exposures_with_it(client, inventory, superuser):
    # Exposures hold no database foreign keys (migration 0011): the cascade is Django's.
    laptop = Device.objects.get(machine_id="lap-1")
    client.force_login(superuser)

    client.post(reverse("admin:recommendations_device_delete", args=[laptop.pk]), {"post": "yes"})

    assert not Exposure.objects.filter(device_id=laptop.pk).exists()
    assert Exposure.objects.count() == 6


def test_recount_exposures_deletes_exposures_of_devices_deleted_behind_its_back(inventory, capsys):
    laptop = Device.objects.get(machine_id="lap-3")
    with connection.cursor() as cursor:  # a raw DELETE: no cascade, no database foreign key to stop it
        cursor.execute("DELETE FROM recommendations_device WHERE id = %s", [laptop.pk])
    assert Exposure.objects.filter(device_id=laptop.pk).count() == 1

    call_command("recount_exposures")

    out = capsys.readouterr().out
    assert "Deleted 1 exposure(s) of devices or recommendations that no longer exist." in out
    assert not Exposure.objects.filter(device_id=laptop.pk).exists()
    firewall = SecurityRecommendation.objects.get(external_id="scid-firewall")
    assert (firewall.exposed_devices, group_counts("scid-firewall")) == (2, live_counts("scid-firewall"))


def test_exposures_deleted_in_the_admin_leave_the_counters(client, inventory, superuser):
    servers = Exposure.objects.filter(recommendation__external_id="va-widget", device__device_group__name="Servers")
    client.force_login(superuser)

    response = client.post(
        reverse("admin:recommendations_exposure_changelist"),
        {"action": "delete_selected", "post": "yes", "_selected_action": [e.pk for e in servers]},
    )

    assert response.status_code == 302
    assert group_counts("va-widget") == {"Workstations": 1, "Laptops": 2}
    assert SecurityRecommendation.objects.get(external_id="va-widget").exposed_devices == 3


def test_exposure_remediated_in_the_admin_leaves_the_counters(client, inventory, superuser):
    exposure = Exposure.objects.get(recommendation__external_id="va-widget", device__machine_id="ws-1")
    client.force_login(superuser)

    response = client.post(
        reverse("admin:recommendations_exposure_change", args=[exposure.pk]),
        {
            "recommendation": exposure.recommendation_id,
            "device": exposure.device_id,
            "first_seen_0": "2026-11-01",
            "first_seen_1": "08:00:00",
            "last_seen_0": "2026-11-20",
            "last_seen_1": "08:00:00",
            "remediated_at_0": "2026-11-21",
            "remediated_at_1": "08:00:00",
        },
    )

    assert response.status_code == 302
    assert group_counts("va-widget") == {"Servers": 2, "Laptops": 2}
    assert SecurityRecommendation.objects.get(external_id="va-widget").exposed_devices == 4


def _drift(widget):
    """Counters written behind the triggers' back (a TRUNCATE, a trigger dropped by hand)."""
    SecurityRecommendation.objects.filter(pk=widget.pk).update(exposed_devices=9)
    RecommendationGroupExposure.objects.filter(recommendation=widget).update(exposed_devices=7)


def test_recount_exposures_logs_and_repairs_drift(inventory, caplog, capsys):
    widget = SecurityRecommendation.objects.get(external_id="va-widget")
    _drift(widget)
    caplog.set_level("WARNING", logger="recommendations.services.counters")

    call_command("recount_exposures")

    assert capsys.readouterr().out.strip() == "Recounted 1 recommendation(s) whose counters had drifted: va-widget."
    widget.refresh_from_db()
    assert (widget.exposed_devices, group_counts("va-widget")) == (5, live_counts("va-widget"))
    drift = [r for r in caplog.records if getattr(r, "event", "") == "exposure_counter_drift"]
    assert len(drift) == 1
    assert "va-widget" in drift[0].getMessage()

    call_command("recount_exposures")
    assert capsys.readouterr().out.strip() == "Exposure counters are right (3 recommendations checked)."


def test_recount_exposures_check_reports_without_repairing(inventory):
    widget = SecurityRecommendation.objects.get(external_id="va-widget")
    _drift(widget)

    with pytest.raises(CommandError, match="differ from the exposures for 1 recommendation"):
        call_command("recount_exposures", "--check")

    widget.refresh_from_db()
    assert widget.exposed_devices == 9


def test_the_nightly_job_does_nothing_while_another_run_holds_its_lock(inventory):
    widget = SecurityRecommendation.objects.get(external_id="va-widget")
    _drift(widget)

    with job_lock("recount_exposures") as acquired:
        assert acquired
        assert recount_exposures() is None
        with pytest.raises(CommandError, match="in progress"):
            call_command("recount_exposures")

    assert recount_exposures()["drifted"] == 1
    widget.refresh_from_db()
    assert widget.exposed_devices == 5
