"""The Celery application. Configuration comes from Django settings (CELERY_*, see settings/base.py).

Without REDIS_URL every task runs in-process (task_always_eager, the `make run` default); with
it tasks go through the Redis broker to `celery -A portal worker`, and `celery -A portal beat`
(DatabaseScheduler) queues the jobs whose schedules live in django-celery-beat.
"""

import logging
import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.local")

logger = logging.getLogger(__name__)

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The longest delay before a retry (remediation.tasks.RETRY_BACKOFF_MAX_SECONDS).
LONGEST_RETRY_DELAY = 600


@worker_init.connect
def _check_visibility_timeout(**kwargs) -> None:
    """Warn when Redis could hand a running (or a delayed) task to a second worker."""
    visibility = (app.conf.broker_transport_options or {}).get("visibility_timeout")
    limit = app.conf.task_time_limit or 0
    if visibility and visibility <= max(limit, LONGEST_RETRY_DELAY):
        logger.warning(
            "The broker visibility timeout (%ss) is not longer than the task time limit (%ss) and the "
            "longest retry delay (%ss): a task still running could be delivered twice.",
            visibility,
            limit,
            LONGEST_RETRY_DELAY,
        )
