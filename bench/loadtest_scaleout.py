"""Scale-out smoke check (run by hand): the README's plain commands, on this machine.

    .venv/bin/python bench/loadtest_scaleout.py \
        --database-url postgres://postgres@127.0.0.1:5432/bench_g --redis-url redis://127.0.0.1:6379/7

Runs what the README's "Deploying at scale" section tells an operator to run, with the
production settings: `migrate`, `setup_periodic_tasks`, `collectstatic`, gunicorn with 4 workers
(`gunicorn --config gunicorn.conf.py`), one Celery worker and one beat. Then checks that:
1. /healthz answers 200 with the database and the broker ok;
2. the admin serves its login page (with the CSP header), a superuser signs in through the form,
   and the admin index and the activity changelist answer 200;
3. the REST API answers the activities list with a token;
4. the worker is killed (SIGKILL), jobs are queued while it is down and wait in Redis, and a new
   worker runs every one of them.
Everything it starts is stopped at the end. Loopback only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
JOBS = 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(env, *args) -> str:
    result = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode:
        sys.exit(f"manage.py {' '.join(args)} failed: {result.stderr}")
    return result.stdout


def start(env, log: Path, *cmd: str) -> subprocess.Popen:
    return subprocess.Popen(  # noqa: S603
        cmd, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class Browser:
    """A tiny cookie-keeping HTTP client that talks to gunicorn as the TLS proxy would."""

    def __init__(self, port: int):
        self.port, self.cookies = port, {}

    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        hdrs = {"Host": "127.0.0.1", "X-Forwarded-Proto": "https", **(headers or {})}
        if self.cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn.request(method, path, body=body, headers=hdrs)
        response = conn.getresponse()
        data = response.read()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
        conn.close()
        return response, data


def check(condition: bool, message: str) -> None:
    print(("ok   " if condition else "FAIL ") + message, flush=True)
    if not condition:
        raise SystemExit(1)


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    check(False, f"timed out waiting for {what}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/bench_g")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/7")
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()

    import redis

    broker = redis.Redis.from_url(args.redis_url)
    broker.flushdb()  # our own db number: a clean queue
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "WEB_CONCURRENCY": str(args.workers),
        "LOG_FORMAT": "json",
    }
    sys.path.insert(0, str(ROOT / "bench"))
    from loadtest import ensure_database

    ensure_database(args.database_url)
    manage(env, "migrate", "--noinput", "--verbosity", "0")
    manage(env, "setup_periodic_tasks")
    manage(env, "seed_demo", "--devices", "200")
    manage(env, "collectstatic", "--noinput", "--verbosity", "0")
    token = manage(env, "create_api_token", "it").strip().splitlines()[-1]

    logs = ROOT / "bench" / "out"
    logs.mkdir(exist_ok=True)
    port = free_port()
    procs = []
    try:
        web = start(
            env,
            logs / "web.log",
            str(BIN / "gunicorn"),
            "--config",
            "gunicorn.conf.py",
            "--workers",
            str(args.workers),
            "--bind",
            f"127.0.0.1:{port}",
        )
        worker_cmd = (str(BIN / "celery"), "-A", "portal", "worker", "--loglevel=INFO", "--concurrency=2")
        worker = start(env, logs / "worker-1.log", *worker_cmd)
        beat = start(
            env,
            logs / "beat.log",
            str(BIN / "celery"),
            "-A",
            "portal",
            "beat",
            "--loglevel=INFO",
            "--scheduler",
            "django_celery_beat.schedulers:DatabaseScheduler",
        )
        procs += [web, worker, beat]
        browser = Browser(port)

        def healthy():
            try:
                return browser.request("GET", "/healthz")[0].status == 200
            except OSError:
                return False

        wait_for(healthy, 60, "gunicorn")
        response, body = browser.request("GET", "/healthz")
        check(json.loads(body) == {"database": "ok", "broker": "ok"}, f"/healthz 200 {body.decode()}")
        pgrep = ["pgrep", "-P", str(web.pid)]
        workers = subprocess.run(pgrep, capture_output=True, text=True, check=False)  # noqa: S603, S607
        check(len(workers.stdout.split()) == args.workers, f"gunicorn runs {args.workers} workers")

        response, body = browser.request("GET", "/admin/login/")
        check(response.status == 200, "admin login page 200")
        check("default-src 'self'" in (response.getheader("Content-Security-Policy") or ""), "CSP header")
        csrf = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body).group(1).decode()
        form = f"csrfmiddlewaretoken={csrf}&username=admin&password=admin-demo-2026&next=/admin/"
        response, _ = browser.request(
            "POST",
            "/admin/login/",
            form,
            {"Content-Type": "application/x-www-form-urlencoded", "Referer": "https://127.0.0.1/admin/login/"},
        )
        check(response.status == 302 and "__Host-sessionid" in browser.cookies, "admin sign-in (secure cookie)")
        check(browser.request("GET", "/admin/")[0].status == 200, "admin index 200")
        response, _ = browser.request("GET", "/admin/remediation/remediationactivity/")
        check(response.status == 200, "activity changelist 200")
        response, body = Browser(port).request(
            "GET", "/api/v1/remediation-activities/", headers={"Authorization": f"Token {token}"}
        )
        check(response.status == 200 and json.loads(body)["results"], "API activities list 200 with a token")

        stop(worker, signal.SIGKILL)
        check(worker.poll() is not None, "worker killed (SIGKILL)")
        # Celery's built-in `celery.accumulate` job: it tests the queue, not any job's own logic.
        queue_cmd = (
            "from portal.celery import app\n"
            f"for n in range({JOBS}): print(app.send_task('celery.accumulate', args=[n]).id)"
        )
        task_ids = manage(env, "shell", "--no-imports", "-c", queue_cmd).split()[-JOBS:]
        check(
            broker.llen("celery") >= JOBS, f"{JOBS} jobs wait in Redis while no worker runs ({broker.llen('celery')})"
        )
        worker2 = start(env, logs / "worker-2.log", *worker_cmd)
        procs.append(worker2)

        def all_done():
            text = (logs / "worker-2.log").read_text()
            return all(f"[{task_id}] succeeded" in text for task_id in task_ids)

        wait_for(all_done, 120, "the new worker to run the queued jobs")
        check(True, f"the restarted worker ran all {JOBS} queued jobs")
    finally:
        for proc in reversed(procs):
            stop(proc)
    print("scale-out smoke check passed; logs in bench/out/")


if __name__ == "__main__":
    main()
