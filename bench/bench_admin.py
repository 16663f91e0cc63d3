"""Benchmark (run by hand): admin pages and CSV export on a large inventory.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_admin \
        .venv/bin/python bench/bench_admin.py --devices 100000

Migrates the database named in DATABASE_URL, loads `seed_demo --devices N`, files one request
that targets every exposed device of a recommendation exposed everywhere, then times the
admin changelists and activity page (Django test client, warm) and streams the activity's
device CSV while measuring the Python heap peak (tracemalloc) and the process RSS.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.local")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import override_settings
    from django.utils import timezone

    from recommendations.models import Device, DeviceGroup, Exposure, SecurityRecommendation
    from recommendations.services import recommendations_refresh_exposed_devices
    from remediation.models import RemediationActivity
    from remediation.services import activity_create

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    call_command("seed_demo", devices=args.devices, verbosity=0, stdout=open(os.devnull, "w"))  # noqa: SIM115
    seed_seconds = time.perf_counter() - started

    rec, _ = SecurityRecommendation.objects.get_or_create(
        external_id="bench-_-everywhere", defaults={"name": "Update Benchmark Runtime", "vendor": "bench"}
    )
    missing = Device.objects.exclude(exposures__recommendation=rec).values_list("pk", flat=True)
    now = timezone.now()
    Exposure.objects.bulk_create(
        [Exposure(recommendation=rec, device_id=d, first_seen=now, last_seen=now) for d in missing.iterator()],
        batch_size=5000,
    )
    recommendations_refresh_exposed_devices(recommendation_ids=[rec.pk])
    User = get_user_model()
    security = User.objects.get(username="security")
    admin = User.objects.get(username="admin")
    activity = RemediationActivity.objects.filter(recommendation=rec).first()
    if activity is None:
        with override_settings(EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend"):
            activity = activity_create(
                user=security,
                recommendation=rec,
                remediation_option="software_update",
                priority="high",
                due_on=timezone.localdate() + dt.timedelta(days=30),
                device_groups=list(DeviceGroup.objects.all()),
            )
    pages = {
        "activities changelist": "/admin/remediation/remediationactivity/",
        "recommendations changelist": "/admin/recommendations/securityrecommendation/",
        "devices changelist": "/admin/recommendations/device/",
        f"activity page ({activity.target_devices} devices)": (
            f"/admin/remediation/remediationactivity/{activity.pk}/change/"
        ),
        "admin index (dashboard card)": "/admin/",
        "request form": f"/admin/recommendations/securityrecommendation/{rec.pk}/remediation-options/",
    }
    print(
        f"# {Device.objects.count()} devices, {Exposure.objects.count()} exposures, "
        f"{RemediationActivity.objects.count()} activities on {connection.vendor}; seed took {seed_seconds:.1f} s"
    )
    print("| page | user | median ms | max ms | status |")
    print("|---|---|---|---|---|")
    for username in ("admin", "it"):
        client = Client()
        client.force_login(User.objects.get(username=username))
        for label, url in pages.items():
            client.get(url)  # warm
            times, status = [], None
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - t0) * 1000)
                status = response.status_code
            print(f"| {label} | {username} | {statistics.median(times):.0f} | {max(times):.0f} | {status} |")

    client = Client()
    client.force_login(admin)
    url = f"/admin/remediation/remediationactivity/{activity.pk}/devices.csv"
    tracemalloc.start()
    t0 = time.perf_counter()
    response = client.get(url)
    size = lines = 0
    for chunk in response.streaming_content:
        size += len(chunk)
        lines += 1
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\nDevice CSV of {activity.target_devices} devices: {lines - 1} rows, {size / 1e6:.1f} MB in "
        f"{seconds:.1f} s; Python heap peak while streaming {peak / 1e6:.1f} MB; process max RSS {rss:.0f} MB "
        f"(status {response.status_code}, streaming={response.streaming})"
    )


if __name__ == "__main__":
    main()
