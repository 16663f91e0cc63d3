"""The stored exposure counters: `SecurityRecommendation.exposed_devices` and the per-device-group
rows of `RecommendationGroupExposure`.

The database keeps them: triggers created by migration 0006 follow every write to `Exposure`
rows and every move of a `Device` between groups, whatever path writes them (services, admin,
scripts); a first import's bulk insert into the empty table adds the same counts itself
(`counted_after_first_insert`). Here too: the check that finds drift (a TRUNCATE, a trigger
dropped by hand) and the set-based recount that repairs it, run nightly by `recount_exposures`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.db import DatabaseError, connection, transaction

from ..models import Device, Exposure, RecommendationGroupExposure, SecurityRecommendation

logger = logging.getLogger(__name__)

LOOKUP_CHUNK = 2000


def quote_name(name: str) -> str:
    return connection.ops.quote_name(name)


GROUP_EXPOSURE_LOCK = 7008  # advisory lock key (7007 serializes exposure snapshots)
SNAPSHOT_LOCK = 7007


def temp_table(name: str) -> str:
    """`name` in the session's own schema of temporary tables (never a permanent table of that name)."""
    return f"{'pg_temp' if connection.vendor == 'postgresql' else 'temp'}.{name}"


def drop_temp_table_quietly(cursor, name: str) -> None:
    """Drop the session's temporary table `name` on the way out of an import, whatever happened.

    In a savepoint, so that a failure cannot abort a caller's transaction; a failure is ignored
    (a broken connection or transaction: the session's temporary tables go with the session).
    """
    try:
        with transaction.atomic():
            cursor.execute(f"DROP TABLE IF EXISTS {temp_table(name)}")
    except DatabaseError:
        pass


def hold_snapshot_lock(cursor=None) -> None:
    """Wait for any exposure snapshot to commit and keep others out until this transaction ends.

    Exposures hold no database foreign keys (migration 0011): a snapshot resolves its device ids
    by a join, so a delete of devices must not land between that join and the snapshot's commit.
    Every transaction that runs a snapshot takes it before its first write (the imports upsert
    devices first), and so does a delete of devices: both take their locks in the same order.
    PostgreSQL only; SQLite writes one transaction at a time. `cursor`: the caller's, else one of its own.
    """
    if connection.vendor != "postgresql":
        return
    if cursor is None:
        with connection.cursor() as own:
            own.execute("SELECT pg_advisory_xact_lock(%s)", [SNAPSHOT_LOCK])
    else:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SNAPSHOT_LOCK])


def no_exposure_stored(cursor) -> bool:
    """Whether the exposure table is empty (a first import): then every pair a snapshot names is new."""
    cursor.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {quote_name(Exposure._meta.db_table)})")  # noqa: S608
    return cursor.fetchone()[0]


# The statement-level trigger that counts inserted exposures (migration 0006).
EXPOSURE_INSERT_TRIGGER = "rp_exposure_counters_insert"


@contextmanager
def counted_after_first_insert(cursor) -> Iterator[bool]:
    """Count the exposures the body inserts into an empty exposure table in one grouped pass after it.

    For a bulk insert under the table's exclusive lock (bulk.indexes_built_after), inside a
    transaction: the insert trigger is off for the body, which spares it holding a million new
    rows in a transition table only to group them; the counters then add what the table holds,
    which is exactly what the body inserted. If the body fails, the caller's rollback turns the
    trigger back on. Yields whether it does so: not when an exposure is stored already (the
    trigger counts as usual).
    """
    E = quote_name(Exposure._meta.db_table)
    if not no_exposure_stored(cursor):
        yield False
        return
    cursor.execute(f"ALTER TABLE {E} DISABLE TRIGGER {EXPOSURE_INSERT_TRIGGER}")
    yield True
    cursor.execute(f"ALTER TABLE {E} ENABLE TRIGGER {EXPOSURE_INSERT_TRIGGER}")
    R = quote_name(SecurityRecommendation._meta.db_table)
    D = quote_name(Device._meta.db_table)
    G = quote_name(RecommendationGroupExposure._meta.db_table)
    # What the trigger adds for the same rows: open exposures per (recommendation, device group).
    cursor.execute(
        f"WITH by_group AS MATERIALIZED (SELECT e.recommendation_id AS rec, d.device_group_id AS grp,"  # noqa: S608
        f" COUNT(*) AS n FROM {E} e JOIN {D} d ON d.id = e.device_id WHERE e.remediated_at IS NULL GROUP BY 1, 2),"
        f" totals AS (UPDATE {R} r SET exposed_devices = r.exposed_devices + t.n"
        " FROM (SELECT rec, SUM(n) AS n FROM by_group GROUP BY rec) t WHERE r.id = t.rec RETURNING 1)"
        f" INSERT INTO {G} (recommendation_id, device_group_id, exposed_devices) SELECT rec, grp, n FROM by_group"
        " ON CONFLICT (recommendation_id, device_group_id)"
        f" DO UPDATE SET exposed_devices = {G}.exposed_devices + EXCLUDED.exposed_devices"
    )


def exposures_delete_orphans() -> int:
    """Delete exposures whose device or recommendation is gone (a raw DELETE bypasses the cascade)."""
    E = quote_name(Exposure._meta.db_table)
    R = quote_name(SecurityRecommendation._meta.db_table)
    D = quote_name(Device._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {E} WHERE NOT EXISTS (SELECT 1 FROM {D} d WHERE d.id = {E}.device_id)"  # noqa: S608
            f" OR NOT EXISTS (SELECT 1 FROM {R} r WHERE r.id = {E}.recommendation_id)"
        )
        return cursor.rowcount


def rebuild_group_exposures(cursor, *, where: str = "", params: Iterable = ()) -> None:
    """Rebuild RecommendationGroupExposure rows: DELETE then one grouped INSERT ... SELECT.

    `where` selects the recommendations by a condition on `recommendation_id` (with `params`);
    empty rebuilds every recommendation's rows.
    """
    G = quote_name(RecommendationGroupExposure._meta.db_table)
    E = quote_name(Exposure._meta.db_table)
    D = quote_name(Device._meta.db_table)
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
    """Recount the stored exposure counters from the exposures (all recommendations when None).

    SecurityRecommendation.exposed_devices (open exposures) and the per-device-group rows of
    RecommendationGroupExposure (open exposures of the devices now in each group), set-based:
    a few statements per chunk of ids, never a query per recommendation. The triggers keep
    the counters right on every write; this repairs them (exposure_counters_check). On
    PostgreSQL writes to exposures and devices wait until it commits, so no write lands
    between the count and the stored result. Returns the number of recommendations recounted.
    """
    E = quote_name(Exposure._meta.db_table)
    R = quote_name(SecurityRecommendation._meta.db_table)
    sql = (
        f"UPDATE {R} SET exposed_devices = (SELECT COUNT(*) FROM {E} e"  # noqa: S608
        f" WHERE e.recommendation_id = {R}.id AND e.remediated_at IS NULL)"
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # SHARE blocks INSERT/UPDATE/DELETE (and so the triggers) until this commits.
            cursor.execute(
                f"LOCK TABLE {quote_name(Exposure._meta.db_table)}, {quote_name(Device._meta.db_table)} IN SHARE MODE"
            )
        if recommendation_ids is None:
            cursor.execute(sql)
            total = cursor.rowcount
            rebuild_group_exposures(cursor)
            return total
        ids = sorted({int(pk) for pk in recommendation_ids})
        total = 0
        for start in range(0, len(ids), LOOKUP_CHUNK):
            chunk = ids[start : start + LOOKUP_CHUNK]
            placeholders = ", ".join(["%s"] * len(chunk))
            cursor.execute(sql + f" WHERE id IN ({placeholders})", chunk)
            total += cursor.rowcount
            rebuild_group_exposures(cursor, where=f"recommendation_id IN ({placeholders})", params=chunk)
        return total


MAX_LOGGED_DRIFT = 20


def _drifted_recommendation_ids(cursor) -> list[int]:
    """Recommendations whose stored counters differ from their exposures (one grouped query each)."""
    E = quote_name(Exposure._meta.db_table)
    R = quote_name(SecurityRecommendation._meta.db_table)
    D = quote_name(Device._meta.db_table)
    G = quote_name(RecommendationGroupExposure._meta.db_table)
    cursor.execute(
        f"SELECT r.id FROM {R} r LEFT JOIN (SELECT recommendation_id, COUNT(*) AS n FROM {E}"  # noqa: S608
        " WHERE remediated_at IS NULL GROUP BY recommendation_id) c ON c.recommendation_id = r.id"
        " WHERE r.exposed_devices <> COALESCE(c.n, 0)"
    )
    drifted = {pk for (pk,) in cursor.fetchall()}
    # Stored minus counted per (recommendation, group): a row stored as 0 equals no row.
    cursor.execute(
        f"SELECT rec FROM (SELECT recommendation_id AS rec, device_group_id AS grp, exposed_devices AS n FROM {G}"  # noqa: S608
        f" UNION ALL SELECT e.recommendation_id, d.device_group_id, -COUNT(*) FROM {E} e JOIN {D} d"
        " ON d.id = e.device_id WHERE e.remediated_at IS NULL GROUP BY e.recommendation_id, d.device_group_id) x"
        " GROUP BY rec, grp HAVING SUM(n) <> 0"
    )
    drifted.update(pk for (pk,) in cursor.fetchall())
    return sorted(drifted)


def exposure_counters_check(*, repair: bool = True) -> dict:
    """Find stored exposure counters that differ from the exposures; log and (by default) repair them.

    The nightly `recount_exposures` job and command. Returns {"checked": recommendations,
    "drifted": their number, "external_ids": the first few, "repaired": bool}.
    """
    orphans = exposures_delete_orphans() if repair else 0
    if orphans:
        logger.warning("Deleted %s exposure(s) of devices or recommendations that no longer exist.", orphans)
    with connection.cursor() as cursor:
        drifted = _drifted_recommendation_ids(cursor)
    checked = SecurityRecommendation.objects.count()
    names = list(
        SecurityRecommendation.objects.filter(pk__in=drifted[:MAX_LOGGED_DRIFT])
        .order_by("external_id")
        .values_list("external_id", flat=True)
    )
    result = {
        "checked": checked,
        "drifted": len(drifted),
        "external_ids": names,
        "repaired": False,
        "orphans_deleted": orphans,
    }
    if not drifted:
        logger.info("Exposure counters checked: %s recommendation(s), no drift.", checked)
        return result
    more = f" and {len(drifted) - len(names)} more" if len(drifted) > len(names) else ""
    if repair:
        recommendations_refresh_exposed_devices(recommendation_ids=drifted)
        result["repaired"] = True
    logger.warning(
        "Exposure counters had drifted for %s of %s recommendation(s) (%s%s); %s.",
        len(drifted),
        checked,
        ", ".join(names),
        more,
        "recounted" if repair else "not repaired (check only)",
        extra={"event": "exposure_counter_drift", "drifted": len(drifted)},
    )
    return result
