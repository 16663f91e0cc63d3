"""Log context (request id, user, activity id) and the JSON formatter behind LOG_FORMAT=json.

The context lives in contextvars: `portal.middleware.RequestContextMiddleware` sets it for
each web request, the Celery signals below for each task, and `bind(activity_id=...)` lets
any code add the activity it is working on. `ContextFilter` copies it onto every record,
so the plain and the JSON format both show it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from django.utils.functional import empty

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
user_var: ContextVar[str] = ContextVar("user", default="-")
activity_id_var: ContextVar[str] = ContextVar("activity_id", default="-")
# The request being served, so a line logged mid-request names the user once it is known.
request_var: ContextVar[object | None] = ContextVar("request", default=None)

_CONTEXT_VARS = {"request_id": request_id_var, "user": user_var, "activity_id": activity_id_var}

# Attributes every LogRecord has; anything else passed through `extra=` goes into the JSON.
_RECORD_ATTRS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


@contextmanager
def bind(**values: object) -> Iterator[None]:
    """Set request_id / user / activity_id for the log lines written inside the block."""
    tokens = [(_CONTEXT_VARS[name], _CONTEXT_VARS[name].set(str(value))) for name, value in values.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def user_label(request) -> str:
    """The signed-in user's name, without forcing a lazy user to load."""
    user = request.__dict__.get("user")
    if user is None or getattr(user, "_wrapped", None) is empty:
        return "-"
    if not getattr(user, "is_authenticated", False):
        return "anonymous"
    return user.get_username()


def current_context() -> dict[str, str]:
    context = {name: var.get() for name, var in _CONTEXT_VARS.items()}
    request = request_var.get()
    if context["user"] == "-" and request is not None:
        context["user"] = user_label(request)
    return context


class ContextFilter(logging.Filter):
    """Adds request_id, user and activity_id to each record (unless the call gave them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in current_context().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, message, context, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = current_context()
        for name in _CONTEXT_VARS:
            payload[name] = getattr(record, name, context[name])
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and key not in payload and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            payload["stack"] = self.formatStack(record.stack_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


def _connect_celery_signals() -> None:
    """In a worker, each task's lines carry its task id as request_id and its activity id."""
    try:
        from celery.signals import task_postrun, task_prerun
    except ImportError:  # pragma: no cover - celery is a runtime requirement
        return

    tokens: dict[str, list] = {}

    @task_prerun.connect(weak=False)
    def _task_started(task_id=None, task=None, args=None, kwargs=None, **_):
        activity_id = (kwargs or {}).get("activity_id", "-")
        tokens[task_id] = [
            (request_id_var, request_id_var.set(str(task_id))),
            (user_var, user_var.set(f"task:{getattr(task, 'name', '?')}")),
            (activity_id_var, activity_id_var.set(str(activity_id))),
        ]

    @task_postrun.connect(weak=False)
    def _task_finished(task_id=None, **_):
        for var, token in reversed(tokens.pop(task_id, [])):
            try:
                var.reset(token)
            except ValueError:  # set in another context; just clear it
                var.set("-")


_connect_celery_signals()
