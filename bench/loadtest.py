"""Load test (run by hand): the activities list and detail endpoints of the REST API, served
by gunicorn with the production settings on PostgreSQL, at N concurrent clients for D seconds.

    .venv/bin/python bench/loadtest.py            # 20 clients, 60 s, bench_g database
    .venv/bin/python bench/loadtest.py --clients 20 --duration 60 --devices 2000 --workers 4 \
        --database-url postgres://postgres@127.0.0.1:5432/bench_g

It migrates and seeds the database named in --database-url (`seed_demo --devices N`, idempotent),
collects static files, starts gunicorn on a free loopback port, takes the API token of the
demo IT user (`create_api_token it`), then runs the clients: each one, in a loop, GETs either
`/api/v1/remediation-activities/` (one page) or `/api/v1/remediation-activities/{id}/` for a
random visible activity, over a keep-alive connection, with `Authorization: Token ...` and the
`X-Forwarded-Proto: https` header the TLS proxy would add. Loopback only; bounded by
--duration and --max-requests. Errors (any status but 200, and connection failures), the
median and the 99th-percentile latency go to bench/RESULTS.md (the section between the
loadtest markers is replaced) and the raw numbers to bench/out/loadtest.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
BEGIN, END = "<!-- loadtest:begin -->", "<!-- loadtest:end -->"
LIST_PATH = "/api/v1/remediation-activities/"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin_url = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(  # noqa: S603 - our interpreter and manage.py
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        sys.exit(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def request(conn: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--database-url", default=os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_g")
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("BENCH_REDIS_URL", ""), help="optional, e.g. redis://127.0.0.1:6379/7"
    )
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds")
    parser.add_argument("--max-requests", type=int, default=500_000, help="stop after this many requests in all")
    parser.add_argument("--devices", type=int, default=2000, help="seed_demo --devices")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "4")))
    parser.add_argument("--user", default="it", help="demo user whose token the clients use")
    parser.add_argument("--list-share", type=float, default=0.5, help="share of list requests (the rest: detail)")
    parser.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    args = parser.parse_args()
    if args.database_url.split("://")[0] not in ("postgres", "postgresql"):
        sys.exit("--database-url must be a PostgreSQL URL")

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "LOG_LEVEL": "WARNING",
        "API_THROTTLE_USER": "100000000/min",  # measure the portal, not the API rate limit
        "WEB_CONCURRENCY": str(args.workers),
    }
    print(f"database {args.database_url}: migrate, seed_demo --devices {args.devices}", flush=True)
    ensure_database(args.database_url)
    manage(env, "migrate", "--noinput", "--verbosity", "0")
    print(manage(env, "seed_demo", "--devices", str(args.devices)).strip().splitlines()[-1], flush=True)
    manage(env, "collectstatic", "--noinput", "--verbosity", "0")
    token = manage(env, "create_api_token", args.user).strip().splitlines()[-1]

    port = free_port()
    gunicorn = subprocess.Popen(  # noqa: S603
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "--config",
            "gunicorn.conf.py",
            "--workers",
            str(args.workers),
            "--bind",
            f"127.0.0.1:{port}",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        run(args, port, token)
    finally:
        os.killpg(gunicorn.pid, signal.SIGTERM)
        try:
            gunicorn.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(gunicorn.pid, signal.SIGKILL)


def run(args, port: int, token: str) -> None:
    headers = {
        "Authorization": f"Token {token}",
        "X-Forwarded-Proto": "https",
        "Host": "127.0.0.1",
        "Accept": "application/json",
    }
    deadline = time.monotonic() + 30
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            status, body = request(conn, LIST_PATH + "?page_size=100", headers)
            if status == 200:
                break
            sys.exit(f"the list answered {status}: {body[:300]!r}")
        except OSError:
            if time.monotonic() > deadline:
                sys.exit("gunicorn did not start")
            time.sleep(0.3)
    ids = [item["id"] for item in json.loads(body)["results"]]
    if not ids:
        sys.exit(f"user {args.user} sees no activity; seed_demo made none?")
    print(
        f"gunicorn on 127.0.0.1:{port}, {args.workers} workers; {len(ids)} activities; "
        f"{args.clients} clients for {args.duration:.0f} s",
        flush=True,
    )

    samples: dict[str, list[float]] = {"list": [], "detail": []}
    errors: dict[str, int] = {}
    lock = threading.Lock()
    budget = [args.max_requests]
    stop_at = time.monotonic() + args.duration

    def client(seed: int) -> None:
        rng = random.Random(seed)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        local = {"list": [], "detail": []}
        local_errors: dict[str, int] = {}
        while time.monotonic() < stop_at:
            with lock:
                if budget[0] <= 0:
                    break
                budget[0] -= 1
            kind = "list" if rng.random() < args.list_share else "detail"
            path = LIST_PATH if kind == "list" else f"{LIST_PATH}{rng.choice(ids)}/"
            started = time.perf_counter()
            try:
                status, _ = request(conn, path, headers)
            except (OSError, http.client.HTTPException) as exc:
                status = type(exc).__name__
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            elapsed = time.perf_counter() - started
            local[kind].append(elapsed)
            if status != 200:
                local_errors[str(status)] = local_errors.get(str(status), 0) + 1
        conn.close()
        with lock:
            for kind, values in local.items():
                samples[kind].extend(values)
            for key, count in local_errors.items():
                errors[key] = errors.get(key, 0) + count

    # One client alone first: the time a request takes when it never waits for a CPU.
    serial = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for n in range(100):
        path = LIST_PATH if n % 2 == 0 else f"{LIST_PATH}{ids[n % len(ids)]}/"
        started = time.perf_counter()
        request(conn, path, headers)
        serial.append(time.perf_counter() - started)
    conn.close()
    serial_median_ms = round(statistics.median(serial) * 1000, 1)

    load_before = os.getloadavg()[0]
    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started

    def summary(values: list[float]) -> dict[str, float]:
        if not values:
            return {"requests": 0}
        values = sorted(values)
        return {
            "requests": len(values),
            "median_ms": round(statistics.median(values) * 1000, 1),
            "p99_ms": round(values[min(len(values) - 1, int(len(values) * 0.99))] * 1000, 1),
            "max_ms": round(values[-1] * 1000, 1),
        }

    result = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
        "load_average_1min_before": round(load_before, 2),
        "serial_median_ms": serial_median_ms,
        "clients": args.clients,
        "duration_s": round(wall, 1),
        "workers": args.workers,
        "devices": args.devices,
        "user": args.user,
        "activities_visible": len(ids),
        "errors": sum(errors.values()),
        "errors_by_status": errors,
        "all": summary(samples["list"] + samples["detail"]),
        "list": summary(samples["list"]),
        "detail": summary(samples["detail"]),
    }
    result["throughput_rps"] = round(result["all"]["requests"] / wall, 1)
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "loadtest.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    if not args.no_write:
        write_results(result)


def write_results(r: dict) -> None:
    rows = "\n".join(
        f"| {name} | {r[name]['requests']} | {r[name].get('median_ms', '-')} | {r[name].get('p99_ms', '-')} "
        f"| {r[name].get('max_ms', '-')} |"
        for name in ("list", "detail", "all")
    )
    by_status = json.dumps(r["errors_by_status"]) if r["errors"] else ""
    queue_s = round(r["clients"] / r["throughput_rps"], 2) if r["throughput_rps"] else "-"
    repro = (
        f".venv/bin/python bench/loadtest.py --clients {r['clients']} --duration 60 "
        f"--devices {r['devices']} --workers {r['workers']}"
    )
    section = f"""{BEGIN}
## REST API under load: activities list and detail (bench/loadtest.py)

{r["date"]}, {r["machine"]}. Gunicorn with `portal.settings.production`, {r["workers"]} sync
workers, PostgreSQL on the same machine; `seed_demo --devices {r["devices"]}`; {r["clients"]} concurrent
keep-alive clients (threads in one process, on the same 2 cores as the server) for {r["duration_s"]} s,
1-minute load average before the run {r["load_average_1min_before"]}
(other processes on the machine share the cores); token of the demo `{r["user"]}` user
(device-group scoped: sees {r["activities_visible"]} activities).
Each request is `GET /api/v1/remediation-activities/` (first page) or `GET .../{{id}}/`, half and half.

**Errors: {r["errors"]}** {by_status} · throughput {r["throughput_rps"]} requests/s

A request alone (one client, 100 requests before the run) takes {r["serial_median_ms"]} ms (median).
With {r["clients"]} clients always waiting on an answer, the mean time per request is
{r["clients"]} / {r["throughput_rps"]} requests/s = {queue_s} s (Little's law): the rest is waiting for
one of the 2 shared cores. How far more cores or more web machines help was not measured here
(gunicorn workers share only PostgreSQL and Redis).

| endpoint | requests | median (ms) | p99 (ms) | max (ms) |
|---|---|---|---|---|
{rows}

Reproduce: `{repro}`
{END}"""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(text)
    print(f"updated {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
