"""Imports of whole files: `manage.py import_tvm` and the admin's files, all or nothing."""

from __future__ import annotations

import functools
import gc
import threading
from collections.abc import Iterable
from contextlib import contextmanager

from django.db import transaction

from portal import permissions as perm
from portal.errors import ValidationError

from ..imports import readers
from ..imports.exposures import PAIRS, REFERENCES, ExposureReader, classify, peek
from ..imports.records import Problems, Record
from ..models import SecurityRecommendation
from .counters import hold_snapshot_lock
from .inventory import (
    INVENTORY_BATCH_SIZE,
    CheckedRows,
    check_device_records,
    check_recommendation_records,
    device_groups_upsert,
    devices_upsert,
    new_devices_copied_ahead,
    recommendations_upsert,
)
from .pair_copies import CopiedAhead, pairs_copied_ahead
from .snapshots import exposures_import_snapshot

_collector_lock = threading.Lock()
_collector_pauses = 0  # imports running with the collector paused, in this process
_collector_was_enabled = False  # as the first of them found it


@contextmanager
def _collector_paused():
    """Python's cyclic garbage collector off for the body, as it was after.

    An import builds a few hundred thousand dictionaries and tuples that stay alive (the checked
    records) and form no cycle: each collection the allocations set off walks them all again, for
    nothing (0.4 s of the 1 s spent checking 100,000 machine records). Reference counting still
    frees everything the import lets go.

    The collector is one switch for the whole process, and a threaded worker runs imports side
    by side: the first import in turns it off, the last one out turns it back on (if it was on),
    so that no import ends another's pause and none leaves it off for good.
    """
    global _collector_pauses, _collector_was_enabled
    with _collector_lock:
        if _collector_pauses == 0:
            _collector_was_enabled = gc.isenabled()
            gc.disable()
        _collector_pauses += 1
    try:
        yield
    finally:
        with _collector_lock:
            _collector_pauses -= 1
            if _collector_pauses == 0 and _collector_was_enabled:
                gc.enable()


def _without_collector(function):
    @functools.wraps(function)
    def call(*args, **kwargs):
        with _collector_paused():
            return function(*args, **kwargs)

    return call


def _open_records(file, *, source: str, problems: Problems, csv_required=()):
    if readers.sniff_is_json(file):
        return readers.read_json_records(file, source=source, problems=problems)
    return readers.read_csv_records(file, source=source, problems=problems, required=csv_required)


def import_summary_line(summary: dict) -> str:
    """`created 12, updated 3, remediated 2, re-exposed 1, rejected 0` (the command's last line)."""
    return (
        f"created {summary['created']}, updated {summary['updated']}, remediated {summary['remediated']}, "
        f"re-exposed {summary['re_exposed']}, rejected {summary['rejected']}"
    )


def import_totals(summary: dict) -> dict:
    """Adds the totals of `import_summary_line` (created, updated, remediated, re_exposed) to `summary`."""
    kinds = ("device_groups", "devices", "exposure_devices", "recommendations", "exposures")
    parts = [summary.get(k) or {} for k in kinds]
    summary["created"] = sum(p.get("created", 0) + p.get("device_groups_created", 0) for p in parts)
    summary["updated"] = sum(p.get("updated", 0) for p in parts)
    summary["remediated"] = (summary.get("exposures") or {}).get("remediated", 0)
    summary["re_exposed"] = (summary.get("exposures") or {}).get("re_exposed", 0)
    summary.setdefault("rejected", 0)
    return summary


def exposures_import_defender(
    *,
    batches: Iterable[tuple[Iterable, str | None]],
    source: str,
    problems: Problems,
    warnings: list[str],
    summary: dict,
    recommendation_ids: Iterable[str] = (),
    known_devices: set[str] | frozenset = frozenset(),
    progress=None,
    user=None,
    copied_ahead: CopiedAhead | None = None,
) -> None:
    """One exposure snapshot from Defender's shapes (see recommendations.imports.exposures).

    `batches`: (records, recommendation id) for each file or answer; the id is given for the
    machineReferences of that recommendation, else None. The devices the rows name are upserted
    first (those in `known_devices` are not: the pull upserted them already). Puts its counts in
    `summary` ("exposures", "exposure_devices"); problems go to `problems` (the caller raises).
    `user`: whose import it is (devices and exposures of their device groups only); None: full scope.
    `copied_ahead`: the batches are CSV files of pairs that `pairs_copied_ahead` copied before this
    transaction began.
    """
    reader = ExposureReader(source=source, problems=problems, warnings=warnings, known_devices=known_devices)
    summary.setdefault("exposures", {})  # first: the admin's preview shows the first counts of a summary
    peeked = []
    for records, recommendation_id in batches:
        if recommendation_id is not None:  # machineReferences: nothing to tell from the records (none opened yet)
            kind = REFERENCES
        elif isinstance(records, readers.ExposureCsvFile):  # a CSV of pairs (not opened yet: it may be copied)
            kind = PAIRS
        else:
            first, records = peek(records)
            kind = classify(first if isinstance(first, Record) else None)
        peeked.append((records, kind, recommendation_id))
        reader.kinds.add(kind)

    def pairs():
        for records, kind, recommendation_id in peeked:
            yield from reader.pairs(records, kind=kind, recommendation_id=recommendation_id)

    def upsert_devices():
        _create_named_recommendations(
            reader, source=source, problems=problems, warnings=warnings, summary=summary, user=user
        )
        if reader.devices:
            counts = devices_upsert(
                records=reader.device_records(), source=source, problems=problems, warnings=warnings, user=user
            )
            _add_counts(summary, "exposure_devices", counts)

    # CSV files of pairs only: the snapshot may copy them as they are (PostgreSQL), else it reads pairs().
    copy_files = [records for records, kind, _ in peeked if kind == PAIRS]
    if len(copy_files) != len(peeked) or not all(isinstance(f, readers.ExposureCsvFile) for f in copy_files):
        copy_files = []
    counts = exposures_import_snapshot(
        pairs=pairs(),
        copy_files=copy_files,
        recommendation_ids=recommendation_ids,
        covers=reader.covered,
        collapse_duplicates=reader.collapse,
        before_resolve=upsert_devices,
        source=source,
        problems=problems,
        progress=progress,
        user=user,
        copied_ahead=copied_ahead if copy_files else None,
    )
    _add_counts(summary, "exposures", counts)
    reader.finish_warnings()


def _create_named_recommendations(
    reader: ExposureReader, *, source: str, problems: Problems, warnings: list[str], summary: dict, user=None
) -> None:
    """Create the recommendations an assessment export names but the portal does not hold yet.

    Defender's exports are often imported before (or without) `/api/recommendations`: their rows
    say enough (product and vendor, or the configuration's name) to hold the recommendation, and a
    later recommendations import fills in the rest. Known recommendations are never touched here.
    A user who may not add recommendations gets "unknown recommendation" problems instead.
    """
    if not reader.recommendations:
        return
    if user is not None and not user.has_perm(perm.ADD_RECOMMENDATION):
        return
    named = list(reader.recommendations)
    known: set[str] = set()
    for start in range(0, len(named), INVENTORY_BATCH_SIZE):
        chunk = named[start : start + INVENTORY_BATCH_SIZE]
        known.update(SecurityRecommendation.objects.filter(external_id__in=chunk).values_list("external_id", flat=True))
    missing = [external_id for external_id in named if external_id not in known]
    if not missing:
        return
    counts = recommendations_upsert(
        records=reader.recommendation_records(missing), source=source, problems=problems, warnings=warnings
    )
    _add_counts(summary, "recommendations", counts)
    warnings.append(
        f"{source}: {len(missing)} recommendation(s) named only by the export were created from its rows "
        f"(first: {missing[0]!r}); import /api/recommendations for their severity and details"
    )


def _add_counts(summary: dict, key: str, counts: dict) -> None:
    """Two snapshots in one import (exposures and machineReferences) add up."""
    before = summary.get(key) or {}
    summary[key] = {k: before.get(k, 0) + counts.get(k, 0) for k in {*before, *counts}}


def _exposure_batches(files: list, *, problems: Problems, sources: list[str]) -> list[tuple[Iterable, None]]:
    batches = []
    for file in files:
        source = readers.source_name(file, "exposures")
        sources.append(source)
        if readers.sniff_is_json(file):
            records = readers.read_json_records(file, source=source, problems=problems)
        else:
            records = readers.ExposureCsvFile(file, source=source, problems=problems)
        batches.append((records, None))
    return batches


@_without_collector
def import_tvm_files(
    *,
    recommendations=None,
    machines=None,
    exposures=None,
    machine_references=None,
    recommendation: str | None = None,
    progress=None,
    user=None,
) -> dict:
    """Import Defender for Endpoint answers and exports (paths or binary files), all or nothing.

    `recommendations`: `/api/recommendations` (a list or one entity), `/api/machines/{id}/recommendations`;
    `machines`: `/api/machines` (a list or one entity); `exposures`: one file or a list of files
    making one snapshot: `recommendationId,machineId` pairs (JSON or CSV) or the assessment exports
    (JSON, JSON lines, gzipped or not); `machine_references` with `recommendation` (an external id):
    `/api/recommendations/{id}/machineReferences`, a snapshot for that recommendation.
    `progress(n)` is called as records are written. `user`: whose import it is (devices and
    exposures in their device groups only); None for an operator's command (full scope).
    Raises ImportRejected (nothing stored) listing every bad record.
    """
    problems = Problems()
    warnings: list[str] = []
    summary: dict = {"warnings": warnings}
    if (machine_references is None) != (recommendation is None):
        raise ValidationError(
            "machineReferences name the devices of one recommendation: give the file and the recommendation id.",
            field="recommendation",
        )
    # The files are read and checked before the transaction begins: while Python reads 100,000
    # machine records nothing is locked (other imports, and deletes of devices, go on). A CSV of
    # pairs is copied into PostgreSQL meanwhile, on the second core; the new devices are copied
    # once they are read. Each copy is a short transaction of its own.
    batches: list = []
    if exposures is not None:
        files = list(exposures) if isinstance(exposures, list | tuple) else [exposures]
        sources: list[str] = []
        batches = _exposure_batches(files, problems=problems, sources=sources)
        # Several files are one snapshot (Defender splits an export into part files); their
        # records are counted across the files, in the order given.
        exposures_source = sources[0] if len(sources) == 1 else f"exposures ({', '.join(sources)})"
    csv_files = [records for records, _ in batches if isinstance(records, readers.ExposureCsvFile)]
    copy_ahead = csv_files if csv_files and len(csv_files) == len(batches) and not problems else []
    with pairs_copied_ahead(copy_ahead) as copying:  # no database work until copying.result()
        checked = _read_and_check(recommendations, machines, problems=problems, warnings=warnings)
        if problems:  # rejected: the copy is of no use
            copying.stop()
        ahead = None if problems else copying.result()
        new_devices = checked["devices"][1] if "devices" in checked and not problems else CheckedRows()
        with new_devices_copied_ahead(new_devices), transaction.atomic():
            if exposures is not None or machine_references is not None:
                hold_snapshot_lock()  # before this transaction's first write
            if "recommendations" in checked:
                source, rows = checked["recommendations"]
                summary["recommendations"] = recommendations_upsert(
                    records=rows, source=source, problems=problems, warnings=warnings, progress=progress
                )
            if "devices" in checked:
                source, rows = checked.pop("devices")
                summary["devices"] = devices_upsert(
                    records=rows, source=source, problems=problems, warnings=warnings, progress=progress, user=user
                )
                rows.clear()  # 100,000 checked records leave memory before the snapshot, not after it
            if exposures is not None:
                exposures_import_defender(
                    batches=batches,
                    source=exposures_source,
                    problems=problems,
                    warnings=warnings,
                    summary=summary,
                    progress=progress,
                    user=user,
                    copied_ahead=ahead,
                )
            if machine_references is not None:
                source = readers.source_name(machine_references, "machine references")
                records = _open_records(machine_references, source=source, problems=problems, csv_required=("id",))
                exposures_import_defender(
                    batches=[(records, recommendation)],
                    source=source,
                    problems=problems,
                    warnings=warnings,
                    summary=summary,
                    recommendation_ids=[recommendation],
                    progress=progress,
                    user=user,
                )
            problems.raise_if_any()
    return import_totals(summary)


def _read_and_check(recommendations, machines, *, problems: Problems, warnings: list[str]) -> dict:
    """The recommendations and machines files read and checked (no database): {kind: (source, rows)}."""
    checked: dict[str, tuple[str, CheckedRows]] = {}
    if recommendations is not None:
        source = readers.source_name(recommendations, "recommendations")
        records = _open_records(
            recommendations, source=source, problems=problems, csv_required=("id", "recommendationName")
        )
        rows = check_recommendation_records(records=records, source=source, problems=problems, warnings=warnings)
        checked["recommendations"] = (source, rows)
    if machines is not None:
        source = readers.source_name(machines, "machines")
        records = _open_records(machines, source=source, problems=problems, csv_required=("id",))
        rows = check_device_records(records=records, source=source, problems=problems, warnings=warnings)
        checked["devices"] = (source, rows)
    return checked


INVENTORY_KINDS = ("device_groups", "devices", "recommendations", "exposures")


@_without_collector
def inventory_import_records(
    *, kind: str, records: Iterable, source: str, progress=None, problems: Problems | None = None, user=None
) -> dict:
    """Import one kind of records (admin files): device_groups, devices, recommendations or exposures.

    `problems` may carry what the file reader already found (malformed rows): the records are
    still checked so that every problem is listed, and nothing is imported. `user`: whose
    import it is (device groups, devices and exposures of their device groups only).
    """
    problems = problems if problems is not None else Problems()
    warnings: list[str] = []
    summary: dict = {"warnings": warnings}
    # As import_tvm_files: devices and recommendations are read and checked, and new devices
    # copied, before the transaction.
    if kind == "devices":
        records = check_device_records(records=records, source=source, problems=problems, warnings=warnings)
    elif kind == "recommendations":
        records = check_recommendation_records(records=records, source=source, problems=problems, warnings=warnings)
    new_devices = records if kind == "devices" and not problems else CheckedRows()
    with new_devices_copied_ahead(new_devices), transaction.atomic():
        if kind == "device_groups":
            summary["device_groups"] = device_groups_upsert(
                records=records, source=source, problems=problems, user=user
            )
        elif kind == "devices":
            summary["devices"] = devices_upsert(
                records=records, source=source, problems=problems, warnings=warnings, progress=progress, user=user
            )
        elif kind == "recommendations":
            summary["recommendations"] = recommendations_upsert(
                records=records, source=source, problems=problems, warnings=warnings, progress=progress
            )
        elif kind == "exposures":
            hold_snapshot_lock()
            exposures_import_defender(
                batches=[(records, None)],
                source=source,
                problems=problems,
                warnings=warnings,
                summary=summary,
                progress=progress,
                user=user,
            )
        else:
            raise ValidationError(f"Unknown import kind {kind!r}.", field="kind")
        problems.raise_if_any()
    return import_totals(summary)
