"""Structured logs: every line carries the request id (X-Request-ID in and out), the user and,
on an activity's pages, the activity id; LOG_FORMAT=json writes one JSON object per line."""

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from portal.logging import ContextFilter, JsonFormatter, bind
from tests.recommendations.factories import UserFactory

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def json_lines():
    """Collects what the portal logs, formatted as LOG_FORMAT=json formats it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


@pytest.mark.django_db
def test_request_id_is_echoed_and_on_every_line(client, json_lines, settings):
    settings.CELERY_BROKER_URL = "memory://"
    response = client.get("/healthz", HTTP_X_REQUEST_ID="abc-123")
    assert response["X-Request-ID"] == "abc-123"
    access = [line for line in json_lines() if line["logger"] == "portal.access"]
    assert len(access) == 1
    line = access[0]
    assert line["request_id"] == "abc-123"
    assert line["message"] == "GET /healthz 200"
    assert line["level"] == "INFO"
    assert line["status"] == 200
    assert line["user"] == "-"  # /healthz never looks at the session
    assert line["timestamp"].endswith("+00:00")


@pytest.mark.django_db
def test_missing_or_unsafe_request_id_is_replaced(client, settings):
    settings.CELERY_BROKER_URL = "memory://"
    generated = client.get("/healthz")["X-Request-ID"]
    assert len(generated) == 32
    unsafe = client.get("/healthz", HTTP_X_REQUEST_ID="evil\nInjected: yes")["X-Request-ID"]
    assert "\n" not in unsafe
    assert unsafe != "evil\nInjected: yes"
    assert client.get("/healthz")["X-Request-ID"] != generated


@pytest.mark.django_db
def test_signed_in_user_is_named(client, json_lines):
    client.force_login(UserFactory(username="heidi", is_superuser=True))
    assert client.get("/admin/", HTTP_X_REQUEST_ID="r-1").status_code == 200
    access = [line for line in json_lines() if line["logger"] == "portal.access"]
    assert [(line["user"], line["request_id"]) for line in access] == [("heidi", "r-1")]


@pytest.mark.django_db
def test_activity_id_on_the_activity_admin_page(client, json_lines, security_user):
    from tests.remediation.factories import make_activity

    activity = make_activity(user=security_user)
    client.force_login(UserFactory(username="ivan", is_superuser=True))
    client.get(f"/admin/remediation/remediationactivity/{activity.pk}/change/")
    access = [line for line in json_lines() if line["logger"] == "portal.access"]
    assert [line["activity_id"] for line in access] == [str(activity.pk)]


def test_bind_adds_context_and_extras_to_json(json_lines):
    logger = logging.getLogger("portal.test")
    with bind(activity_id="act-1", user="job:purge"):
        logger.info("purged %s", 3, extra={"count": 3})
    logger.info("after")
    lines = [line for line in json_lines() if line["logger"] == "portal.test"]
    assert lines[0] == {
        "timestamp": lines[0]["timestamp"],
        "level": "INFO",
        "logger": "portal.test",
        "message": "purged 3",
        "request_id": "-",
        "user": "job:purge",
        "activity_id": "act-1",
        "count": 3,
    }
    assert (lines[1]["activity_id"], lines[1]["user"]) == ("-", "-")


def test_exceptions_are_one_json_line(json_lines):
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("portal.test").exception("failed")
    (line,) = [line for line in json_lines() if line["logger"] == "portal.test"]
    assert line["level"] == "ERROR"
    assert "ValueError: boom" in line["exception"]


def test_log_format_json_setting_makes_the_console_json():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings.test", "LOG_FORMAT": "json"}
    script = "import django, logging; django.setup(); logging.getLogger('portal.x').warning('hello %s', 'world')"
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert (line["level"], line["logger"], line["message"], line["request_id"]) == (
        "WARNING",
        "portal.x",
        "hello world",
        "-",
    )


@pytest.mark.django_db
def test_api_token_user_and_activity_id_are_on_the_line(client, json_lines, security_user, it_user):
    from rest_framework.authtoken.models import Token

    from tests.remediation.factories import make_activity

    activity = make_activity(user=security_user)
    token = Token.objects.create(user=it_user)
    response = client.get(
        f"/api/v1/remediation-activities/{activity.pk}/",
        HTTP_AUTHORIZATION=f"Token {token.key}",
        HTTP_X_REQUEST_ID="api-1",
    )
    assert response.status_code == 200
    access = [line for line in json_lines() if line["logger"] == "portal.access"]
    assert [(line["user"], line["activity_id"], line["request_id"]) for line in access] == [
        ("it", str(activity.pk), "api-1")
    ]
