"""Benchmark (run by hand): the Defender-compatible read API on a large inventory.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_defender \
        .venv/bin/python bench/bench_defender_api.py --devices 100000

Migrates the database named in DATABASE_URL, loads `seed_demo --devices N`, files one request that
targets every device (a recommendation exposed everywhere), then times, with the Django test client
(warm, median of --repeat), as the demo superuser and as the IT user scoped to two device groups:
the first and the last page of `/api/machines?$top=10000` (following `@odata.nextLink`), the task
list, the first page of the big task's `machineReferences`, and the recommendations list.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.local")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import override_settings
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from recommendations.models import Device, DeviceGroup, Exposure, SecurityRecommendation
    from recommendations.services import recommendations_refresh_exposed_devices
    from remediation.models import RemediationActivity
    from remediation.services import activity_create

    call_command("migrate", verbosity=0)
    call_command("seed_demo", devices=args.devices, verbosity=0, stdout=open(os.devnull, "w"))  # noqa: SIM115
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
    big = RemediationActivity.objects.filter(recommendation=rec).first()
    if big is None:
        with override_settings(EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend"):
            big = activity_create(
                user=User.objects.get(username="security"),
                recommendation=rec,
                remediation_option="software_update",
                priority="high",
                due_on=timezone.localdate() + dt.timedelta(days=30),
                device_groups=list(DeviceGroup.objects.all()),
            )

    def timed(client, url) -> tuple[float, dict]:
        started = time.perf_counter()
        response = client.get(url)
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, response.content[:300]
        return elapsed, response.json()

    def median(client, url) -> str:
        timed(client, url)  # warm
        return f"{statistics.median(timed(client, url)[0] for _ in range(args.repeat)):.0f} ms"

    print(f"{connection.vendor}, {Device.objects.count():,} devices, {big.target_devices:,} in the big task")
    for username in ("admin", "it"):
        client = Client(
            HTTP_AUTHORIZATION="Bearer " + Token.objects.get_or_create(user=User.objects.get(username=username))[0].key
        )
        url, pages, last_url = "/api/machines?$top=10000", 0, None
        while url:
            _, body = timed(client, url)
            pages, last_url, url = pages + 1, url, body.get("@odata.nextLink")
        print(f"  {username}: machines page 1 of {pages}: {median(client, '/api/machines?$top=10000')}")
        print(f"  {username}: machines page {pages} of {pages}: {median(client, last_url)}")
        print(f"  {username}: remediationTasks: {median(client, '/api/remediationTasks')}")
        refs = f"/api/remediationTasks/{big.pk}/machineReferences?$top=10000"
        print(f"  {username}: big task machineReferences, page 1: {median(client, refs)}")
        print(f"  {username}: recommendations: {median(client, '/api/recommendations')}")


if __name__ == "__main__":
    main()
