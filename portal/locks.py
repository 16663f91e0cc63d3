"""A named lock so that two runs of one job never act at once, across workers and machines.

With Redis configured the lock lives in Redis (shared by every worker); without it, in the
process-local cache, which is enough for `make run` where tasks run in-process. Production
(JOB_LOCKS_REQUIRE_SHARED_CACHE) refuses a process-local cache: such a lock would not stop a
second worker.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, cache, caches
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

# Deletes the key only if it still holds our token, so an expired lock taken over by
# another run is never released by the first one.
_RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end
"""


def _require_shared_cache(name: str) -> None:
    if not settings.JOB_LOCKS_REQUIRE_SHARED_CACHE:
        return
    backend = caches[DEFAULT_CACHE_ALIAS]
    if isinstance(backend, LocMemCache | DummyCache):
        raise ImproperlyConfigured(
            f"Job lock {name!r} needs a cache shared by every process (Redis: REDIS_URL), not {type(backend).__name__}."
        )


@contextmanager
def job_lock(name: str, *, timeout: int = 60 * 60) -> Iterator[bool]:
    """Yields True if this run holds the lock named `name`, False if another run has it.

    `timeout` bounds how long a crashed holder can block the job.
    """
    _require_shared_cache(name)
    key = f"portal:lock:{name}"
    token = uuid.uuid4().hex
    acquired = cache.add(key, token, timeout)
    if not acquired:
        logger.info("Job %s is already running elsewhere; this run does nothing.", name)
    try:
        yield acquired
    finally:
        if acquired:
            _release(key, token)


def _release(key: str, token: str) -> None:
    client = getattr(cache, "_cache", None)
    get_client = getattr(client, "get_client", None)
    if get_client is not None:  # django's RedisCache: compare-and-delete atomically
        redis = get_client(key, write=True)
        redis.eval(_RELEASE_SCRIPT, 1, cache.make_and_validate_key(key), cache._cache._serializer.dumps(token))
        return
    if cache.get(key) == token:
        cache.delete(key)


def job_lock_timeout() -> int:
    """How long a job's lock may be held: the tasks' hard time limit (CELERY_TASK_TIME_LIMIT).

    Shorter than the broker's visibility timeout, so a message redelivered after a killed
    worker never finds the dead run's lock still held.
    """
    return settings.CELERY_TASK_TIME_LIMIT
