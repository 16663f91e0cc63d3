"""Background imports started from the admin (large files): an `ImportJob` per file."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from portal.errors import ValidationError
from portal.locks import job_lock, job_lock_timeout
from portal.queue import enqueue_on_commit

from ..imports.formats import UnreadableFile, dataset_to_records, read_dataset
from ..imports.records import ImportRejected
from ..models import ImportJob
from .imports import INVENTORY_KINDS, inventory_import_records

logger = logging.getLogger(__name__)

RUN_TASK = "recommendations.run_import_job"


def background_rows() -> int:
    """Admin imports with more rows than this run as a background job (IMPORT_BACKGROUND_ROWS)."""
    return settings.IMPORT_BACKGROUND_ROWS


def _job_progress_key(job_id: int) -> str:
    return f"recommendations:import-job:{job_id}:processed"


@transaction.atomic
def import_job_create(*, kind: str, file, original_name: str, total: int, user) -> ImportJob:
    """Record an uploaded file and queue its import (after commit). It runs with `user`'s scope."""
    if kind not in INVENTORY_KINDS:
        raise ValidationError(f"Unknown import kind {kind!r}.", field="kind")
    job = ImportJob.objects.create(
        kind=kind, file=file, original_name=original_name[:255], total=total, created_by=user
    )
    enqueue_on_commit(RUN_TASK, job.pk)
    return job


def import_job_progress(*, job: ImportJob) -> tuple[int, int]:
    """(rows processed, total rows); live from the cache while the job runs."""
    if job.status == ImportJob.Status.RUNNING:
        return min(int(cache.get(_job_progress_key(job.pk), job.processed)), job.total), job.total
    return job.processed, job.total


def import_job_run(*, job_id: int) -> ImportJob | None:
    """Run a queued import job (idempotent: a finished job is left alone).

    One run at a time per job (a lock held as long as a task may run): a message redelivered
    while the job still runs does nothing. A job left `running` by a worker that died runs
    again (its import was one transaction, so nothing of it was stored). The import has the
    scope of the person who uploaded the file. Progress goes to the cache (other connections
    cannot see uncommitted rows), the outcome to the job.
    """
    with job_lock(f"import_job:{job_id}", timeout=job_lock_timeout()) as acquired:
        if not acquired:
            logger.info("Import job %s is already running; this delivery does nothing.", job_id)
            return ImportJob.objects.filter(pk=job_id).first()
        return _run(job_id)


def _run(job_id: int) -> ImportJob | None:
    Status = ImportJob.Status
    job = ImportJob.objects.select_related("created_by").filter(pk=job_id).first()
    if job is None or job.status in (Status.SUCCEEDED, Status.FAILED):
        return job
    ImportJob.objects.filter(pk=job.pk).update(status=Status.RUNNING, processed=0)
    job.status = Status.RUNNING
    key = _job_progress_key(job.pk)
    cache.set(key, 0, 24 * 3600)
    done = 0

    def progress(n: int) -> None:
        nonlocal done
        done += n
        cache.set(key, done, 24 * 3600)

    def finish(status: str, *, summary=None, errors=None) -> None:
        job.status = status
        job.summary = summary or {}
        job.errors = errors or []
        job.processed = job.total if status == Status.SUCCEEDED else min(done, job.total)
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "summary", "errors", "processed", "finished_at"])
        cache.delete(key)

    if job.created_by is None or not job.created_by.is_active:
        # Never run with a wider scope than the uploader's: without them, nothing is imported.
        finish(
            Status.FAILED, errors=["The person who started this import can no longer sign in; nothing was imported."]
        )
        return job
    try:
        with job.file.open("rb") as fh:
            content = fh.read()
        dataset = read_dataset(content, name=job.original_name or job.file.name)
        records, problems = dataset_to_records(dataset)
        summary = inventory_import_records(
            kind=job.kind,
            records=records,
            source=job.original_name or job.kind,
            progress=progress,
            problems=problems,
            user=job.created_by,
        )
    except ImportRejected as exc:
        errors = [str(p) for p in exc.problems.items]
        if exc.problems.count > len(errors):
            errors.append(f"... and {exc.problems.count - len(errors)} more")
        finish(Status.FAILED, errors=errors)
    except UnreadableFile as exc:
        finish(Status.FAILED, errors=[str(exc)])
    except Exception as exc:
        logger.exception("Import job %s failed", job.pk)
        finish(Status.FAILED, errors=[f"Unexpected error ({type(exc).__name__}); nothing was imported."])
    else:
        finish(Status.SUCCEEDED, summary=summary)
    return job
