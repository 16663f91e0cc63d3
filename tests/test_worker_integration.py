"""Jobs through a real broker and a real Celery worker (REDIS_URL and PostgreSQL required).

Each test starts `celery -A portal worker` in a subprocess on the pytest database (the worker
sees the rows this process commits, hence `transaction=True`), on a queue of its own, and
sends tasks to it through Redis. Some tests kill the worker with SIGKILL half-way through a
job and start another one, to check that the unacknowledged message is delivered again and
that the job then finishes without half-applied state or duplicate emails.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.mail.backends.base import BaseEmailBackend
from django.db import connection
from django.utils import timezone

from portal.celery import app
from portal.locks import job_lock
from recommendations.models import Device, Exposure
from remediation import tasks
from remediation.models import ActivityDevice, ActivityNotification, RemediationActivity
from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, UserFactory
from tests.remediation.factories import make_activity

ROOT = Path(__file__).resolve().parent.parent
CELERY = Path(sys.executable).with_name("celery")
# The worker's job time limit (so its job locks expire after it) and the broker's visibility
# timeout, shortened so a killed worker's message comes back within the test.
JOB_TIME_LIMIT = 8
VISIBILITY_TIMEOUT = 10

pytestmark = [
    pytest.mark.worker,
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (a real broker)"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


class SlowFileBackend(BaseEmailBackend):
    """Used by the worker: 'delivers' each message by appending it to a file, slowly."""

    def send_messages(self, email_messages):
        for message in email_messages:
            time.sleep(float(os.environ.get("PORTAL_TEST_MAIL_DELAY", "0")))
            with open(os.environ["PORTAL_TEST_MAIL_FILE"], "a") as fh:
                fh.write(json.dumps({"subject": message.subject, "to": message.to}) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        return len(email_messages)


def _database_url() -> str:
    db = settings.DATABASES["default"]  # pytest-django has switched NAME to the test database
    user = quote(db.get("USER") or "")
    password = f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


class Worker:
    def __init__(self, tmp_path: Path, queue: str, extra_env: dict[str, str]):
        self.tmp_path, self.queue, self.extra_env = tmp_path, queue, extra_env
        self.mail_file = tmp_path / "mail.jsonl"
        self.mail_file.touch()
        self.runs = 0
        self.proc: subprocess.Popen | None = None
        self.log: Path | None = None

    def start(self) -> None:
        self.runs += 1
        self.log = self.tmp_path / f"worker-{self.runs}.log"
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "portal.settings.local",
            "DJANGO_DEBUG": "0",
            "DATABASE_URL": _database_url(),
            "CELERY_TASK_TIME_LIMIT": str(JOB_TIME_LIMIT),
            "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
            "DJANGO_EMAIL_BACKEND": f"{__name__}.SlowFileBackend",
            "PORTAL_TEST_MAIL_FILE": str(self.mail_file),
            "PYTHONPATH": str(ROOT),
            **self.extra_env,
        }
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(  # noqa: S603
                [
                    str(CELERY),
                    "-A",
                    "portal",
                    "worker",
                    "--pool=solo",
                    "--loglevel=INFO",
                    "-Q",
                    self.queue,
                    "-n",
                    f"{self.queue}-{self.runs}@%h",
                    "--without-mingle",
                    "--without-gossip",
                    "--without-heartbeat",
                ],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.wait_for_log("ready.", timeout=60)

    def text(self) -> str:
        return self.log.read_text() if self.log else ""

    def wait_for_log(self, needle: str, *, timeout: float = 60) -> None:
        wait_until(lambda: needle in self.text(), timeout=timeout, what=f"'{needle}' in the worker log", worker=self)

    def send(self, task, *args) -> str:
        """Queue `task` through the broker (this process otherwise runs tasks in-process)."""
        eager = app.conf.task_always_eager
        app.conf.task_always_eager = False
        try:
            return task.apply_async(args=args, queue=self.queue).id
        finally:
            app.conf.task_always_eager = eager

    def wait_for_task(self, task_id: str, *, timeout: float = 60) -> None:
        self.wait_for_log(f"[{task_id}] succeeded", timeout=timeout)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def mails(self) -> list[dict]:
        return [json.loads(line) for line in self.mail_file.read_text().splitlines() if line.strip()]


def wait_until(condition, *, timeout: float, what: str, worker: Worker | None = None, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if worker is not None and worker.proc is not None and worker.proc.poll() is not None:
            break
        time.sleep(interval)
    log = worker.text()[-4000:] if worker else ""
    pytest.fail(f"Timed out waiting for {what}.\n--- worker log ---\n{log}")


@pytest.fixture
def start_worker(tmp_path):
    if connection.vendor == "sqlite":
        pytest.skip("the worker test needs a database another process can reach (PostgreSQL)")
    workers: list[Worker] = []

    def start(**extra_env: str) -> Worker:
        worker = Worker(tmp_path, f"portal-test-{uuid.uuid4().hex[:10]}", extra_env)
        workers.append(worker)
        worker.start()
        return worker

    yield start
    for worker in workers:  # before pytest-django flushes the tables
        worker.stop()


@pytest.fixture
def requester():
    # Another transactional test may have flushed the roles of the data migration: a superuser
    # and the IT staff group made here do not depend on them.
    return UserFactory(username="requester", email="requester@example.com", is_superuser=True)


@pytest.fixture
def it_person():
    team = Group.objects.create(name="Server team")
    DeviceGroupFactory(name="Servers").user_groups.add(team)
    person = UserFactory(username="it-person", email="it@example.com")
    person.groups.add(Group.objects.get_or_create(name="IT staff")[0], team)
    return person


def old_completed_activities(*, count: int, devices_each: int, days_ago: int = 200) -> list:
    """Completed activities with many device rows, created in bulk (no per-row factories)."""
    group = DeviceGroupFactory(name="Bulk group")
    tag = uuid.uuid4().hex[:8]
    devices = Device.objects.bulk_create(
        [
            Device(machine_id=f"{tag}{i:032x}", computer_dns_name=f"bulk-{tag}-{i}", device_group=group)
            for i in range(devices_each)
        ]
    )
    completed_at = timezone.now() - dt.timedelta(days=days_ago)
    activities = RemediationActivity.objects.bulk_create(
        [
            RemediationActivity(
                recommendation=RecommendationFactory(),
                title=f"Old {n}",
                remediation_option="software_update",
                category="software",
                priority="low",
                status="completed",
                completion_method="manual",
                completer_email="it@example.com",
                completed_at=completed_at,
                target_devices=devices_each,
            )
            for n in range(count)
        ]
    )
    ActivityDevice.objects.bulk_create(
        [ActivityDevice(activity=a, device=d) for a in activities for d in devices], batch_size=5000
    )
    return [a.pk for a in activities]


def test_jobs_queued_through_the_broker_change_the_database(start_worker, requester, it_person):
    to_complete = make_activity(user=requester, devices=3)
    Exposure.objects.filter(recommendation=to_complete.recommendation).update(remediated_at=timezone.now())
    due_soon = make_activity(user=requester, devices=1)
    RemediationActivity.objects.filter(pk=due_soon.pk).update(due_on=timezone.localdate() + dt.timedelta(days=1))
    old = old_completed_activities(count=2, devices_each=5)
    young = old_completed_activities(count=1, devices_each=5, days_ago=179)
    worker = start_worker()

    for task_id in (
        worker.send(tasks.refresh_activity_progress, [to_complete.recommendation_id]),
        worker.send(tasks.purge_completed_activities),
        worker.send(tasks.notify_due_activities),
    ):
        worker.wait_for_task(task_id)

    to_complete.refresh_from_db()
    assert (to_complete.status, to_complete.completed_by_label) == ("completed", "System confirmation")
    assert to_complete.events.filter(kind="completed", actor_label="System").count() == 1
    assert not RemediationActivity.objects.filter(pk__in=old).exists()
    assert RemediationActivity.objects.filter(pk__in=young).count() == 1
    assert ActivityNotification.objects.filter(activity=due_soon, kind="due_soon").exists()
    assert [m["to"] for m in worker.mails() if m["subject"].startswith("Remediation activity due on")] == [
        ["it@example.com"]
    ]


def test_a_job_whose_lock_is_held_elsewhere_exits_quietly(start_worker):
    old = old_completed_activities(count=1, devices_each=3)
    worker = start_worker()

    with job_lock("purge_completed_activities"):  # held by this process, in Redis
        worker.wait_for_task(worker.send(tasks.purge_completed_activities))
        assert RemediationActivity.objects.filter(pk__in=old).count() == 1

    worker.wait_for_task(worker.send(tasks.purge_completed_activities))
    assert not RemediationActivity.objects.filter(pk__in=old).exists()


def test_a_worker_killed_mid_purge_leaves_consistent_rows_and_the_job_is_redelivered(start_worker):
    old = old_completed_activities(count=30, devices_each=500)
    young = old_completed_activities(count=2, devices_each=50, days_ago=100)
    total = ActivityDevice.objects.filter(activity_id__in=old).count()
    worker = start_worker(PURGE_BATCH_SIZE="10")

    queued_at = time.monotonic()
    worker.send(tasks.purge_completed_activities)
    wait_until(
        lambda: ActivityDevice.objects.filter(activity_id__in=old).count() < total * 0.9,
        timeout=60,
        what="the purge to be under way",
        worker=worker,
    )
    worker.kill()

    left = ActivityDevice.objects.filter(activity_id__in=old).count()
    assert 0 < left < total, "the kill should land in the middle of the purge"
    # Whatever was committed is consistent: the young activities are whole, nothing else changed.
    assert ActivityDevice.objects.filter(activity_id__in=young).count() == 100
    assert RemediationActivity.objects.filter(pk__in=young).count() == 2

    # A new worker started after the visibility timeout gets the unacknowledged message again.
    time.sleep(max(0.0, VISIBILITY_TIMEOUT + 1 - (time.monotonic() - queued_at)))
    worker.start()
    wait_until(
        lambda: not RemediationActivity.objects.filter(pk__in=old).exists(),
        timeout=120,
        what="the redelivered purge to finish",
        worker=worker,
    )
    assert not ActivityDevice.objects.filter(activity_id__in=old).exists()
    assert ActivityDevice.objects.filter(activity_id__in=young).count() == 100
    assert "remediation.purge_completed_activities" in worker.text()


def test_a_worker_killed_mid_notifications_sends_no_email_twice(start_worker, requester, it_person):
    due = []
    for _ in range(12):
        activity = make_activity(user=requester, devices=1)
        due.append(activity.pk)
    RemediationActivity.objects.filter(pk__in=due).update(due_on=timezone.localdate() + dt.timedelta(days=2))
    worker = start_worker(PORTAL_TEST_MAIL_DELAY="0.4")

    queued_at = time.monotonic()
    worker.send(tasks.notify_due_activities)
    wait_until(lambda: len(worker.mails()) >= 3, timeout=60, what="some reminders to go out", worker=worker)
    worker.kill()
    assert len(worker.mails()) < 12

    time.sleep(max(0.0, VISIBILITY_TIMEOUT + 1 - (time.monotonic() - queued_at)))
    worker.start()
    wait_until(
        lambda: (
            ActivityNotification.objects.filter(activity_id__in=due, kind="due_soon").count() == 12
            and "remediation.notify_due_activities" in worker.text()
            and "succeeded" in worker.text()
        ),
        timeout=120,
        what="the redelivered job to finish",
        worker=worker,
    )
    subjects = [m["subject"] for m in worker.mails() if m["subject"].startswith("Remediation activity due on")]
    assert len(subjects) == len(set(subjects)), "an activity was reminded twice"
    # At most the one email in flight when the worker died is lost; every other one went out.
    assert len(subjects) >= 11
