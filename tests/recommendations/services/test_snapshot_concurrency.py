"""A device deleted while an import of it runs, and two imports at once (PostgreSQL, threads on
the test database).

Exposures hold no database foreign keys: the import and the delete take the snapshot lock in the
same order, so the delete waits for the import and then takes the device's exposures with it;
neither fails, and no exposure is left pointing at a deleted device. An import reads and checks
its files before it takes the lock: a long read keeps no other import waiting.
"""

import json
import threading
import time

import pytest
from django.conf import settings
from django.db import connection

import recommendations.services.imports as imports
from recommendations.models import Device, Exposure
from recommendations.services import import_tvm_files
from recommendations.services.edits import devices_delete
from tests.recommendations.factories import RecommendationFactory

pytestmark = [
    pytest.mark.skipif(
        settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql", reason="needs PostgreSQL"
    ),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_a_device_deleted_during_its_import_waits_and_leaves_no_exposure(tmp_path, monkeypatch):
    RecommendationFactory(external_id="va-_-x-_-y")
    import_tvm_files(machines=_machines(tmp_path, "old name"))
    device = Device.objects.get(machine_id="a" * 40)
    upserted, errors = threading.Event(), []
    real_upsert = imports.devices_upsert

    def upsert_then_pause(**kwargs):  # the import holds the device's row now; let the delete start
        counts = real_upsert(**kwargs)
        upserted.set()
        time.sleep(0.5)
        return counts

    monkeypatch.setattr(imports, "devices_upsert", upsert_then_pause)

    def run(work):
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    pairs = tmp_path / "exposures.csv"
    pairs.write_text(f"recommendationId,machineId\nva-_-x-_-y,{'a' * 40}\n")
    importer = threading.Thread(
        target=run, args=(lambda: import_tvm_files(machines=_machines(tmp_path, "new name"), exposures=pairs),)
    )
    importer.start()
    assert upserted.wait(30)
    deleter = threading.Thread(target=run, args=(lambda: devices_delete(user=None, devices=[device]),))
    deleter.start()
    importer.join(60)
    deleter.join(60)

    assert errors == []
    assert not Device.objects.filter(pk=device.pk).exists()
    assert not Exposure.objects.filter(device_id=device.pk).exists()


def test_another_import_runs_to_its_end_while_an_import_reads_its_files(tmp_path, monkeypatch):
    RecommendationFactory(external_id="va-_-x-_-y")
    import_tvm_files(machines=_machines(tmp_path, "old name"))
    pairs = tmp_path / "exposures.csv"
    pairs.write_text(f"recommendationId,machineId\nva-_-x-_-y,{'a' * 40}\n")
    errors, finished = [], []
    real_check = imports.check_device_records

    def other_import():  # a snapshot of its own, which would give up after 2 s waiting for a lock
        try:
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = '2s'")
            finished.append(import_tvm_files(exposures=pairs)["created"])
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    def read_while_another_import_runs(**kwargs):  # the first import is reading its machines file
        other = threading.Thread(target=other_import)
        other.start()
        other.join(60)
        return real_check(**kwargs)

    monkeypatch.setattr(imports, "check_device_records", read_while_another_import_runs)
    summary = import_tvm_files(machines=_machines(tmp_path, "new name"), exposures=pairs)

    assert errors == []
    assert finished == [1]  # the other import created the exposure while this one was reading
    assert summary["exposures"]["updated"] == 1
    assert Device.objects.get(machine_id="a" * 40).computer_dns_name == "new name"
    assert Exposure.objects.filter(device__machine_id="a" * 40, remediated_at=None).count() == 1


def _machines(tmp_path, name: str):
    path = tmp_path / f"machines-{name.replace(' ', '-')}.json"
    path.write_text(json.dumps({"value": [{"id": "a" * 40, "computerDnsName": name}]}))
    return path
