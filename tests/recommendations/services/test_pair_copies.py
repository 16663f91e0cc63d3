"""An import copies its CSV of pairs into PostgreSQL while it reads its other files (a thread on
the session's connection, outside any transaction), and leaves nothing behind whatever happens.

Transactional tests: the copy runs in a thread only outside a transaction, as in production.
"""

import json
import threading
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

import recommendations.services.imports as imports
from recommendations.imports.records import ImportRejected
from recommendations.models import Device, Exposure, SecurityRecommendation
from recommendations.services import import_tvm_files, pair_copies, snapshots

DATA = Path(__file__).resolve().parents[2] / "data"

pytestmark = [
    pytest.mark.skipif(
        settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql", reason="needs PostgreSQL"
    ),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def sample_files(exposures=DATA / "mde_exposures.csv", machines=DATA / "mde_machines.json") -> dict:
    return {"recommendations": DATA / "mde_recommendations.json", "machines": machines, "exposures": exposures}


def temporary_tables() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relpersistence = 't' AND relname LIKE ANY(%s)", [["rp_%", "tvm_%"]]
        )
        return [name for (name,) in cursor.fetchall()]


def test_the_pairs_are_copied_while_the_machines_are_read(monkeypatch):
    machines_read, copy_threads = threading.Event(), []
    real_check, real_copy = imports.check_device_records, pair_copies._copy_files

    def check_then_say_so(**kwargs):
        rows = real_check(**kwargs)
        machines_read.set()
        return rows

    def copy_once_the_machines_are_read(*args, **kwargs):  # a copy before the reading would wait in vain
        copy_threads.append(threading.current_thread())
        assert machines_read.wait(30)
        return real_copy(*args, **kwargs)

    copied_lane, real_first = [], snapshots._Snapshot._first_snapshot

    def first_snapshot(snapshot):
        copied_lane.append(snapshot.copied_rows)
        return real_first(snapshot)

    monkeypatch.setattr(imports, "check_device_records", check_then_say_so)
    monkeypatch.setattr(pair_copies, "_copy_files", copy_once_the_machines_are_read)
    monkeypatch.setattr(snapshots._Snapshot, "_first_snapshot", first_snapshot)

    summary = import_tvm_files(**sample_files())

    assert [t.name for t in copy_threads] == ["pairs-copy"]
    assert copied_lane == [15]  # the snapshot took the rows the thread copied
    assert summary["exposures"]["created"] == 15
    assert summary["exposures"]["recommendations"] == 6  # the ones the copied pairs name
    pairs = [tuple(line.split(",")) for line in (DATA / "mde_exposures.csv").read_text().splitlines()[1:]]
    stored = Exposure.objects.filter(remediated_at=None).values_list(
        "recommendation__external_id", "device__machine_id"
    )
    assert set(stored) == set(pairs)
    assert temporary_tables() == []


def test_a_rejected_machines_file_stops_the_copy_and_leaves_nothing(tmp_path, monkeypatch):
    machines = tmp_path / "machines.json"
    machines.write_text(json.dumps({"value": [{"computerDnsName": "no-id.corp.contoso.com"}]}))
    copy_started, happened = threading.Event(), []
    real_copy, real_upsert = pair_copies._copy_files, imports.recommendations_upsert

    def copy_slowly(raw_cursor, files, *, table, stop=None):  # still copying when the reading ends
        copy_started.set()
        happened.append("stopped" if stop.wait(30) else "not stopped")
        return real_copy(raw_cursor, files, table=table, stop=stop)

    def upsert(**kwargs):  # the import's transaction
        happened.append("transaction")
        return real_upsert(**kwargs)

    monkeypatch.setattr(pair_copies, "_copy_files", copy_slowly)
    monkeypatch.setattr(imports, "recommendations_upsert", upsert)

    with pytest.raises(ImportRejected) as caught:
        import_tvm_files(**sample_files(machines=machines))

    assert copy_started.is_set()
    assert happened == ["stopped", "transaction"]  # not copied in vain
    # Every problem is listed, as always: the record, and the pairs of devices it did not store.
    assert str(caught.value.problems.items[0]) == "machines.json record 1: missing required field 'id'"
    assert not SecurityRecommendation.objects.exists()
    assert not Device.objects.exists()
    assert temporary_tables() == []
    monkeypatch.undo()
    assert import_tvm_files(**sample_files())["exposures"]["created"] == 15  # the connection goes on


def test_pairs_that_need_the_python_reader_are_read_again_and_worded(tmp_path):
    pairs = [line.split(",") for line in (DATA / "mde_exposures.csv").read_text().splitlines()[1:]]
    exposures = tmp_path / "exposures.csv"
    exposures.write_text(
        "recommendationId,machineId\n"
        f"{pairs[0][0]},{pairs[0][1]}\n"
        f"va-_-nobody-_-nothing,{pairs[0][1]}\n"  # unknown: the copy's INSERT finds fewer rows
    )

    with pytest.raises(ImportRejected) as caught:
        import_tvm_files(**sample_files(exposures=exposures))

    assert [str(p) for p in caught.value.problems.items] == [
        "exposures.csv record 2 (line 3): unknown recommendation 'va-_-nobody-_-nothing'"
    ]
    assert not Device.objects.exists()
    assert temporary_tables() == []


def test_a_pairs_file_postgresql_refuses_is_read_by_python_with_its_line(tmp_path):
    pairs = [line.split(",") for line in (DATA / "mde_exposures.csv").read_text().splitlines()[1:]]
    exposures = tmp_path / "exposures.csv"
    exposures.write_text(f"recommendationId,machineId\n{pairs[0][0]},{pairs[0][1]}\n{pairs[1][0]},{pairs[1][1]},x\n")

    with pytest.raises(ImportRejected) as caught:
        import_tvm_files(**sample_files(exposures=exposures))

    assert len(caught.value.problems.items) == 1
    assert str(caught.value.problems.items[0]).startswith("exposures.csv record 2 (line 3): ")
    assert not Device.objects.exists()
    assert temporary_tables() == []
