"""Queueing Celery tasks by name, so that services never import the tasks that call them.

Tasks import their services (thin callers); a service that wants work done later names the
task instead. Every app imports its `tasks` module in `AppConfig.ready()`, so the name is
known in web processes too, and with `CELERY_TASK_ALWAYS_EAGER` (no broker) the task runs
in-process as before.
"""

from __future__ import annotations

from django.db import transaction


def enqueue(task_name: str, *args) -> None:
    """Queue the registered task `task_name` with `args` now."""
    from portal.celery import app

    app.tasks[task_name].delay(*args)


def enqueue_on_commit(task_name: str, *args) -> None:
    """Queue the task once the current transaction commits (at once outside a transaction)."""
    transaction.on_commit(lambda: enqueue(task_name, *args))
