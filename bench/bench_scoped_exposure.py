"""Benchmark (run by hand): recommendation lists for a scoped IT user and for a superuser.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_h LOG_LEVEL=WARNING \
        .venv/bin/python bench/bench_scoped_exposure.py --repeat 5

Expects a database already loaded with `seed_demo --devices N` (users `it` and `admin`).
Times the admin changelist of security recommendations and the API's recommendation list
(Django test client, force_login, warm: the first request is not counted) and prints the
median, min and max in milliseconds and the number of SQL queries of one request.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.local")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")

PAGES = ["/admin/recommendations/securityrecommendation/", "/api/v1/recommendations/"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--users", default="it,admin")
    args = parser.parse_args()

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from recommendations.models import Exposure

    print(f"exposures: {Exposure.objects.count():,}")
    for username in args.users.split(","):
        user = get_user_model().objects.get(username=username)
        client = Client()
        client.force_login(user)
        for page in PAGES:
            response = client.get(page)  # warm
            assert response.status_code == 200, (page, response.status_code)
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                with CaptureQueriesContext(connection) as queries:
                    response = client.get(page)
                times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200
            print(
                f"{username:6} {page:50} median {statistics.median(times):8.1f} ms"
                f"  min {min(times):8.1f}  max {max(times):8.1f}  queries {len(queries)}"
            )


if __name__ == "__main__":
    main()
