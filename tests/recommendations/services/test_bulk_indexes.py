"""A first import builds the exposure table's indexes after its rows (PostgreSQL).

What a user must not notice: the pairs, the counters and the uniqueness of a pair are exactly
as after an ordinary import, whichever reader read the file; a file with a repeated pair is
still refused with its line and leaves nothing behind (indexes included); and a reader holding
the table is never locked out, nor kept out when the rebuild is given up: the import then
inserts as usual. The threshold is lowered so that the small sample qualifies.
"""

import json
import threading
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils.timezone import now

from recommendations.imports.records import ImportRejected
from recommendations.models import Device, Exposure, SecurityRecommendation
from recommendations.services import bulk, import_tvm_files
from recommendations.services.counters import exposure_counters_check

pytestmark = pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql", reason="needs PostgreSQL"
)

DATA = Path(__file__).resolve().parents[2] / "data"
TABLE = Exposure._meta.db_table


def indexes(table: str = TABLE) -> set[tuple[str, str]]:
    """The table's indexes and constraints, by name and definition."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table])
        found = set(cursor.fetchall())
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass", [table]
        )
        return found | set(cursor.fetchall())


def inventory() -> None:
    import_tvm_files(recommendations=DATA / "mde_recommendations.json", machines=DATA / "mde_machines.json")


def statements(queries) -> str:
    return "\n".join(q["sql"] for q in queries.captured_queries)


@pytest.fixture
def bulk_from_one_row(monkeypatch):
    monkeypatch.setattr(bulk, "BULK_MIN_ROWS", 1)


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["mde_exposures.csv", "mde_exposures.json"])  # copied, and read by Python
def test_a_first_import_stores_the_same_pairs_counters_and_indexes(bulk_from_one_row, name):
    before = indexes()
    inventory()

    with CaptureQueriesContext(connection) as queries:
        summary = import_tvm_files(exposures=DATA / name)

    assert "DROP CONSTRAINT" in statements(queries)  # the bulk path ran
    assert summary["exposures"]["created"] == Exposure.objects.count() == 15
    assert indexes() == before
    chrome = SecurityRecommendation.objects.get(external_id="va-_-google-_-chrome")
    assert chrome.exposed_devices == Exposure.objects.filter(recommendation=chrome).count() > 0
    assert exposure_counters_check(repair=False)["drifted"] == 0  # per device group too
    # A pair is still one exposure.
    pair = Exposure.objects.first()
    with pytest.raises(IntegrityError), transaction.atomic():
        Exposure.objects.create(
            recommendation_id=pair.recommendation_id,
            device_id=pair.device_id,
            first_seen=pair.first_seen,
            last_seen=pair.last_seen,
        )
    # Exposures written after the import are counted as they are written.
    unexposed = Device.objects.exclude(exposures__recommendation=chrome).first()
    Exposure.objects.create(
        recommendation=chrome, device=unexposed, first_seen=pair.first_seen, last_seen=pair.last_seen
    )
    chrome.refresh_from_db()
    assert chrome.exposed_devices == Exposure.objects.filter(recommendation=chrome).count()
    assert exposure_counters_check(repair=False)["drifted"] == 0


@pytest.mark.django_db
def test_a_repeated_pair_is_still_refused_with_its_line_and_leaves_the_indexes(bulk_from_one_row, tmp_path):
    before = indexes()
    inventory()
    lines = (DATA / "mde_exposures.csv").read_text().splitlines()
    repeated = tmp_path / "exposures.csv"
    repeated.write_text("\n".join([*lines, lines[1]]) + "\n")

    with CaptureQueriesContext(connection) as queries, pytest.raises(ImportRejected) as rejected:
        import_tvm_files(exposures=repeated)

    assert "DROP CONSTRAINT" in statements(queries)  # the bulk path ran, and its unique index refused the pair

    assert f"line {len(lines) + 1}" in str(rejected.value)
    assert "duplicate pair" in str(rejected.value)
    assert Exposure.objects.count() == 0
    assert indexes() == before
    # The refused import left the counting as it was: an exposure written now is counted, and so
    # is the file without the repeat.
    chrome = SecurityRecommendation.objects.get(external_id="va-_-google-_-chrome")
    Exposure.objects.create(recommendation=chrome, device=Device.objects.first(), first_seen=now(), last_seen=now())
    chrome.refresh_from_db()
    assert chrome.exposed_devices == 1
    Exposure.objects.all().delete()
    import_tvm_files(exposures=DATA / "mde_exposures.csv")
    assert exposure_counters_check(repair=False)["drifted"] == 0
    assert SecurityRecommendation.objects.get(external_id="va-_-google-_-chrome").exposed_devices > 0


@pytest.mark.django_db
def test_a_table_holding_more_rows_than_the_snapshot_adds_is_written_as_usual(bulk_from_one_row, tmp_path):
    inventory()
    import_tvm_files(exposures=DATA / "mde_exposures.csv")
    lines = (DATA / "mde_exposures.csv").read_text().splitlines()
    machine = next(d.machine_id for d in Device.objects.order_by("pk") if f"scid-2010,{d.machine_id}" not in lines)
    one_more = tmp_path / "exposures.csv"
    one_more.write_text("\n".join([*lines, f"scid-2010,{machine}"]) + "\n")

    with CaptureQueriesContext(connection) as queries:
        summary = import_tvm_files(exposures=one_more)

    assert summary["exposures"]["created"] == 1
    assert "LOCK TABLE" not in statements(queries)  # readers were never locked out


def _import_in_a_thread(**files) -> tuple[threading.Thread, list]:
    outcome: list = []

    def run():
        try:
            outcome.append(import_tvm_files(**files))
        except Exception as exc:  # noqa: BLE001 - reported by the assertions
            outcome.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _reader():
    params = connection.get_connection_params()
    return psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"})


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_reader_holding_the_table_is_not_locked_out(bulk_from_one_row, monkeypatch):
    monkeypatch.setattr(bulk, "LOCK_WAIT", "50ms")
    before = indexes()
    inventory()
    with _reader() as reader:
        reader.execute(f"SELECT COUNT(*) FROM {TABLE}")  # noqa: S608 - open transaction: the table's share lock
        importer, outcome = _import_in_a_thread(exposures=DATA / "mde_exposures.csv")
        importer.join(20)
        # The import finished while the reader still held the table (waiting for it would never end).
        assert not importer.is_alive()
    importer.join()
    assert outcome[0]["exposures"]["created"] == Exposure.objects.count() == 15
    assert indexes() == before


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_rebuild_given_up_leaves_readers_free(bulk_from_one_row, monkeypatch):
    inventory()
    real = bulk._definitions

    def one_refused(cursor, table):  # a drop the database refuses, after the lock was granted
        return [*real(cursor, table), ("DROP INDEX no_such_index", "no_such_index", None, None)]

    monkeypatch.setattr(bulk, "_definitions", one_refused)
    with transaction.atomic():
        summary = import_tvm_files(exposures=DATA / "mde_exposures.csv")
        # Still inside the import's transaction: another session reads the table at once.
        with _reader() as reader:
            reader.execute("SET lock_timeout = '2s'")
            assert reader.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0] == 0  # noqa: S608 - not committed yet
    assert summary["exposures"]["created"] == Exposure.objects.count() == 15


DEVICES = Device._meta.db_table


@pytest.mark.django_db
def test_a_first_import_of_machines_builds_the_device_tables_indexes_after_them(bulk_from_one_row):
    before = indexes(DEVICES)

    with CaptureQueriesContext(connection) as queries:
        inventory()

    assert "DROP CONSTRAINT recommendations_device_machine_id_key" in statements(queries)  # the bulk path ran
    # Its group key too, checked after the rows and back as it was (deferred, by its own name).
    assert "DROP CONSTRAINT recommendations_devi_device_group_id" in statements(queries)
    assert indexes(DEVICES) == before
    assert Device.objects.count() == 8
    assert Device.objects.get(computer_dns_name="srv-sql-01.corp.contoso.com").device_group.name == "Servers"
    device = Device.objects.first()
    with pytest.raises(IntegrityError), transaction.atomic():  # a machine id is still one device
        Device.objects.create(machine_id=device.machine_id, device_group=device.device_group)
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    with pytest.raises(IntegrityError), transaction.atomic():  # and its group must exist
        Device.objects.filter(pk=device.pk).update(device_group_id=10**9)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # stored by someone else: committed
def test_a_device_stored_since_the_machines_were_read_sends_them_the_ordinary_way(bulk_from_one_row, monkeypatch):
    import recommendations.services.imports as imports
    from tests.recommendations.factories import DeviceFactory, DeviceGroupFactory

    before = indexes(DEVICES)
    copy_devices_ahead = imports.new_devices_copied_ahead
    first = json.loads((DATA / "mde_machines.json").read_text())["value"][0]

    @contextmanager
    def store_one_meanwhile(rows):  # after the new devices were copied, before the transaction
        with copy_devices_ahead(rows):
            DeviceFactory(machine_id=first["id"], computer_dns_name="someone-else", device_group=DeviceGroupFactory())
            yield

    monkeypatch.setattr(imports, "new_devices_copied_ahead", store_one_meanwhile)
    with CaptureQueriesContext(connection) as queries:
        import_tvm_files(machines=DATA / "mde_machines.json")

    assert "DROP CONSTRAINT recommendations_device_machine_id_key" in statements(queries)  # tried, then refused
    assert Device.objects.count() == 8
    assert Device.objects.get(machine_id=first["id"]).computer_dns_name == first["computerDnsName"]
    assert indexes(DEVICES) == before


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_sessions_holding_device_groups_do_not_keep_a_first_import_waiting(bulk_from_one_row, monkeypatch):
    from recommendations.models import DeviceGroup

    DeviceGroup.objects.create(name="Servers", description="")
    DeviceGroup.objects.create(name="Design", description="")
    monkeypatch.setattr(bulk, "LOCK_WAIT", "50ms")
    before = indexes(DEVICES)
    rebuilt, real = [], bulk._definitions
    monkeypatch.setattr(bulk, "_definitions", lambda cursor, table: rebuilt.append(table) or real(cursor, table))
    dropped, drop = [], bulk._drop_foreign_keys
    monkeypatch.setattr(
        bulk, "_drop_foreign_keys", lambda cursor, table: dropped.append(drop(cursor, table)) or dropped[-1]
    )
    with _reader() as writer, _reader() as reader:
        writer.execute("UPDATE recommendations_devicegroup SET description = 'edited' WHERE name = 'Servers'")
        reader.execute("SELECT COUNT(*) FROM recommendations_devicegroup")  # an open transaction that read them
        importer, outcome = _import_in_a_thread(machines=DATA / "mde_machines.json")
        importer.join(20)
        # Done while both still hold the groups: dropping the device table's group key would wait
        # for them, so the key stayed and checked each row.
        assert not importer.is_alive()
    assert rebuilt == [DEVICES]  # the device table's indexes were built after its rows
    assert dropped == [[]]  # and its group key was left in place
    assert outcome[0]["devices"]["created"] == Device.objects.count() == 8
    assert indexes(DEVICES) == before


@pytest.mark.django_db
def test_a_row_the_dropped_foreign_key_would_refuse_is_refused_when_it_comes_back(bulk_from_one_row):
    from tests.recommendations.factories import DeviceGroupFactory

    group = DeviceGroupFactory()
    before = indexes(DEVICES)
    built = []

    def insert_one_good_and_one_bad():
        with transaction.atomic(), connection.cursor() as cursor:
            with bulk.indexes_built_after(cursor, DEVICES, rows=2, foreign_keys=True) as bulk_path:
                built.append(bulk_path)
                Device.objects.create(machine_id="a" * 40, device_group=group)
                Device.objects.create(machine_id="b" * 40, device_group_id=10**9)  # no such group

    with pytest.raises(IntegrityError):
        insert_one_good_and_one_bad()
    assert built == [True]
    assert not Device.objects.exists()
    assert indexes(DEVICES) == before
