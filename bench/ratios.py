"""Cost that does not grow with the work: every ratio of issue 16, side by side, in one run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/wt16 REDIS_URL=redis://127.0.0.1:6379/6 \\
        .venv/bin/python bench/ratios.py

Builds (or reuses) the data set of bench/ratios_data.py in DATABASE_URL (`big`: 1,000,000
devices, 10,000 activities, 4,100,155 activity devices, one activity of 1,000,000 devices) and
in `<name>_small` on the same server (100 activities), plus `<name>_import` for the import;
serves each with gunicorn and the production settings; then measures every row in interleaved
pairs (A then B, B then A, ...) and takes the median of the pairs' ratios:

- devices_csv_1m_vs_copy: COPY (the same query) TO STDOUT / GET devices.csv of the 1M activity
- activities_csv_10k_vs_copy: COPY of the same rows / GET export.csv of the 10,000 activities
- devices_page_1m_vs_1k: GET devices/ (first page), 1M-device activity / 775-device activity
- activity_page_1m_vs_1k: the admin activity page, the same two
- list_ordered_priority_10k_vs_100: GET ?ordering=priority and ?ordering=progress, 10,000 / 100
  activities (the larger of the two)
- list_scoped_10k_vs_100: an IT user's API list and admin changelist, 10,000 / 100 (the larger)
- purge_vs_raw_delete: batched raw DELETEs / purge_completed_activities, 1,000 activities with
  1,000,000 devices
- import_1m_vs_copy: COPY of the exposure pairs into a bare table / import_tvm_files of
  1,000,000 exposures over 100,000 machines
- intune_push_requests: token and task requests of one push of 10,000 devices (managed-device
  look-ups not counted)

Writes bench/ratios.json and the tables in bench/RESULTS.md and README.md (--no-write: neither).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PASSWORD = "bench-password-2026"  # noqa: S105 - the bench accounts of bench/ratios_data.py

GOALS = {
    "devices_csv_1m_vs_copy": (">=", 0.5),
    "activities_csv_10k_vs_copy": (">=", 0.5),
    "devices_page_1m_vs_1k": ("<=", 1.2),
    "activity_page_1m_vs_1k": ("<=", 1.2),
    "list_ordered_priority_10k_vs_100": ("<=", 1.2),
    "list_scoped_10k_vs_100": ("<=", 1.2),
    "purge_vs_raw_delete": (">=", 0.5),
    "import_1m_vs_copy": (">=", 0.25),
    "intune_push_requests": ("<=", 2),
}
LABELS = {
    "devices_csv_1m_vs_copy": "`devices.csv` of one activity, 1M rows, vs `COPY (same query) TO STDOUT`",
    "activities_csv_10k_vs_copy": "`export.csv`, 10,000 activities, vs COPY",
    "devices_page_1m_vs_1k": "`devices/` first page, 1M-device activity vs 775-device activity",
    "activity_page_1m_vs_1k": "admin activity page, 1M-device activity vs 775-device activity",
    "list_ordered_priority_10k_vs_100": "list `?ordering=priority` / `progress`, 10,000 vs 100 activities",
    "list_scoped_10k_vs_100": "list and changelist for a scoped IT user, 10,000 vs 100 activities",
    "purge_vs_raw_delete": "purge of 1,000 activities / 1M devices vs raw batched `DELETE`",
    "import_1m_vs_copy": "`import_tvm` of 1M exposures over 100k machines vs `COPY` of the pairs",
    "intune_push_requests": "Intune push of 10,000 devices: token and task requests",
}


def with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def ensure_database(url: str) -> None:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(with_db(url, "postgres"), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def child(env: dict, *args: str, capture: bool = True) -> str:
    result = subprocess.run(  # noqa: S603
        [PYTHON, *args], cwd=ROOT, env=env, check=True, text=True, capture_output=capture
    )
    return result.stdout if capture else ""


def job(env: dict, *args: str) -> dict:
    out = child(env, "bench/ratios_jobs.py", *args)
    return json.loads(out.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """gunicorn with the production settings on one database."""

    def __init__(self, env: dict, workers: int):
        self.port = free_port()
        self.process = subprocess.Popen(  # noqa: S603
            [str(Path(PYTHON).parent / "gunicorn"), "--config", "gunicorn.conf.py", "--workers", str(workers)]
            + ["--bind", f"127.0.0.1:{self.port}", "--timeout", "600"],
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _, _ = self.get("/healthz")
                if status < 500:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                sys.exit("gunicorn did not start")
            time.sleep(0.3)
        self.conn = None

    def connection(self) -> http.client.HTTPConnection:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        return self.conn

    def get(self, path: str, headers: dict | None = None, *, method="GET", body=None, keep=False):
        conn = self.connection() if keep else http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        base = {"Host": "127.0.0.1", "X-Forwarded-Proto": "https"}
        conn.request(method, path, body=body, headers={**base, **(headers or {})})
        response = conn.getresponse()
        size = 0
        first = b""
        while block := response.read(1 << 16):
            if not first:
                first = block[:4096]
            size += len(block)
        if not keep:
            conn.close()
        return response.status, response, (first, size)

    def timed(self, path: str, headers: dict, repeat: int = 1) -> float:
        """The fastest of `repeat` requests (the others lost time to other work on the machine)."""
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            status, _, (first, size) = self.get(path, headers, keep=True)
            best = min(best, time.perf_counter() - t0)
            if status != 200:
                raise RuntimeError(f"{path} answered {status}: {first[:300]!r}")
        return best

    def login(self, username: str) -> dict:
        """An admin session: the login form, as a browser fills it."""
        status, response, (page, _) = self.get("/admin/login/")
        cookies = dict(re.findall(r"(__Host-csrftoken)=([^;]+)", response.getheader("Set-Cookie") or ""))
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()
        form = urlencode({"username": username, "password": PASSWORD, "csrfmiddlewaretoken": token, "next": "/admin/"})
        headers = {
            "Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()),
            "Content-Type": "application/x-www-form-urlencoded",
            "Origin": "https://127.0.0.1",
            "Referer": "https://127.0.0.1/admin/login/",
        }
        status, response, _ = self.get("/admin/login/", headers, method="POST", body=form)
        set_cookie = response.getheader("Set-Cookie") or ""
        session = re.search(r"(__Host-sessionid)=([^;]+)", set_cookie)
        if status != 302 or session is None:
            sys.exit(f"admin login of {username} failed ({status})")
        cookies[session.group(1)] = session.group(2)
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}

    def worker_pids(self) -> list[int]:
        command = ["ps", "-o", "pid=", "--ppid", str(self.process.pid)]
        out = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603, S607
        return [int(p) for p in out.stdout.split()]

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGKILL)


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class PeakRSS:
    """The largest RSS of the server's workers while a block runs (and their RSS before it)."""

    def __init__(self, server: Server):
        self.server = server

    def __enter__(self):
        self.pids = self.server.worker_pids()
        self.before = max(rss_mb(p) for p in self.pids)
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, *(rss_mb(p) for p in self.pids))

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def pairs(n: int, a, b) -> list[tuple[float, float]]:
    """n pairs of (a time, b time), alternating which goes first."""
    out = []
    for i in range(n):
        if i % 2 == 0:
            ta = a()
            tb = b()
        else:
            tb = b()
            ta = a()
        out.append((ta, tb))
    return out


def summary(measured: list[tuple[float, float]], *, invert: bool) -> dict:
    """Median of the pairs' ratios: b/a when `invert` (floor / ours), else a/b (big / small)."""
    ratios = [(tb / ta) if invert else (ta / tb) for ta, tb in measured]
    return {
        "ratio": round(statistics.median(ratios), 3),
        "a_ms": round(statistics.median(t for t, _ in measured) * 1000, 1),
        "b_ms": round(statistics.median(t for _, t in measured) * 1000, 1),
        "pairs": len(measured),
    }


def copy_timer(url: str, query: str, params):
    import psycopg

    conn = psycopg.connect(url, autocommit=True)

    def run() -> float:
        t0 = time.perf_counter()
        with conn.cursor() as cursor, cursor.copy(f"COPY ({query}) TO STDOUT (FORMAT csv, HEADER true)", params) as cp:
            for _ in cp:
                pass
        return time.perf_counter() - t0

    return run


def scalar(url: str, query: str, params=None):
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query, params).fetchone()[0]


DEVICES_COPY = """SELECT d.machine_id, d.computer_dns_name, d.os_platform, g.name, ad.status, ad.remediated_at,
ad.sent_to_intune FROM remediation_activitydevice ad JOIN recommendations_device d ON d.id = ad.device_id
JOIN recommendations_devicegroup g ON g.id = d.device_group_id WHERE ad.activity_id = %s
ORDER BY ad.device_name, ad.id"""
ACTIVITIES_COPY = """SELECT a.title, a.status, a.priority, a.remediation_option,
(SELECT string_agg(g.name, ', ' ORDER BY g.name) FROM remediation_remediationactivity_device_groups l
JOIN recommendations_devicegroup g ON g.id = l.devicegroup_id WHERE l.remediationactivity_id = a.id),
a.requester_email, a.created_at, a.due_on, a.ticket_status, a.completer_email, a.completed_at,
a.target_devices, a.fixed_devices, a.progress_stored FROM remediation_remediationactivity a
ORDER BY a.created_at DESC, a.id DESC"""


def main() -> None:  # noqa: PLR0915 - one run, in order
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/6"))
    parser.add_argument("--pairs", type=int, default=9, help="pairs for the pages (fewer for the large ones)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--only-pages", action="store_true", help="skip the purge, import and Intune (implies --no-write)"
    )
    args = parser.parse_args()
    url = args.database_url
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit("DATABASE_URL must name a PostgreSQL database (your own, never `test`)")
    name = urlsplit(url).path.lstrip("/")
    if name == "test":
        sys.exit("not the shared `test` database")
    small_url, import_url = with_db(url, f"{name}_small"), with_db(url, f"{name}_import")
    for u in (url, small_url, import_url):
        ensure_database(u)
    base_env = {**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": args.redis_url, "LOG_LEVEL": "WARNING"}
    env = {**base_env, "DATABASE_URL": url}
    small_env = {**base_env, "DATABASE_URL": small_url}
    production = {
        "DJANGO_SETTINGS_MODULE": "portal.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    }
    # The purge, the import and the push run as in production too (no DEBUG query log).
    import_env = {**base_env, **production, "DATABASE_URL": import_url}
    started = time.perf_counter()
    child(env, "bench/ratios_data.py", "big", capture=False)
    child(small_env, "bench/ratios_data.py", "small", capture=False)

    serve = {
        **production,
        "API_THROTTLE_USER": "100000000/min",
        "LOGIN_THROTTLE_RATE": "100000/min",
        "WEB_CONCURRENCY": str(args.workers),
    }
    child({**env, **serve}, "manage.py", "collectstatic", "--noinput", "--verbosity", "0", capture=False)
    big_server = Server({**env, **serve}, args.workers)
    small_server = Server({**small_env, **serve}, args.workers)
    result: dict = {}
    reference: dict = {}
    try:
        token = {
            db: {
                user: scalar(
                    u,
                    "SELECT key FROM authtoken_token t JOIN auth_user u ON u.id = t.user_id WHERE u.username = %s",
                    [user],
                )
                for user in ("bench-security", "bench-it")
            }
            for db, u in (("big", url), ("small", small_url))
        }

        def api(db, user):
            return {"Authorization": f"Token {token[db][user]}", "Accept": "application/json"}

        big_id = scalar(url, "SELECT id FROM remediation_remediationactivity WHERE target_devices = 1000000")
        ref_id = scalar(url, "SELECT id FROM remediation_remediationactivity WHERE target_devices = 775")
        sec = api("big", "bench-security")
        api_base = "/api/v1/remediation-activities/"
        for path in (f"{api_base}{big_id}/devices/", f"{api_base}?ordering=priority"):  # warm both servers
            big_server.timed(path, sec)
        print(f"servers up ({time.perf_counter() - started:.0f} s since start); measuring", flush=True)

        # --- CSV ------------------------------------------------------------------------
        csv_headers = {**sec, "Accept": "text/csv"}
        copy_devices = copy_timer(url, DEVICES_COPY, [big_id])
        with PeakRSS(big_server) as mem:
            measured = pairs(3, lambda: big_server.timed(f"{api_base}{big_id}/devices.csv", csv_headers), copy_devices)
        result["devices_csv_1m_vs_copy"] = summary(measured, invert=True)
        reference["devices_csv_worker_rss_mb"] = {"before": round(mem.before), "peak": round(mem.peak)}
        print("devices.csv", result["devices_csv_1m_vs_copy"], reference["devices_csv_worker_rss_mb"], flush=True)

        copy_activities = copy_timer(url, ACTIVITIES_COPY, None)
        measured = pairs(
            args.pairs, lambda: big_server.timed(f"{api_base}export.csv", csv_headers, repeat=2), copy_activities
        )
        result["activities_csv_10k_vs_copy"] = summary(measured, invert=True)
        print("export.csv", result["activities_csv_10k_vs_copy"], flush=True)

        # --- device pages ------------------------------------------------------------------
        measured = pairs(
            args.pairs,
            lambda: big_server.timed(f"{api_base}{big_id}/devices/", sec),
            lambda: big_server.timed(f"{api_base}{ref_id}/devices/", sec),
        )
        result["devices_page_1m_vs_1k"] = summary(measured, invert=False)
        print("devices/", result["devices_page_1m_vs_1k"], flush=True)

        admin_sec = big_server.login("bench-security")
        page = "/admin/remediation/remediationactivity/{}/change/"
        measured = pairs(
            args.pairs,
            lambda: big_server.timed(page.format(big_id), admin_sec),
            lambda: big_server.timed(page.format(ref_id), admin_sec),
        )
        result["activity_page_1m_vs_1k"] = summary(measured, invert=False)
        print("activity page", result["activity_page_1m_vs_1k"], flush=True)

        # --- lists: 10,000 vs 100 activities ----------------------------------------------------
        ordered = {}
        for ordering in ("priority", "progress"):
            path = f"{api_base}?ordering={ordering}"
            small_server.timed(path, api("small", "bench-security"))
            ordered[ordering] = summary(
                pairs(
                    args.pairs,
                    lambda path=path: big_server.timed(path, sec, repeat=3),
                    lambda path=path: small_server.timed(path, api("small", "bench-security"), repeat=3),
                ),
                invert=False,
            )
        worst = max(ordered, key=lambda k: ordered[k]["ratio"])
        result["list_ordered_priority_10k_vs_100"] = {**ordered[worst], "worst_of": ordered}
        print("ordered lists", ordered, flush=True)

        scoped = {}
        it_big, it_small = api("big", "bench-it"), api("small", "bench-it")
        small_server.timed(api_base, it_small)
        scoped["api_list"] = summary(
            pairs(
                args.pairs,
                lambda: big_server.timed(api_base, it_big, repeat=3),
                lambda: small_server.timed(api_base, it_small, repeat=3),
            ),
            invert=False,
        )
        admin_it_big, admin_it_small = big_server.login("bench-it"), small_server.login("bench-it")
        changelist = "/admin/remediation/remediationactivity/"
        small_server.timed(changelist, admin_it_small)
        scoped["changelist"] = summary(
            pairs(
                args.pairs,
                lambda: big_server.timed(changelist, admin_it_big, repeat=3),
                lambda: small_server.timed(changelist, admin_it_small, repeat=3),
            ),
            invert=False,
        )
        worst = max(scoped, key=lambda k: scoped[k]["ratio"])
        result["list_scoped_10k_vs_100"] = {**scoped[worst], "worst_of": scoped}
        print("scoped lists", scoped, flush=True)
    finally:
        big_server.stop()
        small_server.stop()

    if args.only_pages:
        print(json.dumps(result, indent=2))
        return

    # --- purge ------------------------------------------------------------------------------
    purge = []
    for i in range(2):
        runs = {}
        for kind in ("ours", "raw") if i % 2 == 0 else ("raw", "ours"):
            job({**env, **production}, "purge-setup")
            runs[kind] = job({**env, **production}, f"purge-{kind}")
        purge.append(runs)
        print("purge", runs, flush=True)
    result["purge_vs_raw_delete"] = {
        **summary([(r["ours"]["seconds"], r["raw"]["seconds"]) for r in purge], invert=True),
        "longest_transaction_ms": max(r["ours"]["longest_transaction_ms"] for r in purge),
        "raw_longest_transaction_ms": max(r["raw"]["longest_transaction_ms"] for r in purge),
    }

    # --- import -----------------------------------------------------------------------------
    files = ROOT / "bench" / ".ratios-import"
    files.mkdir(exist_ok=True)
    imports = []
    for i in range(2):
        runs = {}
        for kind in ("ours", "copy") if i % 2 == 0 else ("copy", "ours"):
            job(import_env, "import-reset")
            runs[kind] = job(import_env, f"import-{kind}", str(files))
        imports.append(runs)
        print("import", runs, flush=True)
    result["import_1m_vs_copy"] = {
        **summary([(r["ours"]["seconds"], r["copy"]["seconds"]) for r in imports], invert=True),
        "longest_transaction_ms": max(r["ours"]["longest_transaction_ms"] for r in imports),
        "peak_mb": max(r["ours"]["peak_mb"] for r in imports),
    }

    # --- intune -----------------------------------------------------------------------------
    push = job(env, "intune")
    print("intune", push, flush=True)
    result["intune_push_requests"] = {"ratio": push["requests"], **push}

    out = {key: result[key]["ratio"] for key in GOALS}
    out["reference"] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "minutes": round((time.perf_counter() - started) / 60, 1),
        **{key: result[key] for key in GOALS},
        **reference,
    }
    text = json.dumps(out, indent=2)
    print(text)
    if not args.no_write:
        (ROOT / "bench" / "ratios.json").write_text(text + "\n")
        write_tables(out)


def table(out: dict) -> str:
    ref = out["reference"]
    lines = ["| what | measured | goal | met | ours (median) | other side (median) |", "|---|---|---|---|---|---|"]
    for key, (op, goal) in GOALS.items():
        value = out[key]
        met = value >= goal if op == ">=" else value <= goal
        row = ref[key]
        if key == "intune_push_requests":
            shown, a, b = f"{value}", " ".join(row["requests_seen"]), f"{row['managed_device_lookups']} look-ups"
        else:
            shown, a, b = f"{value}\u00d7", f"{row['a_ms']:,.0f} ms", f"{row['b_ms']:,.0f} ms"
        lines.append(f"| {LABELS[key]} | {shown} | {op} {goal} | {'yes' if met else '**no**'} | {a} | {b} |")
    return "\n".join(lines)


def write_tables(out: dict) -> None:
    ref = out["reference"]
    body = (
        "## Cost that does not grow with the work (bench/ratios.py)\n\n"
        f"{ref['date']}, {ref['machine']}, 1-minute load average {ref['load_average'][0]} at the end "
        f"(other engineers share the cores); the whole run took {ref['minutes']} minutes. Gunicorn with "
        "`portal.settings.production`, 2 workers, PostgreSQL on the same machine. Ratios are medians of "
        'interleaved pairs; "vs COPY" and "vs raw" are the floor\'s time / ours (higher is better), '
        '"1M vs 1k" and "10k vs 100" big / small (1.0 is flat). For the lists, the larger of the '
        "measured pair (priority or progress; API list or changelist). Every number is in `bench/ratios.json`.\n\n"
        + table(out)
        + "\n\n"
        f"Purge: our longest transaction {ref['purge_vs_raw_delete']['longest_transaction_ms']} ms. "
        f"Import: longest transaction {ref['import_1m_vs_copy']['longest_transaction_ms']} ms, peak RSS "
        f"{ref['import_1m_vs_copy']['peak_mb']} MB. devices.csv of 1M rows: gunicorn worker RSS "
        f"{ref['devices_csv_worker_rss_mb']['before']} MB before, {ref['devices_csv_worker_rss_mb']['peak']} MB "
        "at most during the downloads.\n\n"
        "Reproduce: `DATABASE_URL=postgres://postgres@127.0.0.1:5432/<your db> REDIS_URL=redis://127.0.0.1:6379/<n> "
        ".venv/bin/python bench/ratios.py` (builds the data set the first time, a few minutes; reuses it after).\n"
    )
    for path in (ROOT / "bench" / "RESULTS.md", ROOT / "README.md"):
        text = path.read_text()
        begin, end = "<!-- ratios:begin -->", "<!-- ratios:end -->"
        block = f"{begin}\n{body}{end}"
        if begin in text:
            text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _, block=block: block, text, flags=re.S)
        elif path.name == "RESULTS.md":
            text = text.replace("# Benchmark results\n", f"# Benchmark results\n\n{block}\n", 1)
        else:
            continue  # the README's place is marked by hand
        path.write_text(text)


if __name__ == "__main__":
    main()
