"""Benchmark (run by hand): the purge and the auto-completion refresh at scale.

    createdb -h 127.0.0.1 -U postgres bench_jobs   # once; the script migrates it
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_jobs .venv/bin/python bench/bench_jobs.py

purge:   ACTIVITIES (3,000) activities with DEVICES_EACH (333) devices each (about 1,000,000
         activity devices) completed 200 days ago, plus 100 completed 179 days ago and 100
         active ones. Runs `manage.py purge_completed_activities` in a subprocess while this
         process measures, every 100 ms, the latency of a read (the first page of the
         activity list) and a write (an UPDATE of an active activity), i.e. whether the portal
         stays responsive. Prints wall time, rows deleted, the largest DELETE and the worst
         latencies, and checks that nothing young or active was touched.
refresh: one activity targeting REFRESH_DEVICES (100,000) devices; all their exposures are
         remediated, then the refresh runs (100,000 exposure changes); then 10% are exposed
         again and it runs again.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.local")


def setup() -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def make_devices(count: int, group_name: str):
    from recommendations.models import Device, DeviceGroup

    group, _ = DeviceGroup.objects.get_or_create(name=group_name)
    tag = uuid.uuid4().hex[:8]
    return Device.objects.bulk_create(
        [
            Device(machine_id=f"{tag}{i:032x}", computer_dns_name=f"{group_name}-{tag}-{i}", device_group=group)
            for i in range(count)
        ],
        batch_size=10_000,
    )


def make_activities(*, count: int, devices: list, per_activity: int, completed_days_ago: int | None):
    from django.utils import timezone

    from recommendations.models import SecurityRecommendation
    from remediation.models import ActivityDevice, ActivityEvent, RemediationActivity

    rec = SecurityRecommendation.objects.create(external_id=f"bench-{uuid.uuid4().hex}", name="Bench recommendation")
    completed_at = None if completed_days_ago is None else timezone.now() - dt.timedelta(days=completed_days_ago)
    activities = RemediationActivity.objects.bulk_create(
        [
            RemediationActivity(
                recommendation=rec,
                title=f"Bench {n}",
                remediation_option="software_update",
                category="software",
                priority="low",
                status="active" if completed_at is None else "completed",
                completion_method="" if completed_at is None else "manual",
                completed_at=completed_at,
                due_on=timezone.localdate() + dt.timedelta(days=30),
                target_devices=per_activity,
            )
            for n in range(count)
        ],
        batch_size=1000,
    )
    rows = []
    for n, activity in enumerate(activities):
        start = (n * per_activity) % max(1, len(devices) - per_activity)
        rows.extend(ActivityDevice(activity=activity, device=d) for d in devices[start : start + per_activity])
        if len(rows) >= 50_000:
            ActivityDevice.objects.bulk_create(rows, batch_size=10_000)
            rows = []
    ActivityDevice.objects.bulk_create(rows, batch_size=10_000)
    ActivityEvent.objects.bulk_create(
        [
            ActivityEvent(activity=a, kind=k, actor_label="bench@example.com")
            for a in activities
            for k in ("created", "approved", "completed")
        ],
        batch_size=10_000,
    )
    return [a.pk for a in activities]


def probe(stop: threading.Event, active_id, read_ms: list, write_ms: list) -> None:
    from django.db import connection

    from remediation.models import RemediationActivity

    while not stop.is_set():
        t0 = time.perf_counter()
        list(RemediationActivity.objects.filter(status="active").order_by("-created_at")[:50])
        t1 = time.perf_counter()
        RemediationActivity.objects.filter(pk=active_id).update(it_notes=f"probe {t1}")
        t2 = time.perf_counter()
        read_ms.append((t1 - t0) * 1000)
        write_ms.append((t2 - t1) * 1000)
        time.sleep(0.1)
    connection.close()


def bench_purge(args) -> None:
    from django.db import connection

    from remediation.models import ActivityDevice, RemediationActivity

    print(f"purge: creating {args.activities} x {args.devices_each} activity devices ...", flush=True)
    t0 = time.perf_counter()
    devices = make_devices(args.device_pool, "Bench purge")
    old = make_activities(
        count=args.activities, devices=devices, per_activity=args.devices_each, completed_days_ago=200
    )
    young = make_activities(count=100, devices=devices, per_activity=50, completed_days_ago=179)
    active = make_activities(count=100, devices=devices, per_activity=50, completed_days_ago=None)
    total = ActivityDevice.objects.filter(activity_id__in=old).count()
    print(f"  created {total} old activity devices in {time.perf_counter() - t0:.0f}s", flush=True)
    connection.close()

    read_ms: list[float] = []
    write_ms: list[float] = []
    stop = threading.Event()
    thread = threading.Thread(target=probe, args=(stop, active[0], read_ms, write_ms))
    thread.start()
    t0 = time.perf_counter()
    out = subprocess.run(  # noqa: S603
        [sys.executable, str(ROOT / "manage.py"), "purge_completed_activities"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    elapsed = time.perf_counter() - t0
    stop.set()
    thread.join()
    print("  " + out.stdout.strip())
    print(
        f"  wall time {elapsed:.1f}s ({total / elapsed:,.0f} activity devices/s), "
        f"batch size {os.environ.get('PURGE_BATCH_SIZE', 2000)}"
    )
    print(
        f"  portal probe during the purge ({len(read_ms)} samples): read p50 {statistics.median(read_ms):.1f} ms, "
        f"max {max(read_ms):.1f} ms; write p50 {statistics.median(write_ms):.1f} ms, max {max(write_ms):.1f} ms"
    )
    left_old = RemediationActivity.objects.filter(pk__in=old).count()
    kept_young = RemediationActivity.objects.filter(pk__in=young).count()
    kept_active = RemediationActivity.objects.filter(pk__in=active).count()
    kept_devices = ActivityDevice.objects.filter(activity_id__in=young + active).count()
    print(
        f"  old left: {left_old}; young kept: {kept_young}/100; active kept: {kept_active}/100; "
        f"their devices kept: {kept_devices}/10000"
    )
    assert (left_old, kept_young, kept_active, kept_devices) == (0, 100, 100, 10_000)


def bench_refresh(args) -> None:
    from django.utils import timezone

    from recommendations.models import Exposure
    from remediation.models import RemediationActivity
    from remediation.services import activities_refresh_progress

    n = args.refresh_devices
    print(f"refresh: one activity over {n} devices ...", flush=True)
    devices = make_devices(n, "Bench refresh")
    [activity_id] = make_activities(count=1, devices=devices, per_activity=n, completed_days_ago=None)
    activity = RemediationActivity.objects.get(pk=activity_id)
    now = timezone.now()
    Exposure.objects.bulk_create(
        [
            Exposure(recommendation_id=activity.recommendation_id, device=d, first_seen=now, last_seen=now)
            for d in devices
        ],
        batch_size=10_000,
    )
    Exposure.objects.filter(recommendation_id=activity.recommendation_id).update(remediated_at=now)
    t0 = time.perf_counter()
    result = activities_refresh_progress(recommendation_ids=[activity.recommendation_id])
    print(f"  {n} exposures remediated: {time.perf_counter() - t0:.1f}s -> {result}")
    # The run completed the activity; reopen it to measure the reverse direction (10% re-exposed).
    RemediationActivity.objects.filter(pk=activity_id).update(
        status="active", completed_at=None, completion_method="", completer_email=""
    )
    tenth = [d.pk for d in devices[: n // 10]]
    Exposure.objects.filter(recommendation_id=activity.recommendation_id, device_id__in=tenth).update(
        remediated_at=None
    )
    t0 = time.perf_counter()
    result = activities_refresh_progress(recommendation_ids=[activity.recommendation_id])
    print(f"  {len(tenth)} exposed again: {time.perf_counter() - t0:.1f}s -> {result}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--activities", type=int, default=3000)
    parser.add_argument("--devices-each", type=int, default=333)
    parser.add_argument("--device-pool", type=int, default=20_000)
    parser.add_argument("--refresh-devices", type=int, default=100_000)
    parser.add_argument("--only", choices=["purge", "refresh"])
    args = parser.parse_args()
    setup()
    if args.only in (None, "purge"):
        bench_purge(args)
    if args.only in (None, "refresh"):
        bench_refresh(args)


if __name__ == "__main__":
    main()
