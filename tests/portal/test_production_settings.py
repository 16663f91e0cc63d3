"""portal.settings.production: passes the deploy check with the documented environment
(deploy/portal.env.example, the one the README shows) and refuses to start without secrets."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_ENV = ROOT / "deploy" / "portal.env.example"


def documented_env() -> dict[str, str]:
    env = {}
    for line in EXAMPLE_ENV.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            env[name] = value
    return env


def run_manage(env_overrides: dict[str, str | None], *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL"))}
    env.update(documented_env())
    for name, value in env_overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_documented_environment_sets_production_settings():
    env = documented_env()
    assert env["DJANGO_SETTINGS_MODULE"] == "portal.settings.production"
    for name in (
        "DJANGO_SECRET_KEY",
        "DJANGO_ALLOWED_HOSTS",
        "DATABASE_URL",
        "REDIS_URL",
        "DJANGO_CSRF_TRUSTED_ORIGINS",
    ):
        assert env.get(name), f"{name} is missing from {EXAMPLE_ENV.name}"


def test_deploy_check_passes_with_the_documented_environment():
    result = run_manage({}, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_deploy_check_flags_a_weak_secret_key():
    result = run_manage({"DJANGO_SECRET_KEY": "short"}, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    assert "security.W009" in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"DJANGO_SECRET_KEY": None}, "DJANGO_SECRET_KEY must be set in production"),
        ({"DJANGO_ALLOWED_HOSTS": None}, "DJANGO_ALLOWED_HOSTS must be set in production"),
        ({"DATABASE_URL": None}, "DATABASE_URL must be set in production to a PostgreSQL database"),
        ({"DATABASE_URL": "sqlite:///db.sqlite3"}, "DATABASE_URL must be set in production to a PostgreSQL database"),
        ({"REDIS_URL": None}, "A broker must be set in production"),
        (
            {"REDIS_URL": None, "CELERY_BROKER_URL": "amqp://guest@rabbit.example.internal//"},
            "REDIS_URL must be set in production: job locks",
        ),
    ],
)
def test_refuses_to_start_without_what_it_needs(overrides, message):
    result = run_manage(overrides, "check")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_refuses_a_wildcard_host():
    result = run_manage({"DJANGO_ALLOWED_HOSTS": "*"}, "check")
    assert result.returncode != 0
    assert "not '*'" in result.stderr


def test_production_values_for_https_cookies_and_sessions():
    code = (
        "from django.conf import settings as s; "
        "print(s.SECURE_PROXY_SSL_HEADER, s.SECURE_HSTS_SECONDS > 0, s.SESSION_COOKIE_SECURE, "
        "s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, s.SESSION_COOKIE_SAMESITE, "
        "s.SESSION_COOKIE_AGE, s.SESSION_SAVE_EVERY_REQUEST, s.CSRF_TRUSTED_ORIGINS, s.DEBUG)"
    )
    result = run_manage({"SESSION_IDLE_TIMEOUT": "1800"}, "shell", "--no-imports", "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "('HTTP_X_FORWARDED_PROTO',",
        "'https')",
        "True",
        "True",
        "True",
        "True",
        "Lax",
        "1800",
        "True",
        "['https://portal.example.com']",
        "False",
    ]


def test_default_idle_timeout_is_eight_hours():
    result = run_manage(
        {}, "shell", "--no-imports", "-c", "from django.conf import settings; print(settings.SESSION_COOKIE_AGE)"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(8 * 60 * 60)
