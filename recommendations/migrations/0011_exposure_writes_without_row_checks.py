# A snapshot writes a million exposure rows at once; what each row costs beyond its own bytes
# is paid a million times. Measured on 1,000,000 new pairs (bench/ratios.py):
#
# - The two foreign keys are no longer database constraints (db_constraint=False): PostgreSQL
#   checks a foreign key row by row, two look-ups per exposure, 7.7 s at the commit of one
#   snapshot. The snapshot takes both ids from a join in its own transaction, under the
#   snapshot lock; deleting devices, device groups and recommendations takes the same lock and
#   deletes their exposures first (Django's cascade, unchanged), and the nightly
#   `recount_exposures` deletes any orphan left by a raw DELETE.
# - exposure_open_idx goes: the unique pair (recommendation, device) serves the same look-ups
#   and every insert wrote both.
# - The PostgreSQL counter functions group the changed rows once, by (recommendation, device
#   group), and take the totals from that small result (0.94 s -> 0.43 s for 1M new rows). They
#   run it with EXECUTE, planned for the rows each statement changed: PL/pgSQL keeps the plan of
#   a static query for the session, and one made when a statement changed no row (a nested loop
#   over the transition tables) took a later 100,000-row remediation ten minutes and more.
#
# SQLite rebuilds the table to alter a foreign key, which drops its counter triggers: they are
# dropped first and made again after (with their recount), as in 0009.

import importlib

import django.db.models.deletion
from django.db import migrations, models

_triggers = importlib.import_module("recommendations.migrations.0006_exposure_counter_triggers")
_on_sqlite = importlib.import_module("recommendations.migrations.0009_exposure_fewer_indexes")._on_sqlite

# The delta of 0006, grouped once: `by_group` is a few thousand rows however many changed.
_APPLY_GROUPED = f"""
    WITH by_group AS MATERIALIZED (
        SELECT rec, grp, SUM(d) AS n FROM ({{delta}}) delta GROUP BY rec, grp
    ),
    totals AS (
        UPDATE {_triggers.RECOMMENDATION} r SET exposed_devices = GREATEST(r.exposed_devices + t.n, 0)
        FROM (SELECT rec, SUM(n) AS n FROM by_group GROUP BY rec) t
        WHERE r.id = t.rec AND t.n <> 0
        RETURNING 1
    ),
    lowered AS (
        UPDATE {_triggers.GROUP_COUNTER} g SET exposed_devices = GREATEST(g.exposed_devices + b.n, 0)
        FROM by_group b
        WHERE b.n < 0 AND g.recommendation_id = b.rec AND g.device_group_id = b.grp
        RETURNING g.id, g.exposed_devices
    ),
    raised AS (
        INSERT INTO {_triggers.GROUP_COUNTER} (recommendation_id, device_group_id, exposed_devices)
        SELECT rec, grp, n FROM by_group WHERE n > 0
        ON CONFLICT (recommendation_id, device_group_id)
        DO UPDATE SET exposed_devices = {_triggers.GROUP_COUNTER}.exposed_devices + EXCLUDED.exposed_devices
        RETURNING 1
    )
    SELECT array_agg(id) FROM lowered WHERE exposed_devices = 0
"""
_EMPTIED = f"""
    IF emptied IS NOT NULL THEN
        DELETE FROM {_triggers.GROUP_COUNTER} WHERE id = ANY(emptied) AND exposed_devices = 0;
    END IF;
"""


def _grouped(delta: str) -> str:
    query = _APPLY_GROUPED.format(delta=delta)
    assert "$q$" not in query
    return f"EXECUTE $q${query}$q$ INTO emptied;\n{_EMPTIED}"


def _functions(body):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        with schema_editor.connection.cursor() as cursor:
            for function, _trigger, _table, _event, _transitions, delta in _triggers.PG_TRIGGERS:
                cursor.execute(
                    f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
                    f"DECLARE emptied bigint[];\nBEGIN\n{body(delta)}\nRETURN NULL;\nEND;\n$$;"
                )

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("recommendations", "0010_verbose_names_of_exposure_pairs"),
    ]

    operations = [
        migrations.RunPython(_on_sqlite(_triggers.drop_triggers), _on_sqlite(_triggers.create_triggers)),
        migrations.RemoveIndex(model_name="exposure", name="exposure_open_idx"),
        migrations.AlterField(
            model_name="exposure",
            name="recommendation",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="exposures",
                to="recommendations.securityrecommendation",
                verbose_name="recommendation",
            ),
        ),
        migrations.AlterField(
            model_name="exposure",
            name="device",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="exposures",
                to="recommendations.device",
                verbose_name="device",
            ),
        ),
        migrations.RunPython(_on_sqlite(_triggers.create_triggers), _on_sqlite(_triggers.drop_triggers)),
        migrations.RunPython(
            _functions(_grouped), _functions(lambda delta: _triggers._APPLY_DELTA.format(delta=delta))
        ),
    ]
