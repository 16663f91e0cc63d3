"""Drop the device table's index on device_group_id alone: (device_group, computer_dns_name) leads with it.

Only the index goes (AlterField would drop and re-add, and so re-check, the foreign key of every
device). Each device insert of an import then maintains one index fewer.
"""

import django.db.models.deletion
from django.db import migrations, models


def _group_only_indexes(schema_editor, model) -> list[str]:
    with schema_editor.connection.cursor() as cursor:
        constraints = schema_editor.connection.introspection.get_constraints(cursor, model._meta.db_table)
    return [
        name
        for name, info in constraints.items()
        if info["index"] and not info["unique"] and not info["primary_key"] and info["columns"] == ["device_group_id"]
    ]


def drop_index(apps, schema_editor):
    model = apps.get_model("recommendations", "Device")
    for name in _group_only_indexes(schema_editor, model):
        schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(name)}")


def create_index(apps, schema_editor):
    model = apps.get_model("recommendations", "Device")
    if not _group_only_indexes(schema_editor, model):
        table = model._meta.db_table
        name = schema_editor._create_index_name(table, ["device_group_id"], suffix="")
        schema_editor.execute(
            f"CREATE INDEX {schema_editor.quote_name(name)} ON {schema_editor.quote_name(table)} (device_group_id)"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("recommendations", "0012_recommendation_exposures_reported_at"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(drop_index, create_index)],
            state_operations=[
                migrations.AlterField(
                    model_name="device",
                    name="device_group",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="devices",
                        to="recommendations.devicegroup",
                        verbose_name="device group",
                    ),
                ),
            ],
        ),
    ]
