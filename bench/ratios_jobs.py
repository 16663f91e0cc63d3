"""The jobs measured by bench/ratios.py, each in a child process (its own peak memory):

    DATABASE_URL=... python bench/ratios_jobs.py purge-ours|purge-raw|purge-setup
    DATABASE_URL=... python bench/ratios_jobs.py import-ours DIR | import-copy DIR | import-reset
    DATABASE_URL=... python bench/ratios_jobs.py intune

Each prints one JSON line last: seconds, the longest transaction (ms) and peak RSS (MB).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PURGE_ACTIVITIES = 1000
PURGE_DEVICES_EACH = 1000
RAW_BATCH = 50_000


def setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.local")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


class Transactions:
    """The longest transaction: outermost atomic blocks (until their COMMIT or ROLLBACK), and statements
    run in autocommit."""

    def __init__(self):
        from django.db import connection, transaction

        self.longest = 0.0
        self.count = 0
        self._connection = connection
        started: list[float] = []
        enter, leave = transaction.Atomic.__enter__, transaction.Atomic.__exit__
        timer = self

        def __enter__(atomic):  # noqa: N807
            if not connection.in_atomic_block:
                started.append(time.perf_counter())
            return enter(atomic)

        def __exit__(atomic, *exc):  # noqa: N807
            mark = len(ended)
            result = leave(atomic, *exc)
            if not connection.in_atomic_block and started:
                # Until its own COMMIT (or ROLLBACK) returned, the first one stamped after `mark`:
                # on_commit callbacks run after it, in no transaction (or in transactions of their own).
                timer.add((ended[mark] if len(ended) > mark else time.perf_counter()) - started.pop())
            return result

        ended: list[float] = []
        commit, rollback = connection.commit, connection.rollback

        def stamped(end):
            def call(*args, **kwargs):
                try:
                    return end(*args, **kwargs)
                finally:
                    ended.append(time.perf_counter())

            return call

        connection.commit, connection.rollback = stamped(commit), stamped(rollback)
        transaction.Atomic.__enter__, transaction.Atomic.__exit__ = __enter__, __exit__
        connection.execute_wrappers.append(self._statement)

    def add(self, seconds: float) -> None:
        self.longest = max(self.longest, seconds)
        self.count += 1

    def _statement(self, execute, sql, params, many, context):
        if self._connection.in_atomic_block:
            return execute(sql, params, many, context)
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.add(time.perf_counter() - t0)


def report(seconds: float, transactions: Transactions | None = None, **extra) -> None:
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"seconds": round(seconds, 3), "peak_mb": round(peak_mb, 1), **extra}
    if transactions is not None:
        out["longest_transaction_ms"] = round(transactions.longest * 1000, 1)
        out["transactions"] = transactions.count
    print(json.dumps(out), flush=True)


# --- purge -----------------------------------------------------------------------------------
def purge_setup() -> None:
    """1,000 activities completed 200 days ago with 1,000 devices each (1,000,000 rows)."""
    from django.db import connection

    t0 = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            """CREATE TEMP TABLE purge_act AS SELECT n, gen_random_uuid() AS id
            FROM generate_series(0, %s - 1) n""",
            [PURGE_ACTIVITIES],
        )
        cursor.execute(
            """INSERT INTO remediation_remediationactivity (id, recommendation_id, title, description,
            remediation_option, category, priority, due_on, requester_notes, created_by_id, requester_email,
            created_at, status, ticket_status, it_notes, completion_method, completed_by_id, completer_email,
            completed_at, create_intune_task, target_devices, fixed_devices)
            SELECT a.id, (SELECT min(id) FROM recommendations_securityrecommendation), 'Purge bench ' || a.n, '',
            'software_update', 'software', 'low', NULL, '', NULL, '', now() - interval '300 days', 'completed',
            'approved', '', 'manual', NULL, 'sec@example.com', now() - interval '200 days', false, %s, 0
            FROM purge_act a""",
            [PURGE_DEVICES_EACH],
        )
        cursor.execute(
            """INSERT INTO remediation_activitydevice (activity_id, device_id, status, remediated_at,
            sent_to_intune, device_name)
            SELECT a.id, d, 'exposed', NULL, false, 'purge'
            FROM purge_act a, (SELECT min(id) AS first, count(*) AS total FROM recommendations_device) b,
            generate_series(b.first + a.n * 997 %% (b.total - %s), b.first + a.n * 997 %% (b.total - %s) + %s - 1) d""",
            [PURGE_DEVICES_EACH, PURGE_DEVICES_EACH, PURGE_DEVICES_EACH],
        )
        cursor.execute(
            """INSERT INTO remediation_activityevent (activity_id, kind, actor_id, actor_label, notes, at)
            SELECT id, k, NULL, 'sec@example.com', '', now() - interval '200 days'
            FROM purge_act, unnest(ARRAY['created', 'approved', 'completed']) k"""
        )
        cursor.execute(
            """INSERT INTO remediation_activitynotification (activity_id, kind, sent_at, recipients)
            SELECT id, 'new_request', now() - interval '300 days', 1 FROM purge_act"""
        )
        cursor.execute("DROP TABLE purge_act")
        cursor.execute("ANALYZE remediation_activitydevice")
        cursor.execute("ANALYZE remediation_remediationactivity")
        settle(cursor)
    report(time.perf_counter() - t0)


def settle(cursor, wait: float = 120.0) -> None:
    """Start each measured side from the same state: no autovacuum still working through an earlier
    phase's writes (up to `wait` seconds), and those writes flushed (a checkpoint)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        cursor.execute("SELECT COUNT(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'")
        if not cursor.fetchone()[0]:
            break
        time.sleep(0.5)
    cursor.execute("CHECKPOINT")


def purge_ours() -> None:
    from remediation.services import purge_completed_activities

    timer = Transactions()
    t0 = time.perf_counter()
    counts = purge_completed_activities()
    report(time.perf_counter() - t0, timer, activities=counts["activities"], devices=counts["devices"])


def purge_raw() -> None:
    """The floor: by hand, `DELETE ... WHERE activity_id = ANY(...)` of 50,000 rows a transaction,
    then the activities' other rows 500 activities a transaction."""
    from django.db import connection, transaction

    timer = Transactions()
    t0 = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT array_agg(id) FROM remediation_remediationactivity WHERE status = 'completed'"
            " AND completed_at <= now() - interval '180 days'"
        )
        ids = cursor.fetchone()[0] or []
        devices = 0
        per_batch = max(1, RAW_BATCH // PURGE_DEVICES_EACH)  # 50 activities: 50,000 rows a statement
        for start in range(0, len(ids), per_batch):
            chunk = ids[start : start + per_batch]
            with transaction.atomic():
                cursor.execute("DELETE FROM remediation_activitydevice WHERE activity_id = ANY(%s)", [chunk])
                devices += cursor.rowcount
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            with transaction.atomic():
                for table, column in (
                    ("remediation_activityevent", "activity_id"),
                    ("remediation_activitynotification", "activity_id"),
                    ("intune_intunetask", "activity_id"),
                    ("remediation_remediationactivity_device_groups", "remediationactivity_id"),
                    ("remediation_remediationactivity", "id"),
                ):
                    cursor.execute(f"DELETE FROM {table} WHERE {column} = ANY(%s)", [chunk])  # noqa: S608
    report(time.perf_counter() - t0, timer, activities=len(ids), devices=devices)


# --- import ----------------------------------------------------------------------------------
def import_files(directory: Path) -> dict:
    from bench.bench_import import generate

    names = {"recommendations": "recommendations.json", "machines": "machines.json", "first": "exposures.csv"}
    paths = {k: directory / v for k, v in names.items()}
    if not all(p.exists() for p in paths.values()):
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            made = generate(Path(tmp), devices=100_000, recommendations=1000, per_device=10)
            for key in names:
                made[key].rename(paths[key])
    return paths


def import_reset() -> None:
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0, interactive=False)
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE remediation_activitydevice, remediation_activityevent, remediation_activitynotification,"
            " intune_intunetask, remediation_remediationactivity_device_groups, remediation_remediationactivity,"
            " recommendations_exposure, recommendations_recommendationgroupexposure, recommendations_device,"
            " recommendations_securityrecommendation CASCADE"
        )
        cursor.execute("DROP TABLE IF EXISTS bench_pairs")
        settle(cursor)
    report(0.0)


def import_ours(directory: Path) -> None:
    from recommendations.services import import_tvm_files

    paths = import_files(directory)
    timer = Transactions()
    t0 = time.perf_counter()
    summary = import_tvm_files(
        recommendations=str(paths["recommendations"]), machines=str(paths["machines"]), exposures=str(paths["first"])
    )
    report(time.perf_counter() - t0, timer, created=summary.get("created"))


def import_copy(directory: Path) -> None:
    """The floor: COPY the exposure file's pairs into a bare table."""
    from django.db import connection

    paths = import_files(directory)
    with open(paths["first"], "rb") as fh:
        header = fh.readline().decode().strip().split(",")
    t0 = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_pairs")
        columns = ", ".join(f'"{h}" text' for h in header)
        cursor.execute(f"CREATE TABLE bench_pairs ({columns})")
        with cursor.cursor.copy("COPY bench_pairs FROM STDIN (FORMAT csv, HEADER true)") as copy:
            with open(paths["first"], "rb") as fh:
                while block := fh.read(1 << 20):
                    copy.write(block)
        cursor.execute("SELECT count(*) FROM bench_pairs")
        rows = cursor.fetchone()[0]
    seconds = time.perf_counter() - t0
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE bench_pairs")
    report(seconds, rows=rows)


# --- intune ----------------------------------------------------------------------------------
def intune() -> None:
    """One push of an activity of 10,000 devices to the Graph fake of the tests: which requests."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection

    from intune.graph import clear_token_cache
    from intune.models import IntuneTask
    from intune.services import intune_connection_set, intune_push
    from tests.intune.graph_fake import CLIENT_ID, CLIENT_SECRET, TENANT, GraphFake

    with tempfile.TemporaryDirectory() as tmp:
        fake = GraphFake(Path(tmp)).start()
        os.environ["REQUESTS_CA_BUNDLE"] = str(fake.ca_path)
        settings.INTUNE_TENANT_ID, settings.INTUNE_CLIENT_ID = TENANT, CLIENT_ID
        settings.INTUNE_CLIENT_SECRET = CLIENT_SECRET
        settings.INTUNE_AUTHORITY_URL, settings.INTUNE_GRAPH_URL = fake.base_url, fake.graph_url
        clear_token_cache()
        user, _ = get_user_model().objects.get_or_create(
            username="bench-admin", defaults={"is_superuser": True, "is_staff": True, "email": "admin@example.com"}
        )
        intune_connection_set(user=user, enabled=True)
        with connection.cursor() as cursor:  # an activity of the data set with 10,000 devices
            cursor.execute(
                """SELECT ad.activity_id FROM remediation_activitydevice ad
                JOIN remediation_remediationactivity a ON a.id = ad.activity_id
                WHERE a.target_devices = 1000000 LIMIT 1"""
            )
            big = cursor.fetchone()[0]
            cursor.execute(
                """INSERT INTO remediation_remediationactivity (id, recommendation_id, title, description,
                remediation_option, category, priority, due_on, requester_notes, created_by_id, requester_email,
                created_at, status, ticket_status, it_notes, completion_method, completed_by_id, completer_email,
                completed_at, create_intune_task, target_devices, fixed_devices)
                SELECT gen_random_uuid(), recommendation_id, 'Intune bench', '', remediation_option, category,
                priority, due_on, '', NULL, 'sec@example.com', now(), 'active', 'pending', '', '', NULL, '', NULL,
                true, 10000, 0 FROM remediation_remediationactivity WHERE id = %s RETURNING id""",
                [big],
            )
            activity_id = cursor.fetchone()[0]
            cursor.execute(
                """INSERT INTO remediation_activitydevice (activity_id, device_id, status, sent_to_intune, device_name)
                SELECT %s, device_id, 'exposed', false, device_name FROM remediation_activitydevice
                WHERE activity_id = %s ORDER BY device_id LIMIT 10000""",
                [activity_id, big],
            )
        try:
            t0 = time.perf_counter()
            task = intune_push(activity_id=activity_id)
            seconds = time.perf_counter() - t0
            calls = [(r.method, r.path) for r in fake.requests]
            lookups = len(fake.device_lookups)
            other = [c for c in calls if "/managedDevices" not in c[1]]
            report(
                seconds,
                requests=len(other),
                requests_seen=[f"{m} {p}" for m, p in other],
                managed_device_lookups=lookups,
                devices_sent=task.devices_sent if task else 0,
            )
        finally:
            fake.stop()
            with connection.cursor() as cursor:
                IntuneTask.objects.filter(activity_id=activity_id).delete()
                for table in ("remediation_activityevent", "remediation_activitydevice"):
                    cursor.execute(f"DELETE FROM {table} WHERE activity_id = %s", [activity_id])  # noqa: S608
                cursor.execute("DELETE FROM remediation_remediationactivity WHERE id = %s", [activity_id])
            intune_connection_set(user=user, enabled=False)


if __name__ == "__main__":
    setup()
    job = sys.argv[1]
    jobs = {
        "purge-setup": purge_setup,
        "purge-ours": purge_ours,
        "purge-raw": purge_raw,
        "import-reset": import_reset,
        "intune": intune,
    }
    if job in jobs:
        jobs[job]()
    elif job == "import-ours":
        import_ours(Path(sys.argv[2]))
    elif job == "import-copy":
        import_copy(Path(sys.argv[2]))
    else:
        sys.exit(f"unknown job {job}")
