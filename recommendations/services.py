"""Every write to device groups, devices, recommendations, exposures and exceptions.

Two sections: the inventory (imports, exposure snapshots) and the exceptions. Each function
is keyword-only, typed, atomic, and raises portal.errors.ApplicationError when a rule forbids it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

from django.db import connection, transaction
from django.utils import timezone

from portal.errors import ConflictError, PermissionError_, ValidationError

from . import importers
from . import models as inventory_models
from .models import (
    DeviceGroup,
    ExceptionDeviceGroup,
    ExceptionEvent,
    RecommendationException,
    SecurityRecommendation,
)
from .selectors import (
    device_group_ids_for_user,
    exception_group_ids_in_use,
    has_active_global_exception,
    user_sees_all_device_groups,
)

logger = logging.getLogger(__name__)

# --- Inventory: device groups, devices, recommendations, exposures --------------------
#
# Imports are atomic: every record is checked (required fields, types, duplicate ids,
# unknown recommendations and devices) and, when any record is bad, nothing is written and
# `importers.ImportRejected` lists each bad record with its position. Writes are set-based:
# INSERT ... ON CONFLICT in batches for upserts, and a staging table (COPY on PostgreSQL)
# plus a handful of UPDATE/INSERT ... SELECT statements for exposure snapshots.

INVENTORY_BATCH_SIZE = 5000
_LOOKUP_CHUNK = 2000
SNAPSHOT_WORK_MEM = "256MB"


def _as_records(items: Iterable) -> Iterable[importers.Record]:
    for position, item in enumerate(items, 1):
        yield item if isinstance(item, importers.Record) else importers.Record(position, None, dict(item))


def _tick(progress, n: int) -> None:
    if progress is not None and n:
        progress(n)


def _check_duplicates(
    rows: list[tuple[importers.Record, dict]], key: str, label: str, source: str, problems: importers.Problems
) -> list[tuple[importers.Record, dict]]:
    """Rows with a key seen before are problems (naming where it was first seen)."""
    first: dict[str, importers.Record] = {}
    unique = []
    for record, values in rows:
        value = values[key]
        if value in first:
            seen = first[value]
            problems.add(
                source, record.position, f"duplicate {label} {value!r} (first at record {seen.position})", record.line
            )
            continue
        first[value] = record
        unique.append((record, values))
    return unique


def _existing(model, key: str, keys: list[str], fields: list[str]) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for start in range(0, len(keys), _LOOKUP_CHUNK):
        chunk = keys[start : start + _LOOKUP_CHUNK]
        for row in model.objects.filter(**{f"{key}__in": chunk}).values(key, *fields):
            found[row[key]] = row
    return found


def _upsert(
    model, *, key: str, fields: list[str], rows: list[dict], progress=None, changed: tuple[str, set] | None = None
) -> dict[str, int]:
    """Insert or update `rows` by `key` with INSERT ... ON CONFLICT, in batches.

    A row that omits a field keeps the stored value (or the model default when new).
    Returns counts created / updated (something changed) / unchanged. `changed`
    (field, set): the keys of existing rows whose `field` changes are added to the set.
    """
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    defaults = {f: model._meta.get_field(f).get_default() for f in fields}
    for start in range(0, len(rows), INVENTORY_BATCH_SIZE):  # one batch in memory at a time
        chunk = rows[start : start + INVENTORY_BATCH_SIZE]
        existing = _existing(model, key, [r[key] for r in chunk], fields)
        objs = []
        for values in chunk:
            before = existing.get(values[key])
            merged = {**(before or defaults), **values}
            if before is None:
                counts["created"] += 1
            elif any(merged[f] != before[f] for f in fields):
                counts["updated"] += 1
                if changed is not None and merged[changed[0]] != before[changed[0]]:
                    changed[1].add(values[key])
            else:
                counts["unchanged"] += 1
                continue
            objs.append(model(**{key: values[key], **{f: merged[f] for f in fields}}))
        if objs:
            model.objects.bulk_create(objs, update_conflicts=True, unique_fields=[key], update_fields=fields)
        _tick(progress, len(chunk))
    return counts


def _normalized(records, normalize, *, problems, **kwargs) -> list[tuple[importers.Record, dict]]:
    rows = []
    for record in _as_records(records):
        values = normalize(record, problems=problems, **kwargs)
        if values is not None:
            # Keep where the record was, not its raw fields (memory of big files).
            rows.append((importers.Record(record.position, record.line, _NO_DATA), values))
    return rows


_NO_DATA: dict = {}


@transaction.atomic
def device_groups_upsert(
    *, records: Iterable, source: str = "device groups", problems: importers.Problems | None = None
) -> dict[str, int]:
    """Create or update device groups by name (description). Raises ImportRejected on bad records."""
    own = problems is None
    problems = problems if problems is not None else importers.Problems()
    rows = _normalized(records, importers.normalize_device_group, problems=problems, source=source)
    rows = _check_duplicates(rows, "name", "device group", source, problems)
    if own:
        problems.raise_if_any()
    values = [v for _, v in rows]
    if not values:
        return {"created": 0, "updated": 0, "unchanged": 0}
    # A row without a description keeps the stored one: upsert the two shapes separately.
    with_description = [v for v in values if "description" in v]
    without = [v for v in values if "description" not in v]
    counts = _upsert(inventory_models.DeviceGroup, key="name", fields=["description"], rows=with_description)
    created = _device_groups_ensure({v["name"] for v in without})
    counts["created"] += created
    counts["unchanged"] += len(without) - created
    return counts


def _device_groups_ensure(names: set[str]) -> int:
    """Create the missing groups among `names`; returns how many were created."""
    if not names:
        return 0
    existing = set(_existing(inventory_models.DeviceGroup, "name", sorted(names), []))
    missing = sorted(names - existing)
    inventory_models.DeviceGroup.objects.bulk_create(
        [inventory_models.DeviceGroup(name=n) for n in missing],
        batch_size=INVENTORY_BATCH_SIZE,
        ignore_conflicts=True,
    )
    return len(missing)


DEVICE_UPDATE_FIELDS = ["computer_dns_name", "os_platform", "device_group_id", "aad_device_id", "last_seen"]
RECOMMENDATION_UPDATE_FIELDS = [
    "name",
    "product_name",
    "vendor",
    "related_component",
    "category",
    "remediation_type",
    "severity_score",
    "exposure_impact",
    "config_score_impact",
    "public_exploit",
    "active_alert",
    "weaknesses",
    "recommended_version",
    "recommended_program",
    "recommended_vendor",
]


@transaction.atomic
def devices_upsert(
    *,
    records: Iterable,
    source: str = "machines",
    problems: importers.Problems | None = None,
    progress=None,
) -> dict[str, int]:
    """Create or update devices by machine id (Defender's `/api/machines` records).

    `rbacGroupName` names the device group, created when missing; a device without one goes
    to UnassignedGroup. Counts: created, updated, unchanged, device_groups_created.
    """
    own = problems is None
    problems = problems if problems is not None else importers.Problems()
    rows = _normalized(records, importers.normalize_device, problems=problems, source=source)
    rows = _check_duplicates(rows, "machine_id", "device id", source, problems)
    if own:
        problems.raise_if_any()
    # A record without a group column keeps the device's group; a new device goes to UnassignedGroup.
    ungrouped = [v["machine_id"] for _, v in rows if "device_group" not in v]
    known = set(_existing(inventory_models.Device, "machine_id", ungrouped, [])) if ungrouped else set()
    for _, v in rows:
        if "device_group" not in v and v["machine_id"] not in known:
            v["device_group"] = inventory_models.UNASSIGNED_GROUP_NAME
    names = {v["device_group"] for _, v in rows if "device_group" in v}
    groups_created = _device_groups_ensure(names)
    group_ids = dict(inventory_models.DeviceGroup.objects.filter(name__in=names).values_list("name", "pk"))
    values = []
    for _, v in rows:
        v = dict(v)
        if "device_group" in v:
            v["device_group_id"] = group_ids[v.pop("device_group")]
        values.append(v)
    moved: set[str] = set()
    counts = _upsert(
        inventory_models.Device,
        key="machine_id",
        fields=DEVICE_UPDATE_FIELDS,
        rows=values,
        progress=progress,
        changed=("device_group_id", moved),
    )
    if moved:
        # Their exposures now count in other groups: one rebuild of the per-group counters.
        device_group_exposures_refresh()
    counts["device_groups_created"] = groups_created
    return counts


@transaction.atomic
def recommendations_upsert(
    *,
    records: Iterable,
    source: str = "recommendations",
    problems: importers.Problems | None = None,
    warnings: list[str] | None = None,
    progress=None,
) -> dict[str, int]:
    """Create or update security recommendations by id (Defender's `/api/recommendations` records).

    Defender's recommendationCategory / remediationType are mapped onto the model's choices;
    an unknown value falls back to a sensible choice and is reported in `warnings`.
    """
    own = problems is None
    problems = problems if problems is not None else importers.Problems()
    warnings = warnings if warnings is not None else []
    rows = _normalized(records, importers.normalize_recommendation, problems=problems, source=source, warnings=warnings)
    rows = _check_duplicates(rows, "external_id", "recommendation id", source, problems)
    if own:
        problems.raise_if_any()
    return _upsert(
        inventory_models.SecurityRecommendation,
        key="external_id",
        fields=RECOMMENDATION_UPDATE_FIELDS,
        rows=[v for _, v in rows],
        progress=progress,
    )


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _stage_pairs(cursor, items, *, source: str, problems: importers.Problems, progress) -> int:
    """Load (position, line, recommendation id, machine id) into the temp table tvm_stage."""
    staged = 0

    def normalized():
        nonlocal staged
        for position, item in enumerate(items, 1):
            if isinstance(item, importers.Record):
                row = importers.normalize_exposure(item, source=source, problems=problems)
            elif len(item) == 2:
                row = importers.normalize_exposure(
                    importers.Record(position, None, {"recommendationId": item[0], "machineId": item[1]}),
                    source=source,
                    problems=problems,
                )
            else:
                row = item  # (position, line, recommendation id, machine id), already checked by the reader
            if row is not None:
                staged += 1
                if staged % INVENTORY_BATCH_SIZE == 0:
                    _tick(progress, INVENTORY_BATCH_SIZE)
                yield row

    if connection.vendor == "postgresql":
        with cursor.cursor.copy("COPY tvm_stage (pos, line, rec_ext, machine) FROM STDIN") as copy:
            for row in normalized():
                copy.write_row(row)
    else:
        batch = []
        sql = "INSERT INTO tvm_stage (pos, line, rec_ext, machine) VALUES (%s, %s, %s, %s)"
        for row in normalized():
            batch.append(row)
            if len(batch) >= INVENTORY_BATCH_SIZE:
                cursor.executemany(sql, batch)
                batch = []
        if batch:
            cursor.executemany(sql, batch)
    _tick(progress, staged % INVENTORY_BATCH_SIZE)
    return staged


def _drop_temp_tables(cursor) -> None:
    for table in ("tvm_stage", "tvm_pairs", "tvm_recs"):
        cursor.execute(f"DROP TABLE IF EXISTS {table}")


@transaction.atomic
def exposures_import_snapshot(
    *,
    pairs: Iterable,
    recommendation_ids: Iterable[str] | None = None,
    source: str = "exposures",
    problems: importers.Problems | None = None,
    progress=None,
    now: dt.datetime | None = None,
) -> dict[str, int]:
    """Apply a snapshot of the devices exposed now, for the recommendations it names.

    `pairs`: (recommendation external id, machine id) tuples, `importers.Record`s of
    `recommendationId`/`machineId`, or the checked (position, line, recommendation id,
    machine id) tuples of `importers.read_exposure_csv_pairs`.
    `recommendation_ids` (external ids) adds recommendations the snapshot covers even with no
    pair left (all their devices are then remediated).

    For the covered recommendations: a pair present is exposed (first_seen kept, last_seen =
    now; remediated_at cleared if it had been set: re-exposed); a pair exposed before and
    absent now gets remediated_at = now. The recommendations' exposed_devices counters and
    their per-device-group counters (RecommendationGroupExposure) are recounted, and after
    commit the activities' progress is refreshed (auto-completion).
    Returns counts created / updated / remediated / re_exposed / recommendations.
    """
    own = problems is None
    problems = problems if problems is not None else importers.Problems()
    now = now or timezone.now()
    counts = {"created": 0, "updated": 0, "remediated": 0, "re_exposed": 0, "recommendations": 0}
    E = _q(inventory_models.Exposure._meta.db_table)
    R = _q(inventory_models.SecurityRecommendation._meta.db_table)
    D = _q(inventory_models.Device._meta.db_table)
    postgres = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        if postgres:
            # One snapshot at a time: two concurrent imports would race on the same pairs.
            cursor.execute("SELECT pg_advisory_xact_lock(7007)")
            # Room for the hash joins and aggregates of a million-row snapshot (this transaction only).
            cursor.execute("SELECT set_config('work_mem', %s, true)", [SNAPSHOT_WORK_MEM])
        _drop_temp_tables(cursor)
        temp = "TEMPORARY TABLE"
        cursor.execute(f"CREATE {temp} tvm_stage (pos bigint, line bigint, rec_ext varchar(255), machine varchar(64))")
        _stage_pairs(cursor, pairs, source=source, problems=problems, progress=progress)
        cursor.execute(
            # Resolve ids and find each pair's exposure row in one pass (hash joins on PostgreSQL).
            f"CREATE {temp} tvm_pairs AS SELECT s.pos, s.line, s.rec_ext, s.machine,"  # noqa: S608 (table names)
            " r.id AS rec_id, d.id AS dev_id, e.id AS exp_id,"
            " CASE WHEN e.remediated_at IS NULL THEN 0 ELSE 1 END AS was_remediated FROM tvm_stage s"
            f" LEFT JOIN {R} r ON r.external_id = s.rec_ext LEFT JOIN {D} d ON d.machine_id = s.machine"
            f" LEFT JOIN {E} e ON e.recommendation_id = r.id AND e.device_id = d.id"
        )
        cursor.execute("DROP TABLE tvm_stage")

        # Unknown recommendations and devices, duplicate pairs: every one is a problem.
        cursor.execute("SELECT COUNT(*) FROM tvm_pairs WHERE rec_id IS NULL OR dev_id IS NULL")
        unknown = cursor.fetchone()[0]
        if unknown:
            cursor.execute(
                "SELECT pos, line, rec_ext, machine, rec_id, dev_id FROM tvm_pairs"
                " WHERE rec_id IS NULL OR dev_id IS NULL ORDER BY pos LIMIT %s",
                [importers.MAX_LISTED_PROBLEMS],
            )
            for pos, line, rec, machine, rec_id, dev_id in cursor.fetchall():
                reasons = []
                if rec_id is None:
                    reasons.append(f"unknown recommendation {rec!r}")
                if dev_id is None:
                    reasons.append(f"unknown device {machine!r}")
                problems.add(source, pos, " and ".join(reasons), line)
            problems.count += max(0, unknown - importers.MAX_LISTED_PROBLEMS)
        cursor.execute(
            "SELECT p.pos, p.line, p.rec_ext, p.machine, f.first_pos FROM tvm_pairs p JOIN"
            " (SELECT rec_ext, machine, MIN(pos) AS first_pos FROM tvm_pairs GROUP BY rec_ext, machine"
            "  HAVING COUNT(*) > 1) f ON f.rec_ext = p.rec_ext AND f.machine = p.machine"
            " WHERE p.pos > f.first_pos ORDER BY p.pos"
        )
        for pos, line, rec, machine, first_pos in cursor.fetchall():
            problems.add(source, pos, f"duplicate pair {rec!r}, {machine!r} (first at record {first_pos})", line)

        cursor.execute(f"CREATE {temp} tvm_recs (rec_id bigint PRIMARY KEY)")
        cursor.execute("INSERT INTO tvm_recs (rec_id) SELECT DISTINCT rec_id FROM tvm_pairs WHERE rec_id IS NOT NULL")
        extra = sorted(set(recommendation_ids or ()))
        if extra:
            known = dict(
                inventory_models.SecurityRecommendation.objects.filter(external_id__in=extra).values_list(
                    "external_id", "pk"
                )
            )
            for external_id in extra:
                if external_id not in known:
                    problems.add(source, None, f"unknown recommendation {external_id!r}")
            cursor.execute("SELECT rec_id FROM tvm_recs")
            present = {r for (r,) in cursor.fetchall()}
            rows = [(pk,) for pk in known.values() if pk not in present]
            if rows:
                cursor.executemany("INSERT INTO tvm_recs (rec_id) VALUES (%s)", rows)

        if problems:
            _drop_temp_tables(cursor)
            if own:
                problems.raise_if_any()
            return counts

        cursor.execute("CREATE INDEX tvm_pairs_exp ON tvm_pairs (exp_id)")
        if postgres:
            cursor.execute("ANALYZE tvm_pairs")
            cursor.execute("ANALYZE tvm_recs")
        at = connection.ops.adapt_datetimefield_value(now)
        # Still exposed: last seen now (rows found by primary key).
        cursor.execute(
            f"UPDATE {E} SET last_seen = %s FROM tvm_pairs p WHERE {E}.id = p.exp_id AND p.was_remediated = 0",  # noqa: S608
            [at],
        )
        counts["updated"] = cursor.rowcount
        # Back after a remediation: exposed again (first seen kept).
        cursor.execute(
            f"UPDATE {E} SET last_seen = %s, remediated_at = NULL FROM tvm_pairs p"  # noqa: S608
            f" WHERE {E}.id = p.exp_id AND p.was_remediated = 1",
            [at],
        )
        counts["re_exposed"] = cursor.rowcount
        # Exposed before, absent from the snapshot: remediated now.
        cursor.execute(
            f"UPDATE {E} SET remediated_at = %s WHERE remediated_at IS NULL"  # noqa: S608
            " AND recommendation_id IN (SELECT rec_id FROM tvm_recs)"
            f" AND NOT EXISTS (SELECT 1 FROM tvm_pairs p WHERE p.exp_id = {E}.id)",
            [at],
        )
        counts["remediated"] = cursor.rowcount
        # New pairs (the advisory lock keeps a concurrent import from inserting them first).
        cursor.execute(
            f"INSERT INTO {E} (recommendation_id, device_id, first_seen, last_seen, remediated_at)"  # noqa: S608
            " SELECT p.rec_id, p.dev_id, %s, %s, NULL FROM tvm_pairs p WHERE p.exp_id IS NULL",
            [at, at],
        )
        counts["created"] = cursor.rowcount
        # Stored counters of the covered recommendations: one grouped pass.
        cursor.execute(
            f"UPDATE {R} SET exposed_devices = c.n FROM (SELECT t.rec_id, COUNT(e.id) AS n FROM tvm_recs t"  # noqa: S608
            f" LEFT JOIN {E} e ON e.recommendation_id = t.rec_id AND e.remediated_at IS NULL GROUP BY t.rec_id) c"
            f" WHERE {R}.id = c.rec_id"
        )
        _rebuild_group_exposures(cursor, where="recommendation_id IN (SELECT rec_id FROM tvm_recs)")
        cursor.execute("SELECT rec_id FROM tvm_recs ORDER BY rec_id")
        touched = [r for (r,) in cursor.fetchall()]
        _drop_temp_tables(cursor)
    counts["recommendations"] = len(touched)
    if touched:
        transaction.on_commit(lambda: _queue_activity_refresh(touched))
    return counts


def _queue_activity_refresh(recommendation_ids: list[int]) -> None:
    from remediation.tasks import refresh_activity_progress

    refresh_activity_progress.delay(recommendation_ids)


GROUP_EXPOSURE_LOCK = 7008  # advisory lock key (7007 serializes exposure snapshots)


def _rebuild_group_exposures(cursor, *, where: str = "", params: Iterable = ()) -> None:
    """Rebuild RecommendationGroupExposure rows: DELETE then one grouped INSERT ... SELECT.

    `where` selects the recommendations by a condition on `recommendation_id` (with `params`);
    empty rebuilds every recommendation's rows.
    """
    G = _q(inventory_models.RecommendationGroupExposure._meta.db_table)
    E = _q(inventory_models.Exposure._meta.db_table)
    D = _q(inventory_models.Device._meta.db_table)
    params = list(params)
    if connection.vendor == "postgresql":
        # One rebuild at a time: two concurrent DELETE + INSERT would collide on the unique pair.
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [GROUP_EXPOSURE_LOCK])
    cursor.execute(f"DELETE FROM {G}" + (f" WHERE {where}" if where else ""), params)  # noqa: S608
    cursor.execute(
        f"INSERT INTO {G} (recommendation_id, device_group_id, exposed_devices)"  # noqa: S608 (table names)
        f" SELECT e.recommendation_id, d.device_group_id, COUNT(*) FROM {E} e JOIN {D} d ON d.id = e.device_id"
        " WHERE e.remediated_at IS NULL"
        + (f" AND e.{where}" if where else "")
        + " GROUP BY e.recommendation_id, d.device_group_id",
        params,
    )


@transaction.atomic
def recommendations_refresh_exposed_devices(*, recommendation_ids: Iterable[int] | None = None) -> int:
    """Recount the stored exposure counters (all recommendations when None).

    SecurityRecommendation.exposed_devices (open exposures) and the per-device-group rows of
    RecommendationGroupExposure (open exposures of the devices now in each group), set-based:
    a few statements per chunk of ids, never a query per recommendation. Call it after any
    write to exposures outside the snapshot import, or after devices move between groups.
    Returns the number of recommendations recounted.
    """
    E = _q(inventory_models.Exposure._meta.db_table)
    R = _q(inventory_models.SecurityRecommendation._meta.db_table)
    sql = (
        f"UPDATE {R} SET exposed_devices = (SELECT COUNT(*) FROM {E} e"  # noqa: S608
        f" WHERE e.recommendation_id = {R}.id AND e.remediated_at IS NULL)"
    )
    with connection.cursor() as cursor:
        if recommendation_ids is None:
            cursor.execute(sql)
            total = cursor.rowcount
            _rebuild_group_exposures(cursor)
            return total
        ids = sorted({int(pk) for pk in recommendation_ids})
        total = 0
        for start in range(0, len(ids), _LOOKUP_CHUNK):
            chunk = ids[start : start + _LOOKUP_CHUNK]
            placeholders = ", ".join(["%s"] * len(chunk))
            cursor.execute(sql + f" WHERE id IN ({placeholders})", chunk)
            total += cursor.rowcount
            _rebuild_group_exposures(cursor, where=f"recommendation_id IN ({placeholders})", params=chunk)
        return total


@transaction.atomic
def device_group_exposures_refresh() -> None:
    """Rebuild every per-device-group exposure counter (after devices moved between groups).

    Moving a device changes no recommendation's total, only how it splits over the groups.
    """
    with connection.cursor() as cursor:
        _rebuild_group_exposures(cursor)


def _open_records(file, *, source: str, problems: importers.Problems, csv_required=()):
    if importers.sniff_is_json(file):
        return importers.read_json_records(file, source=source, problems=problems)
    return importers.read_csv_records(file, source=source, problems=problems, required=csv_required)


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


def import_tvm_files(*, recommendations=None, machines=None, exposures=None, progress=None) -> dict:
    """Import Defender for Endpoint exports (paths or binary files), all or nothing.

    `recommendations`: the `/api/recommendations` response; `machines`: `/api/machines`;
    `exposures`: JSON or CSV of recommendationId, machineId (a snapshot, see
    exposures_import_snapshot). `progress(n)` is called as records are written.
    Raises importers.ImportRejected (nothing stored) listing every bad record.
    """
    problems = importers.Problems()
    warnings: list[str] = []
    summary: dict = {"warnings": warnings}
    with transaction.atomic():
        if recommendations is not None:
            source = importers.source_name(recommendations, "recommendations")
            records = _open_records(
                recommendations, source=source, problems=problems, csv_required=("id", "recommendationName")
            )
            summary["recommendations"] = recommendations_upsert(
                records=records, source=source, problems=problems, warnings=warnings, progress=progress
            )
        if machines is not None:
            source = importers.source_name(machines, "machines")
            records = _open_records(machines, source=source, problems=problems, csv_required=("id",))
            summary["devices"] = devices_upsert(records=records, source=source, problems=problems, progress=progress)
        if exposures is not None:
            source = importers.source_name(exposures, "exposures")
            if importers.sniff_is_json(exposures):
                records = importers.read_json_records(exposures, source=source, problems=problems)
            else:
                records = importers.read_exposure_csv_pairs(exposures, source=source, problems=problems)
            summary["exposures"] = exposures_import_snapshot(
                pairs=records, source=source, problems=problems, progress=progress
            )
        problems.raise_if_any()
    return _totals(summary)


INVENTORY_KINDS = ("device_groups", "devices", "recommendations", "exposures")


def inventory_import_records(
    *, kind: str, records: Iterable, source: str, progress=None, problems: importers.Problems | None = None
) -> dict:
    """Import one kind of records (admin files): device_groups, devices, recommendations or exposures.

    `problems` may carry what the file reader already found (malformed rows): the records are
    still checked so that every problem is listed, and nothing is imported.
    """
    problems = problems if problems is not None else importers.Problems()
    warnings: list[str] = []
    summary: dict = {"warnings": warnings}
    with transaction.atomic():
        if kind == "device_groups":
            summary["device_groups"] = device_groups_upsert(records=records, source=source, problems=problems)
        elif kind == "devices":
            summary["devices"] = devices_upsert(records=records, source=source, problems=problems, progress=progress)
        elif kind == "recommendations":
            summary["recommendations"] = recommendations_upsert(
                records=records, source=source, problems=problems, warnings=warnings, progress=progress
            )
        elif kind == "exposures":
            summary["exposures"] = exposures_import_snapshot(
                pairs=records, source=source, problems=problems, progress=progress
            )
        else:
            raise ValidationError(f"Unknown import kind {kind!r}.", field="kind")
        problems.raise_if_any()
    return _totals(summary)


# Background imports started from the admin (large files): an ImportJob per file.


def _job_progress_key(job_id: int) -> str:
    return f"recommendations:import-job:{job_id}:processed"


@transaction.atomic
def import_job_create(*, kind: str, file, original_name: str, total: int, user=None) -> inventory_models.ImportJob:
    """Record an uploaded file and queue its import (after commit)."""
    if kind not in INVENTORY_KINDS:
        raise ValidationError(f"Unknown import kind {kind!r}.", field="kind")
    job = inventory_models.ImportJob.objects.create(
        kind=kind, file=file, original_name=original_name[:255], total=total, created_by=user
    )
    job_id = job.pk
    transaction.on_commit(lambda: _queue_import_job(job_id))
    return job


def _queue_import_job(job_id: int) -> None:
    from .tasks import run_import_job

    run_import_job.delay(job_id)


def import_job_progress(*, job: inventory_models.ImportJob) -> tuple[int, int]:
    """(rows processed, total rows); live from the cache while the job runs."""
    from django.core.cache import cache

    if job.status == inventory_models.ImportJob.Status.RUNNING:
        return min(int(cache.get(_job_progress_key(job.pk), job.processed)), job.total), job.total
    return job.processed, job.total


def import_job_run(*, job_id: int) -> inventory_models.ImportJob | None:
    """Run a queued import job (idempotent: a finished job is left alone).

    The import itself is one transaction; progress goes to the cache (other connections
    cannot see uncommitted rows), the outcome to the job.
    """
    from django.core.cache import cache

    from .resources import UnreadableFile, read_dataset, resource_for_kind

    Status = inventory_models.ImportJob.Status
    job = inventory_models.ImportJob.objects.filter(pk=job_id).first()
    if job is None or job.status in (Status.SUCCEEDED, Status.FAILED):
        return job
    inventory_models.ImportJob.objects.filter(pk=job.pk).update(status=Status.RUNNING, processed=0)
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

    try:
        with job.file.open("rb") as fh:
            content = fh.read()
        dataset = read_dataset(content, name=job.original_name or job.file.name)
        resource = resource_for_kind(job.kind)()
        records, problems = resource.records(dataset)
        summary = inventory_import_records(
            kind=job.kind,
            records=records,
            source=job.original_name or job.kind,
            progress=progress,
            problems=problems,
        )
    except importers.ImportRejected as exc:
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


# --- Exceptions ------------------------------------------------------------------------

EXCEPTION_SYSTEM_LABEL = "System"


def _exception_actor_label(user) -> str:
    if user is None:
        return EXCEPTION_SYSTEM_LABEL
    return user.email or user.get_username()


def _exception_event(exception: RecommendationException, *, kind: str, user=None, notes: str = "") -> ExceptionEvent:
    return ExceptionEvent.objects.create(
        exception=exception, kind=kind, actor=user, actor_label=_exception_actor_label(user), notes=notes
    )


def _require_handle_exceptions(user, action: str) -> None:
    if not (user.is_active and user.has_perm("recommendations.handle_exceptions")):
        raise PermissionError_(f"Only security staff can {action} exceptions.")


@transaction.atomic
def exception_create(
    *,
    user,
    recommendation: SecurityRecommendation,
    justification: str,
    context: str,
    expires_on: dt.date | None,
    scope: str,
    device_groups: Iterable[DeviceGroup] = (),
) -> RecommendationException:
    """File an exception: the covered devices are not targeted by new activities until it ends.

    Rules: permission `handle_exceptions`; context required; `expires_on` after today; a global
    scope only for superusers (and one global exception in force at a time); device-group scope
    needs at least one group the user may see, none of them already covered by an active
    device-group exception for this recommendation.
    """
    _require_handle_exceptions(user, "create")
    device_groups = list(dict.fromkeys(device_groups))  # keeps order, drops repeats
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    if justification not in RecommendationException.Justification.values:
        add(
            "justification",
            f'"{justification}" is not a justification; choose one of '
            + ", ".join(RecommendationException.Justification.values)
            + ".",
        )
    context = (context or "").strip()
    if not context:
        add("context", "Explain the exception: the context is required.")
    today = timezone.localdate()
    if expires_on is None:
        add("expires_on", "An expiry date is required.")
    elif expires_on <= today:
        add("expires_on", "The expiry date must be after today.")

    # Lock the recommendation so two concurrent requests cannot cover one group twice.
    SecurityRecommendation.objects.select_for_update().filter(pk=recommendation.pk).first()
    if scope == RecommendationException.Scope.GLOBAL:
        if not user.is_superuser:
            raise PermissionError_("Only superusers can file a global exception.")
        if device_groups:
            add("device_groups", "A global exception covers every device group; do not name groups.")
        if has_active_global_exception(recommendation=recommendation):
            add("scope", "A global exception is already active for this recommendation.")
    elif scope == RecommendationException.Scope.DEVICE_GROUPS:
        if not device_groups:
            add("device_groups", "Select at least one device group.")
        else:
            if not user_sees_all_device_groups(user):
                visible = set(device_group_ids_for_user(user=user).values_list("pk", flat=True))
                hidden = sorted(g.name for g in device_groups if g.pk not in visible)
                if hidden:
                    add(
                        "device_groups",
                        "You may not file exceptions for these device groups: " + ", ".join(hidden) + ".",
                    )
            in_use = exception_group_ids_in_use(recommendation=recommendation)
            taken = sorted(g.name for g in device_groups if g.pk in in_use)
            if taken:
                add(
                    "device_groups",
                    "These device groups already have an active exception for this "
                    "recommendation: " + ", ".join(taken) + ".",
                )
    else:
        add("scope", f'"{scope}" is not a scope; choose "global" or "device_groups".')

    if errors:
        raise ValidationError(errors=errors)

    exception = RecommendationException.objects.create(
        recommendation=recommendation,
        justification=justification,
        context=context,
        expires_on=expires_on,
        scope=scope,
        created_by=user,
    )
    if scope == RecommendationException.Scope.DEVICE_GROUPS:
        ExceptionDeviceGroup.objects.bulk_create(
            [ExceptionDeviceGroup(exception=exception, device_group=g) for g in device_groups]
        )
        notes = "Device groups: " + ", ".join(sorted(g.name for g in device_groups))
    else:
        notes = "Global: every device group, current and future."
    _exception_event(exception, kind=ExceptionEvent.Kind.CREATED, user=user, notes=notes)
    logger.info("Exception %s filed for %s by %s", exception.pk, recommendation.external_id, user)
    return exception


@transaction.atomic
def exception_cancel(
    *, exception: RecommendationException, user, device_group: DeviceGroup | None = None
) -> RecommendationException:
    """Cancel an exception for all its groups, or for one group (device-group scope only).

    A global exception is canceled whole. Canceling the last active group cancels the exception.
    Canceled or expired exceptions cannot be canceled again (409).
    """
    _require_handle_exceptions(user, "cancel")
    exception = RecommendationException.objects.select_for_update().get(pk=exception.pk)
    if exception.status != RecommendationException.Status.ACTIVE:
        raise ConflictError(f"This exception is already {exception.status}; it cannot be canceled.")
    now = timezone.now()
    links = ExceptionDeviceGroup.objects.filter(
        exception=exception, status=ExceptionDeviceGroup.Status.ACTIVE
    ).select_related("device_group")
    sees_all = user_sees_all_device_groups(user)
    visible = None if sees_all else set(device_group_ids_for_user(user=user).values_list("pk", flat=True))

    if device_group is not None:
        if exception.scope == RecommendationException.Scope.GLOBAL:
            raise ValidationError(
                "A global exception covers every device group; it can only be canceled whole.",
                field="device_group",
            )
        if visible is not None and device_group.pk not in visible:
            raise ValidationError(
                f'You may not cancel the exception for device group "{device_group.name}".', field="device_group"
            )
        link = ExceptionDeviceGroup.objects.filter(exception=exception, device_group=device_group).first()
        if link is None:
            raise ValidationError(
                f'This exception does not cover device group "{device_group.name}".', field="device_group"
            )
        if link.status != ExceptionDeviceGroup.Status.ACTIVE:
            raise ConflictError(f'The exception is already canceled for device group "{device_group.name}".')
        link.status = ExceptionDeviceGroup.Status.CANCELED
        link.canceled_by = user
        link.canceled_at = now
        link.save(update_fields=["status", "canceled_by", "canceled_at"])
        _exception_event(
            exception, kind=ExceptionEvent.Kind.GROUP_CANCELED, user=user, notes=f"Device group: {device_group.name}"
        )
        if not links.exists():
            exception.status = RecommendationException.Status.CANCELED
            exception.canceled_by = user
            exception.canceled_at = now
            exception.save(update_fields=["status", "canceled_by", "canceled_at"])
            _exception_event(
                exception,
                kind=ExceptionEvent.Kind.CANCELED,
                user=user,
                notes="Its last device group was canceled.",
            )
        return exception

    if exception.scope == RecommendationException.Scope.GLOBAL and not sees_all:
        raise PermissionError_("Only people who see every device group can cancel a global exception.")
    active_links = list(links)
    if visible is not None:
        hidden = sorted(link.device_group.name for link in active_links if link.device_group_id not in visible)
        if hidden:
            raise PermissionError_(
                "This exception also covers device groups outside your scope ("
                + ", ".join(hidden)
                + "); cancel your groups one by one."
            )
    ExceptionDeviceGroup.objects.filter(pk__in=[link.pk for link in active_links]).update(
        status=ExceptionDeviceGroup.Status.CANCELED, canceled_by=user, canceled_at=now
    )
    exception.status = RecommendationException.Status.CANCELED
    exception.canceled_by = user
    exception.canceled_at = now
    exception.save(update_fields=["status", "canceled_by", "canceled_at"])
    if exception.scope == RecommendationException.Scope.GLOBAL:
        notes = "Global exception canceled."
    else:
        notes = "Device groups: " + ", ".join(sorted(link.device_group.name for link in active_links))
    _exception_event(exception, kind=ExceptionEvent.Kind.CANCELED, user=user, notes=notes)
    return exception


def exceptions_expire(*, today: dt.date | None = None) -> int:
    """Move active exceptions whose last day (expires_on) has passed to `expired`.

    Runs the day after `expires_on` (the hourly job); writes an `expired` event per exception;
    safe to run twice (a second run finds nothing). Returns how many it expired.
    """
    today = today or timezone.localdate()
    expired = 0
    due = RecommendationException.objects.filter(
        status=RecommendationException.Status.ACTIVE, expires_on__lt=today
    ).order_by("pk")
    for pk in list(due.values_list("pk", flat=True)):
        with transaction.atomic():
            exception = (
                RecommendationException.objects.select_for_update()
                .filter(pk=pk, status=RecommendationException.Status.ACTIVE, expires_on__lt=today)
                .first()
            )
            if exception is None:  # canceled or expired meanwhile
                continue
            exception.status = RecommendationException.Status.EXPIRED
            exception.expired_at = timezone.now()
            exception.save(update_fields=["status", "expired_at"])
            _exception_event(
                exception, kind=ExceptionEvent.Kind.EXPIRED, notes=f"Ended on {exception.expires_on.isoformat()}."
            )
            expired += 1
    if expired:
        logger.info("Expired %s exception(s).", expired)
    return expired
