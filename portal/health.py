"""`/healthz`: is this web process able to serve? Checks the database and the broker.

Answers 200 {"database": "ok", "broker": "ok"} or 503 naming what failed. No
authentication, and nothing secret in the answer (no URLs, hosts or error texts: those
go to the log). The broker is skipped when none is configured (tasks run in-process).
"""

from __future__ import annotations

import logging

import redis
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger("portal.health")

BROKER_TIMEOUT_SECONDS = 2


def check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:  # any failure means "not healthy"; the details go to the log only
        logger.exception("Health check: the database is unavailable")
        return "unavailable"
    return "ok"


def check_broker() -> str:
    url = settings.CELERY_BROKER_URL
    if not url or url.startswith("memory://"):
        return "skipped"
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return _check_other_broker(url)
    client = redis.Redis.from_url(
        url, socket_connect_timeout=BROKER_TIMEOUT_SECONDS, socket_timeout=BROKER_TIMEOUT_SECONDS
    )
    try:
        client.ping()
    except Exception:
        logger.exception("Health check: the broker is unavailable")
        return "unavailable"
    finally:
        client.close()
    return "ok"


def _check_other_broker(url: str) -> str:
    """RabbitMQ and the like: ask kombu to open (and close) a connection."""
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=BROKER_TIMEOUT_SECONDS) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception:
        logger.exception("Health check: the broker is unavailable")
        return "unavailable"
    return "ok"


@never_cache
@require_GET
def healthz(request):
    result = {"database": check_database(), "broker": check_broker()}
    healthy = all(value in ("ok", "skipped") for value in result.values())
    return JsonResponse(result, status=200 if healthy else 503)
