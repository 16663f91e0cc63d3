"""A first import builds the exposure and device tables' indexes after their rows (PostgreSQL).

What a user must not notice: the pairs, the counters and the uniqueness of a pair are exactly
as after an ordinary import, and a device still needs a real group; a file with a repeated pair
is still refused with its line and leaves nothing behind (indexes included); and a reader
holding the table is never locked out: the import then inserts as usual. The threshold is
lowered so that the small sample qualifies.
"""

from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from recommendations.imports.records import ImportRejected
from recommendations.models import Device, DeviceGroup, Exposure, SecurityRecommendation
from recommendations.services import bulk, import_tvm_files

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
def test_a_first_import_stores_the_same_pairs_counters_and_indexes(bulk_from_one_row):
    before = indexes()
    inventory()

    with CaptureQueriesContext(connection) as queries:
        summary = import_tvm_files(exposures=DATA / "mde_exposures.csv")

    assert "DROP CONSTRAINT" in statements(queries)  # the bulk path ran
    assert summary["exposures"]["created"] == Exposure.objects.count() == 15
    assert indexes() == before
    chrome = SecurityRecommendation.objects.get(external_id="va-_-google-_-chrome")
    assert chrome.exposed_devices == Exposure.objects.filter(recommendation=chrome).count() > 0
    # A pair is still one exposure.
    pair = Exposure.objects.first()
    with pytest.raises(IntegrityError), transaction.atomic():
        Exposure.objects.create(
            recommendation_id=pair.recommendation_id,
            device_id=pair.device_id,
            first_seen=pair.first_seen,
            last_seen=pair.last_seen,
        )


@pytest.mark.django_db
def test_a_repeated_pair_is_still_refused_with_its_line_and_leaves_the_indexes(bulk_from_one_row, tmp_path):
    before = indexes()
    inventory()
    lines = (DATA / "mde_exposures.csv").read_text().splitlines()
    repeated = tmp_path / "exposures.csv"
    repeated.write_text("\n".join([*lines, lines[1]]) + "\n")

    with pytest.raises(ImportRejected) as rejected:
        import_tvm_files(exposures=repeated)

    assert f"line {len(lines) + 1}" in str(rejected.value)
    assert "duplicate pair" in str(rejected.value)
    assert Exposure.objects.count() == 0
    assert indexes() == before


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


@pytest.mark.django_db(transaction=True)
def test_a_reader_holding_the_table_is_not_locked_out(bulk_from_one_row, monkeypatch, request):
    monkeypatch.setattr(bulk, "LOCK_WAIT", "50ms")
    before = indexes()
    inventory()
    with connection.cursor() as cursor:  # were the import to wait for the reader, it would fail, not hang
        cursor.execute("SET lock_timeout = '5s'")
    request.addfinalizer(lambda: connection.cursor().execute("RESET lock_timeout"))
    params = connection.get_connection_params()
    with psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"}) as reader:
        reader.execute(f"SELECT COUNT(*) FROM {TABLE}")  # noqa: S608 - open transaction: the table's share lock
        summary = import_tvm_files(exposures=DATA / "mde_exposures.csv")
        # The import committed while the reader still held the table.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(*) FROM pg_locks WHERE pid = %s AND relation = %s::regclass AND granted",
                [reader.info.backend_pid, TABLE],
            )
            assert cursor.fetchone()[0] == 1
    assert summary["exposures"]["created"] == Exposure.objects.count() == 15
    assert indexes() == before


@pytest.mark.django_db
def test_a_first_import_of_devices_keeps_their_constraints(bulk_from_one_row):
    devices = Device._meta.db_table
    before = indexes(devices)

    with CaptureQueriesContext(connection) as queries:
        summary = import_tvm_files(machines=DATA / "mde_machines.json")

    assert "DROP CONSTRAINT" in statements(queries)  # the bulk path ran
    assert summary["devices"]["created"] == Device.objects.count() > 0
    assert indexes(devices) == before
    device = Device.objects.first()
    # A device still needs a real device group and its own machine id.
    missing_group = DeviceGroup.objects.order_by("-pk")[0].pk + 1
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        with pytest.raises(IntegrityError), transaction.atomic():
            Device.objects.filter(pk=device.pk).update(device_group_id=missing_group)
    with pytest.raises(IntegrityError), transaction.atomic():
        Device.objects.create(machine_id=device.machine_id, device_group=device.device_group)


@pytest.mark.django_db
def test_devices_imported_after_other_writes_of_the_transaction_are_written_as_usual(bulk_from_one_row):
    devices = Device._meta.db_table
    before = indexes(devices)
    with transaction.atomic():  # a device written first: its group check waits for the commit
        Device.objects.create(machine_id="f" * 40, device_group=DeviceGroup.objects.create(name="Earlier"))
        summary = import_tvm_files(machines=DATA / "mde_machines.json")

    assert Device.objects.count() == summary["devices"]["created"] + 1
    assert indexes(devices) == before
