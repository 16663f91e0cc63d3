"""Exposure snapshots: the devices exposed now, for the recommendations a snapshot covers.

A staging table (COPY on PostgreSQL) plus a handful of UPDATE / INSERT ... SELECT statements;
all or nothing. After commit, `recommendations.signals.exposures_changed` announces which
recommendations changed so that higher apps (remediation's progress) can follow.

On PostgreSQL a CSV file of pairs is first copied into the staging table as it is (the
database parses it, at COPY's own speed). That lane only ever accepts: when the copy is
refused, or the pairs name an unknown recommendation or device or repeat a pair, everything it
did is rolled back to a savepoint and the file is read again by the Python reader, which finds
and words every problem as it always has. An import may copy its files before its transaction
begins (`pair_copies.pairs_copied_ahead`); the snapshot's transaction, which holds the snapshot
lock, then takes the copied rows as they are. Into an empty exposure table (a first import)
the copied pairs go with one INSERT ... SELECT that resolves their ids on its way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from contextlib import nullcontext

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from ..imports import normalize
from ..imports.records import MAX_LISTED_PROBLEMS, Problems, Record
from ..models import Device, Exposure, SecurityRecommendation
from ..signals import exposures_changed_on_commit
from .bulk import indexes_built_after
from .counters import counted_after_first_insert, hold_snapshot_lock, no_exposure_stored, quote_name, temp_table
from .inventory import INVENTORY_BATCH_SIZE, tick
from .pair_copies import COPIED_AHEAD, STAGE_COLUMNS, CopiedAhead, NotPlain, stage_by_copy
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
    for table in ("tvm_stage", "tvm_pairs", "tvm_recs", "tvm_gone"):
        cursor.execute(f"DROP TABLE IF EXISTS {temp_table(table)}")


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
    copy_files: list | None = None,
    copied_ahead: CopiedAhead | None = None,
) -> dict[str, int]:
    """Apply a snapshot of the devices exposed now, for the recommendations it names.

    `pairs`: (recommendation external id, machine id) tuples, `Record`s of
    `recommendationId`/`machineId`, or the checked (position, line, recommendation id,
    machine id) tuples of `readers.read_exposure_csv_pairs`.
    `copy_files`: the `readers.ExposureCsvFile`s that `pairs` reads, when the snapshot is only
    those: PostgreSQL may copy them as they are instead (see the module's docstring).
    `copied_ahead`: what `pairs_copied_ahead` did with those files, when the caller copied them
    before this transaction.
    `recommendation_ids` (external ids) adds recommendations the snapshot covers even with no
    pair left (all their devices are then remediated); an unknown one is a problem. `covers` does
    the same for the ones the portal knows and ignores the others (a compliant configuration row
    names its recommendation without exposing a device); it is read after the pairs are staged.
    `collapse_duplicates`: a pair given several times is one exposure (Defender's assessment
    exports have a row per CVE, version and path), not a problem. `before_resolve` is called once
    the pairs are staged and before they are matched to recommendations and devices (the exports
    upsert the devices they name there).

    For the covered recommendations: a pair present is exposed (first_seen kept, reported now:
    `Exposure.last_reported`; remediated_at cleared if it had been set: re-exposed); a pair
    exposed before and absent now gets remediated_at = now. A full snapshot (user None) stores
    "reported now" once per recommendation (`exposures_reported_at`) instead of rewriting the
    last_seen of every unchanged pair. The database keeps the exposed_devices counters and
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
    recommendation_ids = sorted(set(recommendation_ids or ()))
    postgres = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        if postgres:
            # One snapshot at a time: two concurrent imports would race on the same pairs (and
            # deletes of devices wait: the ids resolved below must still exist at commit).
            hold_snapshot_lock(cursor)
            # Room for the hash joins and aggregates of a million-row snapshot (this transaction only).
            cursor.execute("SELECT set_config('work_mem', %s, true)", [SNAPSHOT_WORK_MEM])
        snapshot = _Snapshot(
            cursor,
            source=source,
            problems=problems,
            progress=progress,
            now=now,
            user=user,
            recommendation_ids=recommendation_ids,
            covers=covers,
            collapse_duplicates=collapse_duplicates,
            before_resolve=before_resolve,
        )
        # The copy lane only when it cannot hide anything: a repeated new pair is found at its
        # INSERT, which problems of other files would keep from running.
        plain = postgres and bool(copy_files) and not recommendation_ids and not collapse_duplicates and not problems
        if copied_ahead is not None and copied_ahead.rows is None:  # PostgreSQL refused them already
            plain = False
        if plain and all(f.copy_columns() for f in copy_files):
            try:
                with transaction.atomic():  # everything the copy lane did goes if it meets a problem
                    counts = snapshot.run(copied=copy_files, ahead=copied_ahead)
                tick(progress, snapshot.copied_rows)
            except NotPlain:
                counts = snapshot.run(pairs=pairs)
        else:
            counts = snapshot.run(pairs=pairs)
        _drop_temp_tables(cursor)
    if counts is None:  # problems (listed in `problems`)
        if own:
            problems.raise_if_any()
        return {"created": 0, "updated": 0, "remediated": 0, "re_exposed": 0, "recommendations": 0}
    if counts["touched"]:
        exposures_changed_on_commit(counts["touched"])
    counts["recommendations"] = len(counts.pop("touched"))
    return counts


class _Snapshot:
    """One attempt at a snapshot: stage the pairs, resolve them, check them, apply them."""

    def __init__(self, cursor, *, source, problems, progress, now, user, recommendation_ids, covers, **options):
        self.cursor, self.source, self.problems, self.progress, self.now = cursor, source, problems, progress, now
        self.recommendation_ids = recommendation_ids
        self.covers = covers  # filled while the pairs are read: read after staging
        self.collapse_duplicates = options["collapse_duplicates"]
        self.before_resolve = options["before_resolve"]
        self.postgres = connection.vendor == "postgresql"
        self.copied_rows = 0
        self.copied_recommendations: tuple[str, ...] | None = None  # named by pairs copied ahead
        self.scope = writable_group_ids(user)
        # The devices the snapshot may reach: every one, or those of the user's device groups.
        # (Integer ids from the database, written inline: CREATE TABLE AS takes no bound parameters.)
        self.in_scope = ""
        if self.scope is not None:
            ids = ", ".join(str(int(pk)) for pk in sorted(self.scope))
            self.in_scope = f" AND d.device_group_id IN ({ids})" if ids else " AND 1 = 0"

    def run(self, *, pairs: Iterable = (), copied: list | None = None, ahead: CopiedAhead | None = None) -> dict | None:
        """The counts (with `touched`: the covered recommendations), or None with problems listed.

        `copied`: the CSV files to copy as they are; raises NotPlain when they need the Python
        reader. `ahead`: they were copied already (`pairs_copied_ahead`).
        """
        cursor = self.cursor
        E = quote_name(Exposure._meta.db_table)
        R = quote_name(SecurityRecommendation._meta.db_table)
        D = quote_name(Device._meta.db_table)
        _drop_temp_tables(cursor)
        if ahead is not None:  # its table becomes the staging table (a rollback gives it back its name)
            cursor.execute(f"ALTER TABLE {temp_table(COPIED_AHEAD)} RENAME TO tvm_stage")
            self.copied_rows = ahead.rows  # progress counted once it is applied
            self.copied_recommendations = ahead.recommendations
        else:
            position = "pos bigint GENERATED BY DEFAULT AS IDENTITY" if self.postgres else "pos bigint"
            cursor.execute(f"CREATE TEMPORARY TABLE tvm_stage ({position}, {STAGE_COLUMNS})")
            if copied is not None:
                self.copied_rows = stage_by_copy(cursor, copied)
            else:
                _stage_pairs(cursor, pairs, source=self.source, problems=self.problems, progress=self.progress)
        if self.before_resolve is not None:
            self.before_resolve()
        if copied is not None and no_exposure_stored(cursor):
            return self._first_snapshot()
        staged = "tvm_stage"
        if self.collapse_duplicates:  # one row a pair: its first position
            staged = (
                "(SELECT MIN(pos) AS pos, MIN(line) AS line, rec_ext, machine FROM tvm_stage GROUP BY rec_ext, machine)"
            )
        # Where each pair was and what it said are only read to word problems, which the copied
        # lane leaves to the Python reader: it carries ids only (a third of the rows' bytes).
        described = "" if copied is not None else "s.pos, s.line, s.rec_ext, s.machine, "
        cursor.execute(
            # Resolve ids and find each pair's exposure row in one pass (hash joins on PostgreSQL).
            f"CREATE TEMPORARY TABLE tvm_pairs AS SELECT {described}"  # noqa: S608 (table names)
            "r.id AS rec_id, d.id AS dev_id, e.id AS exp_id,"
            f" CASE WHEN e.remediated_at IS NULL THEN 0 ELSE 1 END AS was_remediated FROM {staged} s"
            f" LEFT JOIN {R} r ON r.external_id = s.rec_ext LEFT JOIN {D} d ON d.machine_id = s.machine{self.in_scope}"
            f" LEFT JOIN {E} e ON e.recommendation_id = r.id AND e.device_id = d.id"
        )
        cursor.execute("DROP TABLE tvm_stage")
        cursor.execute(
            "SELECT COALESCE(SUM(CASE WHEN rec_id IS NULL OR dev_id IS NULL THEN 1 ELSE 0 END), 0), COUNT(exp_id),"
            " COALESCE(SUM(CASE WHEN exp_id IS NOT NULL AND was_remediated = 0 THEN 1 ELSE 0 END), 0), COUNT(*)"
            " FROM tvm_pairs"
        )
        unknown, matched, still_open, paired = cursor.fetchone()
        if copied is not None:
            if unknown or (matched and self._repeats_stored_pair()):
                raise NotPlain
            # A pair repeated among the new ones meets the unique pair at the INSERT below.
        else:
            self._report_unknown(unknown)
            self._report_duplicates()
        touched = self._covered()
        if self.problems:
            return None
        counts = self._apply(matched=matched, still_open=still_open, new=paired - matched, copied=copied is not None)
        counts["touched"] = touched
        return counts

    def _first_snapshot(self) -> dict:
        """The copied pairs into an empty exposure table: one INSERT ... SELECT that resolves the
        ids on its way, with no table of resolved pairs between (nothing is stored to match them
        with, nothing to remediate). Raises NotPlain when a pair names an unknown recommendation
        or device (fewer rows than were copied) or is repeated (the unique pair refuses it).
        """
        cursor = self.cursor
        E = quote_name(Exposure._meta.db_table)
        R = quote_name(SecurityRecommendation._meta.db_table)
        D = quote_name(Device._meta.db_table)
        at = connection.ops.adapt_datetimefield_value(self.now)
        insert = (
            f"INSERT INTO {E} (recommendation_id, device_id, first_seen, last_seen, remediated_at)"  # noqa: S608
            f" SELECT r.id, d.id, %s, %s, NULL FROM tvm_stage s JOIN {R} r ON r.external_id = s.rec_ext"
            f" JOIN {D} d ON d.machine_id = s.machine{self.in_scope}"
        )
        try:
            with (
                transaction.atomic(),
                indexes_built_after(cursor, Exposure._meta.db_table, rows=self.copied_rows) as bulk,
                counted_after_first_insert(cursor) if bulk else nullcontext(),
            ):
                cursor.execute(insert, [at, at])
                created = cursor.rowcount
                if created != self.copied_rows:
                    raise NotPlain
        except IntegrityError as exc:
            raise NotPlain from exc
        # The recommendations its pairs name (each one known: the INSERT found every pair); listed
        # while the pairs were copied ahead, outside this transaction, if they were.
        if self.copied_recommendations is not None:
            names = "(SELECT unnest(%s::text[]))"
            named = f"SELECT id FROM {R} WHERE external_id IN {names}"  # noqa: S608 (a table name)
            touched = self._covered(named, [list(self.copied_recommendations)])
        else:
            names = "(SELECT DISTINCT rec_ext FROM tvm_stage)"
            touched = self._covered(f"SELECT id FROM {R} WHERE external_id IN {names}")  # noqa: S608
        cursor.execute("DROP TABLE tvm_stage")
        if self.problems:  # a recommendation the snapshot names and the portal does not know
            return None
        self._reported_now(at)
        return {"created": created, "updated": 0, "remediated": 0, "re_exposed": 0, "touched": touched}

    def _reported_now(self, at) -> None:
        """A full snapshot (no user scope) says once per covered recommendation that every open
        exposure of it was reported now, instead of rewriting each unchanged row's last_seen."""
        if self.scope is None:
            R = quote_name(SecurityRecommendation._meta.db_table)
            self.cursor.execute(
                f"UPDATE {R} SET exposures_reported_at = %s WHERE id IN (SELECT rec_id FROM tvm_recs)",  # noqa: S608
                [at],
            )

    def _repeats_stored_pair(self) -> bool:
        """Whether a stored pair is named twice: the unique index `_apply` needs refuses to be built."""
        try:
            with transaction.atomic():
                self.cursor.execute("CREATE UNIQUE INDEX tvm_pairs_exp ON tvm_pairs (exp_id)")
        except IntegrityError:
            return True
        return False

    def _report_unknown(self, unknown: int) -> None:
        """Unknown recommendations and devices: every one is a problem."""
        if not unknown:
            return
        self.cursor.execute(
            "SELECT pos, line, rec_ext, machine, rec_id, dev_id FROM tvm_pairs"
            " WHERE rec_id IS NULL OR dev_id IS NULL ORDER BY pos LIMIT %s",
            [MAX_LISTED_PROBLEMS],
        )
        for pos, line, rec, machine, rec_id, dev_id in self.cursor.fetchall():
            reasons = []
            if rec_id is None:
                reasons.append(f"unknown recommendation {rec!r}")
            if dev_id is None:
                reasons.append(
                    f"unknown device {machine!r}" + ("" if self.scope is None else " (none in your device groups)")
                )
            self.problems.add(self.source, pos, " and ".join(reasons), line)
        self.problems.count += max(0, unknown - MAX_LISTED_PROBLEMS)

    def _report_duplicates(self) -> None:
        self.cursor.execute(
            "SELECT p.pos, p.line, p.rec_ext, p.machine, f.first_pos FROM tvm_pairs p JOIN"
            " (SELECT rec_ext, machine, MIN(pos) AS first_pos FROM tvm_pairs GROUP BY rec_ext, machine"
            "  HAVING COUNT(*) > 1) f ON f.rec_ext = p.rec_ext AND f.machine = p.machine"
            " WHERE p.pos > f.first_pos ORDER BY p.pos"
        )
        for pos, line, rec, machine, first_pos in self.cursor.fetchall():
            self.problems.add(
                self.source, pos, f"duplicate pair {rec!r}, {machine!r} (first at record {first_pos})", line
            )

    def _covered(
        self, named: str = "SELECT DISTINCT rec_id FROM tvm_pairs WHERE rec_id IS NOT NULL", params=()
    ) -> list[int]:
        """Fill tvm_recs with the recommendations the snapshot covers; their ids, in order.

        `named` (with `params`): the query of the ids of the recommendations its pairs name.
        """
        cursor = self.cursor
        cursor.execute("CREATE TEMPORARY TABLE tvm_recs (rec_id bigint PRIMARY KEY)")
        cursor.execute(f"INSERT INTO tvm_recs (rec_id) {named}", list(params))
        extra = self.recommendation_ids
        optional = sorted(set(self.covers) - set(extra))
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
                    self.problems.add(self.source, None, f"unknown recommendation {external_id!r}")
            cursor.execute("SELECT rec_id FROM tvm_recs")
            present = {r for (r,) in cursor.fetchall()}
            rows = [(pk,) for pk in known.values() if pk not in present]
            if rows:
                cursor.executemany("INSERT INTO tvm_recs (rec_id) VALUES (%s)", rows)
        cursor.execute("SELECT rec_id FROM tvm_recs ORDER BY rec_id")
        return [r for (r,) in cursor.fetchall()]

    def _apply(self, *, matched: int, still_open: int, new: int, copied: bool) -> dict[str, int]:
        cursor = self.cursor
        E = quote_name(Exposure._meta.db_table)
        R = quote_name(SecurityRecommendation._meta.db_table)
        D = quote_name(Device._meta.db_table)
        counts = {"created": 0, "updated": 0, "remediated": 0, "re_exposed": 0}
        at = connection.ops.adapt_datetimefield_value(self.now)
        if self.postgres:
            cursor.execute("ANALYZE tvm_recs")
        if matched:
            if not copied:  # the copied lane built it while looking for repeated pairs
                cursor.execute("CREATE INDEX tvm_pairs_exp ON tvm_pairs (exp_id)")
            if self.postgres:
                cursor.execute("ANALYZE tvm_pairs")
            # Still exposed: reported now. A full snapshot says so once per recommendation (below),
            # not on each of its (often a million) unchanged rows; a scoped one reaches only some
            # devices of a recommendation, so it writes their rows (found by primary key).
            counts["updated"] = still_open
            if self.scope is not None:
                cursor.execute(
                    f"UPDATE {E} SET last_seen = %s FROM tvm_pairs p WHERE {E}.id = p.exp_id AND p.was_remediated = 0",  # noqa: S608
                    [at],
                )
            # Back after a remediation: exposed again (first seen kept).
            cursor.execute(
                f"UPDATE {E} SET last_seen = %s, remediated_at = NULL FROM tvm_pairs p"  # noqa: S608
                f" WHERE {E}.id = p.exp_id AND p.was_remediated = 1",
                [at],
            )
            counts["re_exposed"] = cursor.rowcount
        # Exposed before, absent from the snapshot: remediated now. The ids are worked out first,
        # as a set difference into a table of their own: planned on an exposure table whose
        # statistics lag a big import, a NOT EXISTS ran as a nested loop for minutes.
        in_scope = (
            "" if self.scope is None else f" AND e.device_id IN (SELECT d.id FROM {D} d WHERE 1 = 1{self.in_scope})"  # noqa: S608
        )
        open_covered = (
            f"SELECT e.id FROM {E} e JOIN tvm_recs t ON t.rec_id = e.recommendation_id"  # noqa: S608 (names, integer ids)
            f" WHERE e.remediated_at IS NULL{in_scope}"
        )
        stayed = " EXCEPT SELECT exp_id FROM tvm_pairs WHERE exp_id IS NOT NULL" if matched else ""
        cursor.execute(f"CREATE TEMPORARY TABLE tvm_gone AS {open_covered}{stayed}")
        cursor.execute("CREATE UNIQUE INDEX tvm_gone_id ON tvm_gone (id)")
        if self.postgres:
            cursor.execute("ANALYZE tvm_gone")
        # It keeps the time it was last reported (its recommendation's last full snapshot, if later).
        cursor.execute(
            f"UPDATE {E} SET remediated_at = %s, last_seen = COALESCE((SELECT r.exposures_reported_at FROM {R} r"  # noqa: S608
            f" WHERE r.id = {E}.recommendation_id AND r.exposures_reported_at > {E}.last_seen), last_seen)"
            f" WHERE id IN (SELECT id FROM tvm_gone)",
            [at],
        )
        counts["remediated"] = cursor.rowcount
        # New pairs, in the file's order (the advisory lock keeps a concurrent import from inserting
        # them first). Sorting them by the unique pair measured slower: the device index then
        # takes them at random. As many as are stored already or more (a first import): the
        # exposure table's indexes are built after them (bulk.py).
        insert = (
            f"INSERT INTO {E} (recommendation_id, device_id, first_seen, last_seen, remediated_at)"  # noqa: S608
            " SELECT p.rec_id, p.dev_id, %s, %s, NULL FROM tvm_pairs p WHERE p.exp_id IS NULL"
        )
        try:
            with transaction.atomic(), indexes_built_after(cursor, Exposure._meta.db_table, rows=new):
                cursor.execute(insert, [at, at])
                counts["created"] = cursor.rowcount
        except IntegrityError as exc:  # a pair repeated in the copied file: the Python reader says where
            if copied:
                raise NotPlain from exc
            raise
        self._reported_now(at)
        # The stored counters followed each statement (database triggers, set-based on PostgreSQL).
        return counts
