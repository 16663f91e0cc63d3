"""Run by test_activity_concurrency.py in a child process: N identical remediation requests at once.

On its own file-based SQLite database (the `make run` default), not the suite's in-memory one,
whose shared-cache locking is not SQLite's normal locking. Prints one JSON line: the statuses.

    DATABASE_URL=sqlite:////tmp/x.sqlite3 python -m tests.remediation.services.concurrent_requests 8
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import threading


def main(count: int) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.test")
    os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver"  # the test client's host
    import django

    django.setup()
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from remediation.models import RemediationActivity
    from tests.recommendations.factories import DeviceGroupFactory, RecommendationFactory, UserFactory, expose

    call_command("migrate", verbosity=0)
    user = UserFactory(username="sec", email="sec@example.com")
    user.groups.add(Group.objects.get(name="Security staff"))
    rec = RecommendationFactory(external_id="va-_-contoso-_-widget")
    expose(rec, DeviceGroupFactory(name="Servers"), 3)
    body = json.dumps(
        {
            "recommendation": rec.external_id,
            "remediation_option": "software_update",
            "priority": "high",
            "due_on": (timezone.localdate() + dt.timedelta(days=7)).isoformat(),
            "device_groups": ["Servers"],
        }
    )
    connection.close()

    barrier = threading.Barrier(count)
    statuses: list[int] = []

    def post() -> None:
        client = Client(raise_request_exception=False)  # a 500 is an answer too
        client.force_login(user)
        barrier.wait()
        response = client.post("/api/v1/remediation-activities/", body, content_type="application/json")
        statuses.append(response.status_code)
        connection.close()

    threads = [threading.Thread(target=post) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"statuses": sorted(statuses), "activities": RemediationActivity.objects.count()}))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8)
