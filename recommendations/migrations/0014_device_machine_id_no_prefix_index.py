"""Drop the second index PostgreSQL keeps on the device id (`machine_id`): the `varchar_pattern_ops`
copy Django adds to every unique text column for LIKE 'prefix%' lookups.

Nothing looks devices up by a prefix of their id (imports, the admin's search and the APIs
match it whole), so the index only made every device an import writes dearer. The unique index
stays. Other databases never had it.
"""

from django.db import migrations


def _prefix_indexes(schema_editor, table: str) -> list[str]:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s"
            " AND indexdef LIKE %s",
            [table, "%(machine_id varchar_pattern_ops)"],
        )
        return [name for (name,) in cursor.fetchall()]


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    table = apps.get_model("recommendations", "Device")._meta.db_table
    for name in _prefix_indexes(schema_editor, table):
        schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    table = apps.get_model("recommendations", "Device")._meta.db_table
    if not _prefix_indexes(schema_editor, table):
        name = schema_editor._create_index_name(table, ["machine_id"], suffix="_like")
        schema_editor.execute(
            f"CREATE INDEX {schema_editor.quote_name(name)} ON {schema_editor.quote_name(table)}"
            " (machine_id varchar_pattern_ops)"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("recommendations", "0013_device_group_index_covered"),
    ]

    operations = [migrations.RunPython(drop_index, create_index)]
