"""Exposure snapshots: the devices exposed now, for the recommendations a snapshot covers.

A staging table (COPY on PostgreSQL) plus a handful of UPDATE / INSERT ... SELECT statements;
all or nothing. After commit, `recommendations.signals.exposures_changed` announces which
recommendations changed so that higher apps (remediation's progress) can follow.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable

from django.db import connection, transaction
from django.utils import timezone

from ..imports import normalize
from ..imports.records import MAX_LISTED_PROBLEMS, Problems, Record
from ..models import Device, Exposure, SecurityRecommendation
from ..signals import exposures_changed_on_commit
from .counters import hold_snapshot_lock, quote_name
from .inventory import INVENTORY_BATCH_SIZE, tick
from .write_scope import writable_group_ids

SNAPSHOT_WORK_MEM = "256MB"


def _stage_pairs(cursor, items, *, source: str, problems: Problems, progress) -> int:
    """Load (position, line, recommendation id, machine id) into the temp table tvm_stage."""
    staged = 0

    def normalized():
        nonlocal staged
        for position, item in enumerate(items, 1):
            if isinstance(item, Record):
                row = normalize.normalize_exposure(item, source=source, problems=problems)
            elif len(item) == 2:
                row = normalize.normalize_exposure(
                    Record(position, None, {"recommendationId": item[0], "machineId": item[1]}),
                    source=source,
                    problems=problems,
                )
            else:
                row = item  # (position, line, recommendation id, machine id), already checked by the reader
            if row is not None:
                staged += 1
                if staged % INVENTORY_BATCH_SIZE == 0:
                    tick(progress, INVENTORY_BATCH_SIZE)
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
    tick(progress, staged % INVENTORY_BATCH_SIZE)
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
    problems: Problems | None = None,
    progress=None,
    now: dt.datetime | None = None,
    covers: Iterable[str] = (),
    collapse_duplicates: bool = False,
    before_resolve: Callable[[], None] | None = None,
    user=None,
) -> dict[str, int]:
    """Apply a snapshot of the devices exposed now, for the recommendations it names.

    `pairs`: (recommendation external id, machine id) tuples, `Record`s of
    `recommendationId`/`machineId`, or the checked (position, line, recommendation id,
    machine id) tuples of `readers.read_exposure_csv_pairs`.
    `recommendation_ids` (external ids) adds recommendations the snapshot covers even with no
    pair left (all their devices are then remediated); an unknown one is a problem. `covers` does
    the same for the ones the portal knows and ignores the others (a compliant configuration row
    names its recommendation without exposing a device); it is read after the pairs are staged.
    `collapse_duplicates`: a pair given several times is one exposure (Defender's assessment
    exports have a row per CVE, version and path), not a problem. `before_resolve` is called once
    the pairs are staged and before they are matched to recommendations and devices (the exports
    upsert the devices they name there).

    For the covered recommendations: a pair present is exposed (first_seen kept, last_seen =
    now; remediated_at cleared if it had been set: re-exposed); a pair exposed before and
    absent now gets remediated_at = now. The database keeps the exposed_devices counters and
    the per-device-group counters (RecommendationGroupExposure) in step, and after commit
    `exposures_changed` names the covered recommendations.
    `user`: whose snapshot it is. A user who does not see every device group reaches only the
    devices of their groups: other devices are unknown to the snapshot, and only exposures on
    their devices are remediated (so it never completes another group's activity). None
    (operator commands, the Defender sync): every device.
    Returns counts created / updated / remediated / re_exposed / recommendations.
    """
    own = problems is None
    problems = problems if problems is not None else Problems()
    now = now or timezone.now()
    counts = {"created": 0, "updated": 0, "remediated": 0, "re_exposed": 0, "recommendations": 0}
    E = quote_name(Exposure._meta.db_table)
    R = quote_name(SecurityRecommendation._meta.db_table)
    D = quote_name(Device._meta.db_table)
    postgres = connection.vendor == "postgresql"
    scope = writable_group_ids(user)
    # The devices the snapshot may reach: every one, or those of the user's device groups.
    # (Integer ids from the database, written inline: CREATE TABLE AS takes no bound parameters.)
    in_scope = ""
    if scope is not None:
        in_scope = (
            f" AND d.device_group_id IN ({', '.join(str(int(pk)) for pk in sorted(scope))})" if scope else " AND 1 = 0"
        )
    with connection.cursor() as cursor:
        if postgres:
            # One snapshot at a time: two concurrent imports would race on the same pairs (and
            # deletes of devices wait: the ids resolved below must still exist at commit).
            hold_snapshot_lock(cursor)
            # Room for the hash joins and aggregates of a million-row snapshot (this transaction only).
            cursor.execute("SELECT set_config('work_mem', %s, true)", [SNAPSHOT_WORK_MEM])
        _drop_temp_tables(cursor)
        temp = "TEMPORARY TABLE"
        cursor.execute(f"CREATE {temp} tvm_stage (pos bigint, line bigint, rec_ext varchar(255), machine varchar(64))")
        _stage_pairs(cursor, pairs, source=source, problems=problems, progress=progress)
        if before_resolve is not None:
            before_resolve()
        staged = "tvm_stage"
        if collapse_duplicates:  # one row a pair: its first position
            staged = (
                "(SELECT MIN(pos) AS pos, MIN(line) AS line, rec_ext, machine FROM tvm_stage GROUP BY rec_ext, machine)"
            )
        cursor.execute(
            # Resolve ids and find each pair's exposure row in one pass (hash joins on PostgreSQL).
            f"CREATE {temp} tvm_pairs AS SELECT s.pos, s.line, s.rec_ext, s.machine,"  # noqa: S608 (table names)
            " r.id AS rec_id, d.id AS dev_id, e.id AS exp_id,"
            f" CASE WHEN e.remediated_at IS NULL THEN 0 ELSE 1 END AS was_remediated FROM {staged} s"
            f" LEFT JOIN {R} r ON r.external_id = s.rec_ext LEFT JOIN {D} d ON d.machine_id = s.machine{in_scope}"
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
                [MAX_LISTED_PROBLEMS],
            )
            for pos, line, rec, machine, rec_id, dev_id in cursor.fetchall():
                reasons = []
                if rec_id is None:
                    reasons.append(f"unknown recommendation {rec!r}")
                if dev_id is None:
                    reasons.append(
                        f"unknown device {machine!r}" + ("" if scope is None else " (none in your device groups)")
                    )
                problems.add(source, pos, " and ".join(reasons), line)
            problems.count += max(0, unknown - MAX_LISTED_PROBLEMS)
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
        optional = sorted(set(covers) - set(extra))
        if extra or optional:
            known: dict[str, int] = {}
            wanted = extra + optional
            for start in range(0, len(wanted), INVENTORY_BATCH_SIZE):
                chunk = wanted[start : start + INVENTORY_BATCH_SIZE]
                known.update(
                    SecurityRecommendation.objects.filter(external_id__in=chunk).values_list("external_id", "pk")
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
            f" AND NOT EXISTS (SELECT 1 FROM tvm_pairs p WHERE p.exp_id = {E}.id)"
            + ("" if scope is None else f" AND device_id IN (SELECT d.id FROM {D} d WHERE 1 = 1{in_scope})"),  # noqa: S608 (table names, integer ids)
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
        # The stored counters followed each statement (database triggers, set-based on PostgreSQL).
        cursor.execute("SELECT rec_id FROM tvm_recs ORDER BY rec_id")
        touched = [r for (r,) in cursor.fetchall()]
        _drop_temp_tables(cursor)
    counts["recommendations"] = len(touched)
    if touched:
        exposures_changed_on_commit(touched)
    return counts
