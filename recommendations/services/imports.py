"""Imports of whole files: `manage.py import_tvm` and the admin's files, all or nothing."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from portal.errors import ValidationError

from ..imports import readers
from ..imports.records import Problems, storable_records
from .inventory import device_groups_upsert, devices_upsert, recommendations_upsert
from .snapshots import exposures_import_snapshot


def _open_records(file, *, source: str, problems: Problems, csv_required=()):
    if readers.sniff_is_json(file):
        records = readers.read_json_records(file, source=source, problems=problems)
    else:
        records = readers.read_csv_records(file, source=source, problems=problems, required=csv_required)
    return storable_records(records, source=source, problems=problems)


def import_summary_line(summary: dict) -> str:
    """`created 12, updated 3, remediated 2, re-exposed 1, rejected 0` (the command's last line)."""
    return (
        f"created {summary['created']}, updated {summary['updated']}, remediated {summary['remediated']}, "
        f"re-exposed {summary['re_exposed']}, rejected {summary['rejected']}"
    )


def _totals(summary: dict) -> dict:
    parts = [summary.get(k) or {} for k in ("device_groups", "devices", "recommendations", "exposures")]
    summary["created"] = sum(p.get("created", 0) for p in parts) + (summary.get("devices") or {}).get(
        "device_groups_created", 0
    )
    summary["updated"] = sum(p.get("updated", 0) for p in parts)
    summary["remediated"] = (summary.get("exposures") or {}).get("remediated", 0)
    summary["re_exposed"] = (summary.get("exposures") or {}).get("re_exposed", 0)
    summary.setdefault("rejected", 0)
    return summary


def import_tvm_files(*, recommendations=None, machines=None, exposures=None, progress=None, user=None) -> dict:
    """Import Defender for Endpoint exports (paths or binary files), all or nothing.

    `recommendations`: the `/api/recommendations` response; `machines`: `/api/machines`;
    `exposures`: JSON or CSV of recommendationId, machineId (a snapshot, see
    exposures_import_snapshot). `progress(n)` is called as records are written.
    `user`: whose import it is (devices and exposures in their device groups only); None for
    an operator's command (full scope).
    Raises ImportRejected (nothing stored) listing every bad record.
    """
    problems = Problems()
    warnings: list[str] = []
    summary: dict = {"warnings": warnings}
    with transaction.atomic():
        if recommendations is not None:
            source = readers.source_name(recommendations, "recommendations")
            records = _open_records(
                recommendations, source=source, problems=problems, csv_required=("id", "recommendationName")
            )
            summary["recommendations"] = recommendations_upsert(
                records=records, source=source, problems=problems, warnings=warnings, progress=progress
            )
        if machines is not None:
            source = readers.source_name(machines, "machines")
            records = _open_records(machines, source=source, problems=problems, csv_required=("id",))
            summary["devices"] = devices_upsert(
                records=records, source=source, problems=problems, progress=progress, user=user
            )
        if exposures is not None:
            source = readers.source_name(exposures, "exposures")
            if readers.sniff_is_json(exposures):
                records = readers.read_json_records(exposures, source=source, problems=problems)
            else:
                records = readers.read_exposure_csv_pairs(exposures, source=source, problems=problems)
            summary["exposures"] = exposures_import_snapshot(
                pairs=storable_records(records, source=source, problems=problems),
                source=source,
                problems=problems,
                progress=progress,
                user=user,
            )
        problems.raise_if_any()
    return _totals(summary)


INVENTORY_KINDS = ("device_groups", "devices", "recommendations", "exposures")


def inventory_import_records(
    *, kind: str, records: Iterable, source: str, progress=None, problems: Problems | None = None, user=None
) -> dict:
    """Import one kind of records (admin files): device_groups, devices, recommendations or exposures.

    `problems` may carry what the file reader already found (malformed rows): the records are
    still checked so that every problem is listed, and nothing is imported. `user`: whose
    import it is (device groups, devices and exposures of their device groups only).
    """
    problems = problems if problems is not None else Problems()
    records = storable_records(records, source=source, problems=problems)
    warnings: list[str] = []
    summary: dict = {"warnings": warnings}
    with transaction.atomic():
        if kind == "device_groups":
            summary["device_groups"] = device_groups_upsert(
                records=records, source=source, problems=problems, user=user
            )
        elif kind == "devices":
            summary["devices"] = devices_upsert(
                records=records, source=source, problems=problems, progress=progress, user=user
            )
        elif kind == "recommendations":
            summary["recommendations"] = recommendations_upsert(
                records=records, source=source, problems=problems, warnings=warnings, progress=progress
            )
        elif kind == "exposures":
            summary["exposures"] = exposures_import_snapshot(
                pairs=records, source=source, problems=problems, progress=progress, user=user
            )
        else:
            raise ValidationError(f"Unknown import kind {kind!r}.", field="kind")
        problems.raise_if_any()
    return _totals(summary)
