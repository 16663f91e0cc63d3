"""The pull from the Defender for Endpoint API (DESIGN.md section 12): `manage.py defender_sync` and the
beat entry `defender_sync`.

1. Read, page by page into files (nothing is written to the database yet): the recommendations
   (`GET /api/recommendations`), the machines (`GET /api/machines`) and, for each recommendation
   with exposed devices, its `machineReferences`: the exposed devices. A page that fails after
   its retries stops the pull here, and the database is unchanged.
2. Apply, in one transaction, through the services `import_tvm` uses: the recommendations and
   machines are upserted, the devices the references name but the machine list lacked are
   upserted, and the references are one exposure snapshot covering every recommendation the portal
   knows (Defender's answer is the whole picture: a recommendation it no longer lists, or lists
   with no exposed device, has none). All or nothing; after the commit auto-completion follows
   (`exposures_changed`).

Why machineReferences rather than the assessment exports: they hold exactly one row per exposed
(recommendation, device) pair, while the software assessment has a row per device, software,
version, path and CVE (tens of rows per exposure; Microsoft's page speaks of 1 KB a row) and the
configuration assessment a row per device and configuration, compliant or not. Recommendations
Defender reports with no exposed device (`exposedMachinesCount` 0) are not asked.

Every run is a `DefenderSyncRun`: its progress lines, its summary (`created, updated, remediated,
re-exposed`), its warnings and its error, listed in the admin. Two runs never act at once (lock).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from portal.errors import ApplicationError
from portal.locks import job_lock, job_lock_timeout
from portal.msclient import ApiError

from .. import defender
from ..imports import readers
from ..imports.records import Problems, Record
from ..models import DefenderSyncRun, SecurityRecommendation
from .counters import hold_snapshot_lock
from .imports import exposures_import_defender, import_summary_line, import_totals
from .inventory import devices_upsert, recommendations_upsert

logger = logging.getLogger(__name__)

SYNC_LOCK = "defender_sync"
WARNINGS_KEPT = 100
REFERENCES_REPORT_EVERY = 100  # a progress line every this many recommendations read


class _Run:
    """The run's record and its progress lines (written as they come, outside the apply's transaction)."""

    def __init__(self, run: DefenderSyncRun, progress: Callable[[str], None] | None):
        self.run, self.progress = run, progress
        self.saving = True

    def report(self, line: str) -> None:
        logger.info("Defender pull: %s", line)
        self.run.progress.append(line)
        if self.saving:
            self.run.save(update_fields=["progress"])
        if self.progress is not None:
            self.progress(line)


def defender_sync(
    *,
    trigger: str = DefenderSyncRun.Trigger.COMMAND,
    client: defender.DefenderClient | None = None,
    progress: Callable[[str], None] | None = None,
) -> DefenderSyncRun | None:
    """One pull now. Returns its run (succeeded or failed), or None when another run holds the lock.

    `progress(line)` receives each progress line as the log does. A Defender or import error fails
    the run (recorded, returned); anything else is recorded and raised.
    """
    with job_lock(SYNC_LOCK, timeout=job_lock_timeout()) as acquired:
        if not acquired:
            return None
        # Holding the lock, any run still marked running was cut short (a killed worker).
        DefenderSyncRun.objects.filter(status=DefenderSyncRun.Status.RUNNING).update(
            status=DefenderSyncRun.Status.FAILED,
            finished_at=timezone.now(),
            error="Interrupted: the process running it stopped before it finished.",
        )
        state = _Run(DefenderSyncRun.objects.create(trigger=trigger), progress)
        warnings: list[str] = []
        try:
            summary = _pull(state, client=client, warnings=warnings)
        except (ApiError, ApplicationError) as exc:
            _finish(state, warnings, error=exc.message)
        except BaseException as exc:  # a time limit, an interrupt, a bug: recorded, then raised
            _finish(state, warnings, error=f"{exc.__class__.__name__}: {exc}".rstrip(": "))
            raise
        else:
            _finish(state, warnings, summary=summary)
        return state.run


def _finish(state: _Run, warnings: list[str], *, summary: dict | None = None, error: str = "") -> None:
    run = state.run
    run.status = DefenderSyncRun.Status.FAILED if error else DefenderSyncRun.Status.SUCCEEDED
    run.finished_at = timezone.now()
    run.error = error
    run.warnings = warnings[:WARNINGS_KEPT]
    if summary is not None:
        run.summary = {k: v for k, v in summary.items() if k != "warnings"} | {"warnings": len(warnings)}
    run.save()
    if error:
        logger.warning("Defender pull failed: %s", error)
    else:
        logger.info("Defender pull: %s", import_summary_line(run.summary))
    kept = settings.DEFENDER_SYNC_RUNS_KEPT
    old = DefenderSyncRun.objects.order_by("-started_at").values_list("pk", flat=True)[kept:]
    DefenderSyncRun.objects.filter(pk__in=list(old)).delete()


def _pull(state: _Run, *, client: defender.DefenderClient | None, warnings: list[str]) -> dict:
    if client is None:
        client = defender.DefenderClient.from_settings()  # raises DefenderNotConfigured without credentials
    spool = settings.DEFENDER_SPOOL_DIR or None
    with tempfile.TemporaryDirectory(prefix="defender-sync-", dir=spool) as directory:
        pages = _read(state, client=client, directory=Path(directory))
        state.report("Applying the snapshot.")
        state.saving = False  # inside the transaction: lines are logged, and saved with the result
        try:
            summary = _apply(pages, warnings=warnings)
        finally:
            state.saving = True
    state.report("Done: " + import_summary_line(summary) + ".")
    return summary


def _read(state: _Run, *, client: defender.DefenderClient, directory: Path) -> dict:
    """Every page the pull needs, on disk: {"recommendations": [...], "machines": [...], "references": [...]}."""
    recommendation_pages = list(
        client.pages_to_files(
            defender.RECOMMENDATIONS_PATH,
            what="Reading the recommendations",
            directory=directory,
            name="recommendations",
            skip_paging=True,
        )
    )
    exposed = list(_exposed_recommendations(recommendation_pages))
    state.report(
        f"Recommendations: {sum(p.records for p in recommendation_pages):,} read "
        f"({len(recommendation_pages)} page(s)), {len(exposed):,} with exposed devices."
    )
    machine_pages = []
    for page in client.pages_to_files(
        defender.MACHINES_PATH, what="Reading the machines", directory=directory, name="machines", skip_paging=True
    ):
        machine_pages.append(page)
        if page.number % 10 == 0:
            state.report(f"Machines: {sum(p.records for p in machine_pages):,} read so far.")
    state.report(f"Machines: {sum(p.records for p in machine_pages):,} read ({len(machine_pages)} page(s)).")
    references: list[tuple[str, list]] = []
    devices = 0
    for index, external_id in enumerate(exposed, 1):
        pages = list(
            client.pages_to_files(
                defender.machine_references_path(external_id),
                what=f"Reading the devices exposed to {external_id}",
                directory=directory,
                name=f"references-{index:05d}",
                skip_paging=False,
            )
        )
        references.append((external_id, pages))
        devices += sum(p.records for p in pages)
        if index % REFERENCES_REPORT_EVERY == 0 and index < len(exposed):
            state.report(
                f"Exposures: {index:,} of {len(exposed):,} recommendations read ({devices:,} exposed devices)."
            )
    state.report(f"Exposures: {devices:,} exposed devices of {len(exposed):,} recommendations read.")
    return {"recommendations": recommendation_pages, "machines": machine_pages, "references": references}


def _exposed_recommendations(pages) -> Iterator[str]:
    """Ids of the listed recommendations that may have exposed devices (not `exposedMachinesCount: 0`)."""
    seen = set()
    for record in _records(pages, source="recommendations"):
        external_id, count = record.data.get("id"), record.data.get("exposedMachinesCount")
        if isinstance(external_id, str) and external_id.strip() and external_id not in seen and count != 0:
            seen.add(external_id)
            yield external_id.strip()


def _records(pages, *, source: str, problems: Problems | None = None, start: int = 0) -> Iterator[Record]:
    """The records of page files, numbered across the pages (from `start` + 1)."""
    problems = problems if problems is not None else Problems()
    position = start
    for page in pages:
        for record in readers.read_json_records(page.path, source=source, problems=problems):
            position += 1
            yield Record(position, None, record.data)


def _machines_upsert(pages, *, problems: Problems, warnings: list[str]) -> tuple[dict, set[str]]:
    """The machines upserted a page at a time (memory holds one page, not 100,000 machines), as one
    list: an id on two pages is a duplicate like an id twice on one page. Returns (counts, ids)."""
    source = "Defender machines"
    first_at: dict[str, int] = {}
    totals: dict[str, int] = {}
    start = 0
    for page in pages:

        def unique(records):
            for record in records:
                machine_id = record.data.get("id")
                if isinstance(machine_id, str) and machine_id.strip():
                    key = machine_id.strip()
                    if key in first_at:
                        problems.add(
                            source, record.position, f"duplicate device id {key!r} (first at record {first_at[key]})"
                        )
                        continue
                    first_at[key] = record.position
                yield record

        records = unique(_records([page], source="machines", problems=problems, start=start))
        counts = devices_upsert(records=records, source=source, problems=problems, warnings=warnings)
        totals = {k: totals.get(k, 0) + counts.get(k, 0) for k in {*totals, *counts}}
        start += page.records
    return totals, set(first_at)


def _apply(pages: dict, *, warnings: list[str]) -> dict:
    problems = Problems()
    summary: dict = {"warnings": warnings}
    with transaction.atomic():
        hold_snapshot_lock()  # before the upserts: deletes of devices take it first too
        summary["recommendations"] = recommendations_upsert(
            records=_records(pages["recommendations"], source="recommendations", problems=problems),
            source="Defender recommendations",
            problems=problems,
            warnings=warnings,
        )
        summary["devices"], machine_ids = _machines_upsert(pages["machines"], problems=problems, warnings=warnings)
        problems.raise_if_any()  # bad records: say so before the snapshot adds "unknown" for each of them
        covered = list(SecurityRecommendation.objects.values_list("external_id", flat=True))
        exposures_import_defender(
            batches=_reference_batches(pages["references"], problems=problems),
            source="Defender machineReferences",
            problems=problems,
            warnings=warnings,
            summary=summary,
            recommendation_ids=covered,
            known_devices=machine_ids,
        )
        problems.raise_if_any()
    return import_totals(summary)


def _reference_batches(references: list, *, problems: Problems) -> Iterable[tuple[Iterable, str]]:
    for external_id, pages in references:
        yield _records(pages, source=f"machineReferences of {external_id}", problems=problems), external_id
