"""The stored exposure counters: `SecurityRecommendation.exposed_devices` and the per-device-group
rows of `RecommendationGroupExposure`, recounted set-based (a few statements per chunk of ids)."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection, transaction

from ..models import Device, Exposure, RecommendationGroupExposure, SecurityRecommendation

LOOKUP_CHUNK = 2000


def quote_name(name: str) -> str:
    return connection.ops.quote_name(name)


GROUP_EXPOSURE_LOCK = 7008  # advisory lock key (7007 serializes exposure snapshots)


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
    """Recount the stored exposure counters (all recommendations when None).

    SecurityRecommendation.exposed_devices (open exposures) and the per-device-group rows of
    RecommendationGroupExposure (open exposures of the devices now in each group), set-based:
    a few statements per chunk of ids, never a query per recommendation. Call it after any
    write to exposures outside the snapshot import, or after devices move between groups.
    Returns the number of recommendations recounted.
    """
    E = quote_name(Exposure._meta.db_table)
    R = quote_name(SecurityRecommendation._meta.db_table)
    sql = (
        f"UPDATE {R} SET exposed_devices = (SELECT COUNT(*) FROM {E} e"  # noqa: S608
        f" WHERE e.recommendation_id = {R}.id AND e.remediated_at IS NULL)"
    )
    with connection.cursor() as cursor:
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


@transaction.atomic
def device_group_exposures_refresh() -> None:
    """Rebuild every per-device-group exposure counter (after devices moved between groups).

    Moving a device changes no recommendation's total, only how it splits over the groups.
    """
    with connection.cursor() as cursor:
        rebuild_group_exposures(cursor)
