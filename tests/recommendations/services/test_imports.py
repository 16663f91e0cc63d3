"""Inventory import services: upserts by id, exposure snapshots, all-or-nothing imports."""

import datetime as dt
import io
import json
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

import recommendations.services.imports as imports
import recommendations.services.inventory as inventory
from recommendations.imports.records import ImportRejected, Record
from recommendations.models import UNASSIGNED_GROUP_NAME, Device, DeviceGroup, Exposure, SecurityRecommendation
from recommendations.services import (
    devices_upsert,
    exposures_import_snapshot,
    import_tvm_files,
    recommendations_upsert,
)
from remediation.models import RemediationActivity
from tests.recommendations.factories import DeviceFactory, DeviceGroupFactory, RecommendationFactory
from tests.remediation.factories import make_activity

DATA = Path(__file__).resolve().parents[2] / "data"


def db_state():
    """Everything an import could change, to compare before and after a rejected one."""
    return (
        list(DeviceGroup.objects.order_by("name").values_list("name", "description")),
        list(Device.objects.order_by("machine_id").values()),
        list(SecurityRecommendation.objects.order_by("external_id").values()),
        list(Exposure.objects.order_by("pk").values()),
    )


def json_file(payload, name):
    buffer = io.BytesIO(json.dumps(payload).encode())
    buffer.name = name
    return buffer


@pytest.fixture
def sample(db):
    return import_tvm_files(
        recommendations=DATA / "mde_recommendations.json",
        machines=DATA / "mde_machines.json",
        exposures=DATA / "mde_exposures.csv",
    )


def test_sample_files_import_every_record(sample):
    assert SecurityRecommendation.objects.count() == 6
    assert Device.objects.count() == 8
    assert Exposure.objects.filter(remediated_at__isnull=True).count() == 15
    assert sample["exposures"]["created"] == 15
    # Devices without an rbacGroupName land in the built-in group.
    lab = Device.objects.get(computer_dns_name="lab-kiosk-21.corp.contoso.com")
    assert lab.device_group.name == UNASSIGNED_GROUP_NAME
    assert set(DeviceGroup.objects.values_list("name", flat=True)) == {
        "Servers",
        "Workstations",
        "Design",
        UNASSIGNED_GROUP_NAME,
    }
    chrome = SecurityRecommendation.objects.get(external_id="va-_-google-_-chrome")
    assert chrome.exposed_devices == 4
    assert chrome.public_exploit is True
    assert chrome.severity_score == 8.8
    assert chrome.recommended_version == "131.0.6778.86"
    pua = SecurityRecommendation.objects.get(external_id="scid-2010")
    assert pua.category == "SecurityControls"
    assert pua.remediation_type == "ConfigurationChange"
    assert pua.product_name == ""  # null in the API
    # Defender's 7-digit fractions of a second are read.
    sql = Device.objects.get(computer_dns_name="srv-sql-01.corp.contoso.com")
    assert sql.last_seen == dt.datetime(2026, 11, 20, 0, 42, 15, 123456, tzinfo=dt.UTC)


def test_second_snapshot_remediates_missing_devices(sample):
    chrome = SecurityRecommendation.objects.get(external_id="va-_-google-_-chrome")
    before = {
        e.device.machine_id: e
        for e in Exposure.objects.filter(recommendation=chrome).select_related("device", "recommendation")
    }
    kept = sorted(before)[:2]

    counts = exposures_import_snapshot(pairs=[(chrome.external_id, m) for m in kept])

    assert counts["updated"] == 2
    assert counts["remediated"] == 2
    assert counts["created"] == 0
    assert counts["re_exposed"] == 0
    open_ids = set(
        Exposure.objects.filter(recommendation=chrome, remediated_at__isnull=True).values_list(
            "device__machine_id", flat=True
        )
    )
    assert open_ids == set(kept)
    chrome.refresh_from_db()
    assert chrome.exposed_devices == 2
    for machine_id in kept:
        exposure = Exposure.objects.get(recommendation=chrome, device__machine_id=machine_id)
        assert exposure.first_seen == before[machine_id].first_seen
        assert exposure.last_reported > before[machine_id].last_reported
    # Recommendations the snapshot does not name keep their exposures.
    jre_open = Exposure.objects.filter(recommendation__external_id="va-_-oracle-_-jre", remediated_at__isnull=True)
    assert jre_open.count() == 3


def test_device_coming_back_is_exposed_again_and_keeps_first_seen(sample):
    jre = SecurityRecommendation.objects.get(external_id="va-_-oracle-_-jre")
    machines = sorted(Exposure.objects.filter(recommendation=jre).values_list("device__machine_id", flat=True))
    first_seen = Exposure.objects.get(recommendation=jre, device__machine_id=machines[0]).first_seen

    exposures_import_snapshot(pairs=[(jre.external_id, m) for m in machines[1:]])
    gone = Exposure.objects.get(recommendation=jre, device__machine_id=machines[0])
    assert gone.remediated_at is not None

    counts = exposures_import_snapshot(pairs=[(jre.external_id, m) for m in machines])
    assert counts == {"created": 0, "updated": 2, "remediated": 0, "re_exposed": 1, "recommendations": 1}
    back = Exposure.objects.get(recommendation=jre, device__machine_id=machines[0])
    assert back.remediated_at is None
    assert back.first_seen == first_seen
    jre.refresh_from_db()
    assert jre.exposed_devices == 3


def test_snapshot_naming_a_recommendation_without_pairs_remediates_all_its_devices(sample):
    counts = exposures_import_snapshot(pairs=[], recommendation_ids=["scid-44"])
    assert counts["remediated"] == 2
    rec = SecurityRecommendation.objects.get(external_id="scid-44")
    assert rec.exposed_devices == 0
    assert not Exposure.objects.filter(recommendation=rec, remediated_at__isnull=True).exists()


def test_snapshots_drive_activity_progress_to_system_confirmation(
    db, security_user, django_capture_on_commit_callbacks
):
    recommendation = RecommendationFactory(external_id="va-_-contoso-_-agent")
    servers = DeviceGroupFactory(name="Servers")
    devices = DeviceFactory.create_batch(4, device_group=servers)
    pairs = [(recommendation.external_id, d.machine_id) for d in devices]
    with django_capture_on_commit_callbacks(execute=True):
        exposures_import_snapshot(pairs=pairs)
    activity = make_activity(user=security_user, recommendation=recommendation, groups=[servers])
    assert activity.target_devices == 4

    with django_capture_on_commit_callbacks(execute=True):
        counts = exposures_import_snapshot(pairs=pairs[:1])
    assert counts["remediated"] == 3
    activity.refresh_from_db()
    assert activity.fixed_devices == 3
    assert activity.progress == 75
    assert activity.status == RemediationActivity.Status.ACTIVE

    with django_capture_on_commit_callbacks(execute=True):
        exposures_import_snapshot(pairs=[], recommendation_ids=[recommendation.external_id])
    activity.refresh_from_db()
    assert activity.status == RemediationActivity.Status.COMPLETED
    assert activity.completed_by_label == "System confirmation"
    assert activity.progress == 100


def test_file_with_bad_records_imports_nothing_and_names_each_problem(sample):
    before = db_state()
    machines = {
        "value": [
            {"id": "a" * 40, "computerDnsName": "new-1.corp.contoso.com", "rbacGroupName": "Servers"},
            "not an object",
            {"id": "a" * 40, "computerDnsName": "dup.corp.contoso.com"},
            {"id": "b" * 40, "lastSeen": "yesterday"},
            {"computerDnsName": "no-id.corp.contoso.com"},
        ]
    }
    recommendations = {
        "value": [
            {"id": "va-_-new-_-thing", "recommendationName": "Update thing", "severityScore": "high"},
        ]
    }
    exposures = io.BytesIO(
        b"recommendationId,machineId\n"
        b"va-_-google-_-chrome," + b"a" * 40 + b"\n"
        b"va-_-nobody-_-nothing," + b"a" * 40 + b"\n"
        b"va-_-google-_-chrome,extra,column\n"
    )
    exposures.name = "exposures.csv"

    with pytest.raises(ImportRejected) as caught:
        import_tvm_files(
            recommendations=json_file(recommendations, "recs.json"),
            machines=json_file(machines, "machines.json"),
            exposures=exposures,
        )

    problems = [str(p) for p in caught.value.problems.items]
    assert "machines.json record 2: malformed record: expected an object, got text" in problems
    assert f"machines.json record 3: duplicate device id '{'a' * 40}' (first at record 1)" in problems
    assert any(p.startswith("machines.json record 4: wrong type for 'lastSeen'") for p in problems)
    assert "machines.json record 5: missing required field 'id'" in problems
    assert any(p.startswith("recs.json record 1: wrong type for 'severityScore'") for p in problems)
    assert "exposures.csv record 2 (line 3): unknown recommendation 'va-_-nobody-_-nothing'" in problems
    assert "exposures.csv record 3 (line 4): malformed row: expected 2 columns, found 3" in problems
    assert caught.value.problems.count == len(problems) == 7
    assert "Nothing was imported" in caught.value.message
    assert db_state() == before


def test_unknown_device_and_duplicate_pair_are_rejected(sample):
    before = db_state()
    chrome = "va-_-google-_-chrome"
    device = Device.objects.first().machine_id
    with pytest.raises(ImportRejected) as caught:
        exposures_import_snapshot(pairs=[(chrome, device), (chrome, "f" * 40), (chrome, device)])
    problems = [str(p) for p in caught.value.problems.items]
    assert problems == [
        f"exposures record 2: unknown device '{'f' * 40}'",
        f"exposures record 3: duplicate pair '{chrome}', '{device}' (first at record 1)",
    ]
    assert db_state() == before


def test_upserts_update_by_id_and_move_devices_between_groups(sample):
    machine = Device.objects.get(computer_dns_name="ws-hr-12.corp.contoso.com")
    counts = devices_upsert(
        records=[
            Record(
                1,
                None,
                {
                    "id": machine.machine_id,
                    "computerDnsName": "ws-hr-12.corp.contoso.com",
                    "rbacGroupName": "HR laptops",
                    "osPlatform": "Windows11",
                },
            ),
        ]
    )
    assert counts == {"created": 0, "updated": 1, "unchanged": 0, "device_groups_created": 1}
    machine.refresh_from_db()
    assert machine.device_group.name == "HR laptops"
    assert machine.os_platform == "Windows11"
    assert machine.aad_device_id  # not in the record: kept

    counts = recommendations_upsert(
        records=[
            {"id": "va-_-google-_-chrome", "recommendationName": "Update Google Chrome now", "severityScore": 9.1},
            {
                "id": "va-_-7zip-_-7zip",
                "recommendationName": "Update 7-Zip",
                "recommendationCategory": "Software",
                "remediationType": "Patch",
                "weaknesses": "4",
            },
        ]
    )
    assert counts == {"created": 1, "updated": 1, "unchanged": 0}
    chrome = SecurityRecommendation.objects.get(external_id="va-_-google-_-chrome")
    assert (chrome.name, chrome.severity_score, chrome.exposed_devices) == ("Update Google Chrome now", 9.1, 4)
    zip_ = SecurityRecommendation.objects.get(external_id="va-_-7zip-_-7zip")
    assert (zip_.category, zip_.remediation_type, zip_.weaknesses) == ("Application", "Update", 4)


def test_unknown_category_and_remediation_type_fall_back_with_a_warning(db):
    warnings = []
    recommendations_upsert(
        records=[
            {
                "id": "scid-9000",
                "recommendationName": "Harden something",
                "recommendationCategory": "Quantum",
                "remediationType": "Pray",
            },
        ],
        warnings=warnings,
    )
    rec = SecurityRecommendation.objects.get(external_id="scid-9000")
    assert (rec.category, rec.remediation_type) == ("SecurityControls", "ConfigurationChange")
    assert any("Quantum" in w for w in warnings)
    assert any("Pray" in w for w in warnings)


def test_invalid_json_is_one_clear_problem(db):
    broken = io.BytesIO(b'{"value": [{"id": "x",}]}')
    broken.name = "machines.json"
    with pytest.raises(ImportRejected) as caught:
        import_tvm_files(machines=broken)
    assert caught.value.problems.count == 1
    assert str(caught.value.problems.items[0]).startswith("machines.json: not valid JSON (line 1, column")
    assert not Device.objects.exists()


def test_exposures_json_snapshot_same_as_csv(sample):
    counts = import_tvm_files(exposures=DATA / "mde_exposures.json")
    assert counts["exposures"] == {"created": 0, "updated": 15, "remediated": 0, "re_exposed": 0, "recommendations": 6}
    for exposure in Exposure.objects.select_related("recommendation"):
        assert timezone.now() - exposure.last_reported < dt.timedelta(minutes=1)


def test_large_json_is_read_record_by_record_across_buffer_boundaries(tmp_path):
    from recommendations.imports.readers import read_json_records
    from recommendations.imports.records import Problems

    records = [
        {
            "recommendationId": f"va-_-vendor{i}-_-product{i}",
            "machineId": f"{i:040x}",
            "note": 'é"}]' * (i % 7),
            "score": i * 1.5,
        }
        for i in range(25_000)
    ]
    path = tmp_path / "exposures.json"
    path.write_text(json.dumps({"@odata.context": "x", "value": records, "@odata.nextLink": None}, indent=1))
    assert path.stat().st_size > 3 * 1024 * 1024  # several read chunks
    problems = Problems()
    read = [r.data for r in read_json_records(path, source="exposures.json", problems=problems)]
    assert not problems
    assert read == records

    path.write_text(json.dumps({"value": records[:3]}, indent=1).replace('"score": 3.0', '"score": 3.0,,'))
    problems = Problems()
    read = list(read_json_records(path, source="exposures.json", problems=problems))
    assert len(read) == 2
    assert [str(p) for p in problems.items] == [
        "exposures.json: not valid JSON (line 19, column 17): Expecting property name enclosed in double quotes"
    ]


def test_an_import_puts_new_and_stored_devices_in_their_groups(sample, tmp_path, monkeypatch):
    """New devices are copied ahead of the import's transaction (PostgreSQL); one stored meanwhile
    by someone else is updated, never refused or doubled."""
    sql = Device.objects.get(computer_dns_name="srv-sql-01.corp.contoso.com")
    machines = tmp_path / "machines.json"
    records = [
        {"id": sql.machine_id, "osPlatform": "WindowsServer2025"},  # stored, no group column: keeps its group
        {"id": "e" * 40, "computerDnsName": "new.corp.contoso.com"},  # new, no group: UnassignedGroup
        {"id": "f" * 40, "computerDnsName": "lab-01.corp.contoso.com", "rbacGroupName": "Lab"},  # a new group
        {"id": "d" * 40, "computerDnsName": "late.corp.contoso.com", "rbacGroupName": "Lab"},  # stored meanwhile
    ]
    machines.write_text(json.dumps({"value": records}))
    copy_devices_ahead = imports.new_devices_copied_ahead

    @contextmanager
    def store_one_meanwhile(rows):  # after the new devices were copied, before the transaction
        with copy_devices_ahead(rows):
            DeviceFactory(machine_id="d" * 40, computer_dns_name="someone-else", device_group=sql.device_group)
            yield

    monkeypatch.setattr(imports, "new_devices_copied_ahead", store_one_meanwhile)
    inserted_ahead = []
    insert_new_devices = inventory._insert_new_devices
    monkeypatch.setattr(
        inventory,
        "_insert_new_devices",
        lambda staged: inserted_ahead.append(insert_new_devices(staged)) or inserted_ahead[-1],
    )
    summary = import_tvm_files(machines=machines)

    if connection.vendor == "postgresql":  # the two new ones by the one INSERT, the late one upserted
        assert inserted_ahead == [{"e" * 40, "f" * 40}]
    assert summary["devices"] == {"created": 2, "updated": 2, "unchanged": 0, "device_groups_created": 1}
    found = {
        d.machine_id: (d.computer_dns_name, d.device_group.name, d.os_platform)
        for d in Device.objects.filter(machine_id__in=[r["id"] for r in records]).select_related("device_group")
    }
    assert found == {
        sql.machine_id: ("srv-sql-01.corp.contoso.com", "Servers", "WindowsServer2025"),
        "e" * 40: ("new.corp.contoso.com", UNASSIGNED_GROUP_NAME, ""),
        "f" * 40: ("lab-01.corp.contoso.com", "Lab", ""),
        "d" * 40: ("late.corp.contoso.com", "Lab", "Windows11"),
    }


def test_a_rejected_import_leaves_nothing_though_its_new_devices_and_pairs_were_copied_ahead(sample, tmp_path):
    before = db_state()
    machines = tmp_path / "machines.json"
    machines.write_text(json.dumps({"value": [{"id": "e" * 40, "computerDnsName": "new.corp.contoso.com"}]}))
    pairs = tmp_path / "exposures.csv"
    pairs.write_text(f"recommendationId,machineId\nva-_-google-_-chrome,{'e' * 40}\nva-_-nobody-_-nothing,{'e' * 40}\n")
    with pytest.raises(ImportRejected) as caught:
        import_tvm_files(machines=machines, exposures=pairs)

    assert [str(p) for p in caught.value.problems.items] == [
        "exposures.csv record 2 (line 3): unknown recommendation 'va-_-nobody-_-nothing'"
    ]
    assert db_state() == before
    if connection.vendor == "postgresql":  # what was copied ahead went with the import
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT relname FROM pg_class WHERE relpersistence = 't' AND relname LIKE ANY(%s)", [["rp_%", "tvm_%"]]
            )
            assert cursor.fetchall() == []
    # The same connection imports the next file as usual.
    assert import_tvm_files(machines=machines)["devices"]["created"] == 1


def test_device_file_without_a_group_column_keeps_groups(sample):
    sql = Device.objects.get(computer_dns_name="srv-sql-01.corp.contoso.com")
    counts = devices_upsert(
        records=[
            {"id": sql.machine_id, "osPlatform": "WindowsServer2025"},
            {"id": "e" * 40, "computerDnsName": "new.corp.contoso.com"},
        ]
    )
    assert counts["created"] == 1
    sql.refresh_from_db()
    assert (sql.device_group.name, sql.os_platform) == ("Servers", "WindowsServer2025")
    assert Device.objects.get(machine_id="e" * 40).device_group.name == UNASSIGNED_GROUP_NAME


def test_an_import_leaves_the_garbage_collector_on_whether_it_lands_or_is_refused(db):
    """The imports pause Python's cyclic collector while they hold their records: a worker that
    kept it off would never free a reference cycle again (its memory would only grow)."""
    import gc

    seen = []
    real = inventory.check_device_records

    def checking(**kwargs):
        seen.append(gc.isenabled())
        return real(**kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(imports, "check_device_records", checking)
        import_tvm_files(machines=DATA / "mde_machines.json")
        with pytest.raises(ImportRejected):
            import_tvm_files(machines=json_file({"value": [{"computerDnsName": "no-id"}]}, "machines.json"))
    assert seen == [False, False]  # paused while the records were checked
    assert gc.isenabled()


def test_imports_side_by_side_in_one_worker_leave_the_collector_on_only_when_the_last_one_ends():
    """A threaded worker (gunicorn threads, a Celery thread pool) runs two imports at once: the
    first to finish must not turn the collector back on under the other, and the collector is on
    again once both are done."""
    import gc
    import threading

    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first():
        with imports._collector_paused():
            first_in.set()
            second_in.wait(5)
        first_out.set()

    def second():
        first_in.wait(5)
        with imports._collector_paused():
            second_in.set()
            first_out.wait(5)
            seen["after the first ended"] = gc.isenabled()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen == {"after the first ended": False}  # still paused for the import under way
    assert gc.isenabled()


def test_machines_whose_records_name_different_fields_each_keep_their_own_values(db):
    """Records of one file may name different fields (Defender leaves out empty ones, an export
    spells a key otherwise): each machine gets what its own record says, not the fields of the
    record before it."""
    machines = [
        {
            "id": "a" * 40,
            "computerDnsName": "one.corp.contoso.com",
            "osPlatform": "Windows11",
            "rbacGroupName": "Servers",
        },
        {"id": "b" * 40, "osPlatform": "WindowsServer2022"},  # no name, no group
        {"id": "c" * 40, "ComputerDnsName": "three.corp.contoso.com"},  # another spelling, no platform
        {
            "id": "d" * 40,
            "computerDnsName": "four.corp.contoso.com",
            "osPlatform": "Windows10",
            "rbacGroupName": "Servers",
        },
    ]
    import_tvm_files(machines=json_file({"value": machines}, "machines.json"))
    stored = {
        d.machine_id[0]: (d.computer_dns_name, d.os_platform, d.device_group.name)
        for d in Device.objects.select_related("device_group")
    }
    assert stored == {
        "a": ("one.corp.contoso.com", "Windows11", "Servers"),
        "b": ("", "WindowsServer2022", UNASSIGNED_GROUP_NAME),
        "c": ("three.corp.contoso.com", "", UNASSIGNED_GROUP_NAME),
        "d": ("four.corp.contoso.com", "Windows10", "Servers"),
    }
