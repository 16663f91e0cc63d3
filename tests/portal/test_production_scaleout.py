"""End to end, as the README tells an operator: gunicorn (4 workers, production settings), a
Celery worker and beat on PostgreSQL and Redis serve the admin and the API, and a worker killed
and started again loses no queued job. Runs bench/loadtest_scaleout.py (about a minute) on a
database and a Redis database of its own; needs PostgreSQL and REDIS_URL, like CI."""

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")

pytestmark = [
    pytest.mark.worker,
    pytest.mark.skipif(
        not (DATABASE_URL.startswith(("postgres://", "postgresql://")) and REDIS_URL),
        reason="needs PostgreSQL (DATABASE_URL) and REDIS_URL",
    ),
]


def test_plain_commands_serve_admin_and_api_and_a_killed_worker_loses_no_job():
    database = urlparse(DATABASE_URL)
    own_database = database._replace(path=f"{database.path}_scaleout").geturl()
    own_redis = urlparse(REDIS_URL)._replace(path="/15").geturl()  # a Redis database of its own
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE",)}
    result = subprocess.run(  # noqa: S603
        [
            sys.executable,
            "bench/loadtest_scaleout.py",
            "--database-url",
            own_database,
            "--redis-url",
            own_redis,
            "--workers",
            "4",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for step in (
        "ok   /healthz 200",
        "ok   gunicorn runs 4 workers",
        "ok   admin sign-in (secure cookie)",
        "ok   activity changelist 200",
        "ok   API activities list 200 with a token",
        "ok   5 jobs wait in Redis while no worker runs",
        "ok   the restarted worker ran all 5 queued jobs",
    ):
        assert step in output, output
