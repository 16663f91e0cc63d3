"""Concurrent requests (DESIGN.md section 4): identical requests never both succeed, and an
exception filed while an activity is being created is never bypassed. On SQLite (the `make run`
default, a file database in a child process) and on PostgreSQL (threads on the test database)."""

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from recommendations.services import exception_create
from remediation.models import RemediationActivity
from remediation.services import activity_create
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, UserFactory, expose

ROOT = Path(__file__).resolve().parents[3]
ON_POSTGRESQL = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
NEXT_WEEK = timezone.localdate() + dt.timedelta(days=7)


def test_eight_identical_requests_at_once_make_one_activity_on_sqlite(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'portal.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "portal.settings.test",
    }
    env.pop("REDIS_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "tests.remediation.services.concurrent_requests", "8"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # One filed, seven told it is a duplicate; none "database is locked" (500).
    assert result == {"statuses": [201] + [409] * 7, "activities": 1}


needs_postgresql = pytest.mark.skipif(not ON_POSTGRESQL, reason="needs PostgreSQL (DATABASE_URL)")


@pytest.fixture
def requester():
    """Files requests and exceptions. A superuser, so that the test needs none of the rows the data
    migrations create (an earlier transactional test may have flushed them)."""
    return UserFactory(username="requester", email="requester@example.com", is_superuser=True)


@needs_postgresql
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_eight_identical_requests_at_once_make_one_activity_on_postgresql(requester):
    rec = RecommendationFactory(external_id="va-_-contoso-_-widget")
    expose(rec, DeviceGroupFactory(name="Servers"), 3)
    body = {
        "recommendation": rec.external_id,
        "remediation_option": "software_update",
        "priority": "high",
        "due_on": NEXT_WEEK.isoformat(),
        "device_groups": ["Servers"],
    }
    barrier = threading.Barrier(8)
    statuses = []

    def post():
        client = APIClient()
        client.force_authenticate(requester)
        barrier.wait()
        try:
            statuses.append(client.post("/api/v1/remediation-activities/", body, format="json").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [201] + [409] * 7
    assert RemediationActivity.objects.count() == 1


def _waiting_for_a_lock(timeout: float = 30.0) -> bool:
    """True once another session waits for a lock (polled, bounded): the request queued behind ours."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
            if cursor.fetchone()[0]:
                return True
            time.sleep(0.05)
    return False


@needs_postgresql
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_activity_filed_while_an_exception_is_being_filed_skips_the_covered_devices(requester):
    rec = RecommendationFactory()
    servers, laptops = DeviceGroupFactory(name="Servers"), DeviceGroupFactory(name="Laptops")
    expose(rec, servers, 3)
    expose(rec, laptops, 2)
    outcome = {}

    def file_request():
        try:
            outcome["activity"] = activity_create(
                user=requester,
                recommendation=rec,
                remediation_option="software_update",
                priority="high",
                due_on=NEXT_WEEK,
                device_groups=[servers, laptops],
            )
        except Exception as exc:  # shown by the assertion below
            outcome["error"] = exc
        finally:
            connection.close()

    with transaction.atomic():
        exception_create(
            user=requester,
            recommendation=rec,
            justification="third_party_control",
            context="Blocked at the firewall.",
            expires_on=NEXT_WEEK,
            scope="device_groups",
            device_groups=[servers],
        )
        filer = threading.Thread(target=file_request)
        filer.start()
        # The request must wait for the exception's transaction (the same recommendation lock).
        assert _waiting_for_a_lock(), f"activity_create did not wait for the exception: {outcome}"
    filer.join(timeout=60)

    activity = outcome["activity"]
    assert activity.target_devices == 2
    assert set(activity.devices.values_list("device__device_group__name", flat=True)) == {"Laptops"}
