"""The stored exposure counters are kept by the database itself, whatever writes the rows.

`SecurityRecommendation.exposed_devices` (open exposures of a recommendation) and
`RecommendationGroupExposure` (the same per device group the device is in now) follow every
INSERT, UPDATE and DELETE of `Exposure` rows and every move of a `Device` between groups, from
the services, the admin, scripts using the ORM or raw SQL alike:

- PostgreSQL: statement-level AFTER triggers with transition tables. One trigger run per
  statement, set-based (a grouped join of the changed rows), so a million-row snapshot costs a
  few grouped statements, not a million trigger calls.
- SQLite (`make run`): row-level triggers.

A counter never goes below zero and a write never fails because of one; the nightly
`recount_exposures` job finds and repairs any drift (e.g. from a TRUNCATE, which fires no
trigger). The counters are recounted once here, so they start right.
"""

from django.db import migrations

EXPOSURE = "recommendations_exposure"
DEVICE = "recommendations_device"
RECOMMENDATION = "recommendations_securityrecommendation"
GROUP_COUNTER = "recommendations_recommendationgroupexposure"

# --- PostgreSQL --------------------------------------------------------------------------------
# `delta` is (rec, grp, d): +1 for an exposure that is now open, -1 for one that no longer is, in
# the device group of its device. The totals follow the sum per recommendation; the group rows
# the sum per (recommendation, group): raised by an upsert, lowered by an UPDATE (never an
# INSERT, so a row is never created for a recommendation being deleted). Rows lowered to zero
# are deleted afterwards (a group without open exposures has no row); the DELETE re-checks the
# value under the row lock, so a concurrent raise is never lost.
_APPLY_DELTA = f"""
    WITH delta AS ({{delta}}),
    totals AS (
        UPDATE {RECOMMENDATION} r SET exposed_devices = GREATEST(r.exposed_devices + t.n, 0)
        FROM (SELECT rec, SUM(d) AS n FROM delta GROUP BY rec) t
        WHERE r.id = t.rec AND t.n <> 0
        RETURNING 1
    ),
    by_group AS (SELECT rec, grp, SUM(d) AS n FROM delta GROUP BY rec, grp),
    lowered AS (
        UPDATE {GROUP_COUNTER} g SET exposed_devices = GREATEST(g.exposed_devices + b.n, 0)
        FROM by_group b
        WHERE b.n < 0 AND g.recommendation_id = b.rec AND g.device_group_id = b.grp
        RETURNING g.id, g.exposed_devices
    ),
    raised AS (
        INSERT INTO {GROUP_COUNTER} (recommendation_id, device_group_id, exposed_devices)
        SELECT rec, grp, n FROM by_group WHERE n > 0
        ON CONFLICT (recommendation_id, device_group_id)
        DO UPDATE SET exposed_devices = {GROUP_COUNTER}.exposed_devices + EXCLUDED.exposed_devices
        RETURNING 1
    )
    SELECT array_agg(id) INTO emptied FROM lowered WHERE exposed_devices = 0;
    IF emptied IS NOT NULL THEN
        DELETE FROM {GROUP_COUNTER} WHERE id = ANY(emptied) AND exposed_devices = 0;
    END IF;
"""

_EXPOSURE_INSERTED = f"""
    SELECT n.recommendation_id AS rec, dv.device_group_id AS grp, 1 AS d
    FROM new_rows n JOIN {DEVICE} dv ON dv.id = n.device_id
    WHERE n.remediated_at IS NULL
"""
_EXPOSURE_DELETED = f"""
    SELECT o.recommendation_id AS rec, dv.device_group_id AS grp, -1 AS d
    FROM old_rows o JOIN {DEVICE} dv ON dv.id = o.device_id
    WHERE o.remediated_at IS NULL
"""
# Only the rows whose open state, recommendation or device changed (a snapshot's "still exposed,
# last seen now" UPDATE of a million rows changes no counter).
_EXPOSURE_UPDATED = f"""
    WITH changed AS (
        SELECT o.recommendation_id AS old_rec, o.device_id AS old_dev, o.remediated_at IS NULL AS old_open,
               n.recommendation_id AS new_rec, n.device_id AS new_dev, n.remediated_at IS NULL AS new_open
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE (o.remediated_at IS NULL) <> (n.remediated_at IS NULL)
           OR o.recommendation_id <> n.recommendation_id OR o.device_id <> n.device_id
    )
    SELECT c.old_rec AS rec, dv.device_group_id AS grp, -1 AS d
    FROM changed c JOIN {DEVICE} dv ON dv.id = c.old_dev WHERE c.old_open
    UNION ALL
    SELECT c.new_rec, dv.device_group_id, 1
    FROM changed c JOIN {DEVICE} dv ON dv.id = c.new_dev WHERE c.new_open
"""
# A device moved to another group: each of its open exposures leaves the old group's counter and
# joins the new one's (the recommendation's total does not change).
_DEVICE_MOVED = f"""
    WITH moved AS (
        SELECT n.id, o.device_group_id AS old_grp, n.device_group_id AS new_grp
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        WHERE o.device_group_id <> n.device_group_id
    )
    SELECT e.recommendation_id AS rec, m.old_grp AS grp, -1 AS d
    FROM moved m JOIN {EXPOSURE} e ON e.device_id = m.id AND e.remediated_at IS NULL
    UNION ALL
    SELECT e.recommendation_id, m.new_grp, 1
    FROM moved m JOIN {EXPOSURE} e ON e.device_id = m.id AND e.remediated_at IS NULL
"""


def _pg_function(name: str, delta: str) -> str:
    return (
        f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        f"DECLARE emptied bigint[];\nBEGIN\n{_APPLY_DELTA.format(delta=delta)}\nRETURN NULL;\nEND;\n$$;"
    )


PG_TRIGGERS = [
    # (function, trigger, table, event, transition tables, delta)
    ("rp_exposure_inserted", "rp_exposure_counters_insert", EXPOSURE, "INSERT", "NEW TABLE AS new_rows", _EXPOSURE_INSERTED),
    (
        "rp_exposure_updated",
        "rp_exposure_counters_update",
        EXPOSURE,
        "UPDATE",
        "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        _EXPOSURE_UPDATED,
    ),
    ("rp_exposure_deleted", "rp_exposure_counters_delete", EXPOSURE, "DELETE", "OLD TABLE AS old_rows", _EXPOSURE_DELETED),
    (
        "rp_device_moved",
        "rp_device_counters_update",
        DEVICE,
        "UPDATE",
        "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        _DEVICE_MOVED,
    ),
]

# --- SQLite --------------------------------------------------------------------------------------
_SQLITE_RAISE = f"""
    UPDATE {RECOMMENDATION} SET exposed_devices = exposed_devices + 1 WHERE id = NEW.recommendation_id
        AND NEW.remediated_at IS NULL;
    INSERT INTO {GROUP_COUNTER} (recommendation_id, device_group_id, exposed_devices)
        SELECT NEW.recommendation_id, device_group_id, 1 FROM {DEVICE}
        WHERE id = NEW.device_id AND NEW.remediated_at IS NULL
        ON CONFLICT (recommendation_id, device_group_id) DO UPDATE SET exposed_devices = exposed_devices + 1;
"""
_SQLITE_LOWER = f"""
    UPDATE {RECOMMENDATION} SET exposed_devices = MAX(exposed_devices - 1, 0) WHERE id = OLD.recommendation_id
        AND OLD.remediated_at IS NULL;
    UPDATE {GROUP_COUNTER} SET exposed_devices = MAX(exposed_devices - 1, 0)
        WHERE recommendation_id = OLD.recommendation_id AND OLD.remediated_at IS NULL
        AND device_group_id = (SELECT device_group_id FROM {DEVICE} WHERE id = OLD.device_id);
    DELETE FROM {GROUP_COUNTER} WHERE exposed_devices = 0 AND recommendation_id = OLD.recommendation_id
        AND device_group_id = (SELECT device_group_id FROM {DEVICE} WHERE id = OLD.device_id);
"""
SQLITE_TRIGGERS = {
    "rp_exposure_counters_insert": f"AFTER INSERT ON {EXPOSURE} FOR EACH ROW BEGIN {_SQLITE_RAISE} END",
    "rp_exposure_counters_delete": f"AFTER DELETE ON {EXPOSURE} FOR EACH ROW BEGIN {_SQLITE_LOWER} END",
    "rp_exposure_counters_update": (
        f"AFTER UPDATE OF remediated_at, recommendation_id, device_id ON {EXPOSURE} FOR EACH ROW"
        " WHEN (OLD.remediated_at IS NULL) <> (NEW.remediated_at IS NULL)"
        " OR OLD.recommendation_id <> NEW.recommendation_id OR OLD.device_id <> NEW.device_id"
        f" BEGIN {_SQLITE_LOWER} {_SQLITE_RAISE} END"
    ),
    "rp_device_counters_update": (
        f"AFTER UPDATE OF device_group_id ON {DEVICE} FOR EACH ROW"
        " WHEN OLD.device_group_id <> NEW.device_group_id BEGIN"
        f" UPDATE {GROUP_COUNTER} SET exposed_devices = MAX(exposed_devices - 1, 0)"
        "  WHERE device_group_id = OLD.device_group_id AND recommendation_id IN"
        f"  (SELECT recommendation_id FROM {EXPOSURE} WHERE device_id = NEW.id AND remediated_at IS NULL);"
        f" DELETE FROM {GROUP_COUNTER} WHERE exposed_devices = 0 AND device_group_id = OLD.device_group_id;"
        f" INSERT INTO {GROUP_COUNTER} (recommendation_id, device_group_id, exposed_devices)"
        f"  SELECT recommendation_id, NEW.device_group_id, 1 FROM {EXPOSURE}"
        "  WHERE device_id = NEW.id AND remediated_at IS NULL"
        "  ON CONFLICT (recommendation_id, device_group_id) DO UPDATE SET exposed_devices = exposed_devices + 1;"
        " END"
    ),
}

# --- the full recount they start from ----------------------------------------------------------
RECOUNT = [
    f"UPDATE {RECOMMENDATION} SET exposed_devices = (SELECT COUNT(*) FROM {EXPOSURE} e"
    f" WHERE e.recommendation_id = {RECOMMENDATION}.id AND e.remediated_at IS NULL)",
    f"DELETE FROM {GROUP_COUNTER}",
    f"INSERT INTO {GROUP_COUNTER} (recommendation_id, device_group_id, exposed_devices)"
    f" SELECT e.recommendation_id, d.device_group_id, COUNT(*) FROM {EXPOSURE} e"
    f" JOIN {DEVICE} d ON d.id = e.device_id WHERE e.remediated_at IS NULL"
    " GROUP BY e.recommendation_id, d.device_group_id",
]


def create_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    with schema_editor.connection.cursor() as cursor:
        if vendor == "postgresql":
            for function, trigger, table, event, transitions, delta in PG_TRIGGERS:
                cursor.execute(_pg_function(function, delta))
                cursor.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
                cursor.execute(
                    f"CREATE TRIGGER {trigger} AFTER {event} ON {table} REFERENCING {transitions}"
                    f" FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
                )
        elif vendor == "sqlite":
            for trigger, body in SQLITE_TRIGGERS.items():
                cursor.execute(f"DROP TRIGGER IF EXISTS {trigger}")
                cursor.execute(f"CREATE TRIGGER {trigger} {body}")
        else:  # pragma: no cover - the portal runs on PostgreSQL and SQLite only
            raise RuntimeError(f"No exposure-counter triggers for the {vendor} database.")
        for statement in RECOUNT:
            cursor.execute(statement)


def drop_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    with schema_editor.connection.cursor() as cursor:
        if vendor == "postgresql":
            for function, trigger, table, *_ in PG_TRIGGERS:
                cursor.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
                cursor.execute(f"DROP FUNCTION IF EXISTS {function}()")
        elif vendor == "sqlite":
            for trigger in SQLITE_TRIGGERS:
                cursor.execute(f"DROP TRIGGER IF EXISTS {trigger}")


class Migration(migrations.Migration):
    dependencies = [
        ("recommendations", "0005_defender_sync_run"),
    ]

    operations = [migrations.RunPython(create_triggers, drop_triggers)]
