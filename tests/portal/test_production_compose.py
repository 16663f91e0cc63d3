"""compose.yaml and the Dockerfile describe the documented deployment (docker does not run on
the CI machine, so the files are checked for the promises the README makes)."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_has_every_service_on_the_production_settings():
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", "migrate", "web", "worker", "beat"}
    for name in ("migrate", "web", "worker", "beat"):
        env = services[name]["environment"]
        assert env["DJANGO_SETTINGS_MODULE"] == "portal.settings.production"
        assert env["DATABASE_URL"].startswith("postgres://")
        assert env["REDIS_URL"].startswith("redis://redis:6379/")
        assert services[name]["env_file"] == ".env"
        # uploads written by web are read by the worker: one shared volume
        assert "media:/app/media" in services[name]["volumes"]
        assert env["DJANGO_MEDIA_ROOT"] == "/app/media"


def test_migrations_run_once_before_web_worker_and_beat():
    services = compose()["services"]
    assert "manage.py migrate --noinput" in services["migrate"]["command"][-1]
    assert "manage.py setup_periodic_tasks" in services["migrate"]["command"][-1]
    assert services["migrate"]["restart"] == "no"
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert services[name]["depends_on"]["postgres"] == {"condition": "service_healthy"}


def test_web_is_gunicorn_on_loopback_and_exactly_one_beat():
    services = compose()["services"]
    assert services["web"]["command"][0] == "gunicorn"
    assert all(port.startswith("127.0.0.1:") for port in services["web"]["ports"])
    assert services["beat"]["deploy"]["replicas"] == 1
    assert "beat" in services["beat"]["command"]
    assert "worker" in services["worker"]["command"]


def test_dockerfile_builds_on_python_311_slim_and_runs_unprivileged():
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    assert "FROM python:3.11-slim" in lines
    assert "USER portal" in lines
    assert any("collectstatic" in line for line in lines)
    assert 'CMD ["gunicorn", "--config", "gunicorn.conf.py"]' in lines
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".env" in ignored
    assert ".git" in ignored
