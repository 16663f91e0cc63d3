# Every import writes each index of the exposure table: drop the two that others cover
# (exposure_device_idx duplicates the device FK's index; the recommendation FK's index is the
# prefix of the unique pair). SQLite rebuilds the table to alter the FK, which drops its
# counter triggers: they are dropped first and made again after (with their recount).

import importlib

import django.db.models.deletion
from django.db import migrations, models

_triggers = importlib.import_module("recommendations.migrations.0006_exposure_counter_triggers")


def _on_sqlite(function):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "sqlite":
            function(apps, schema_editor)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("recommendations", "0008_verbose_names_for_translation"),
    ]

    operations = [
        migrations.RunPython(_on_sqlite(_triggers.drop_triggers), _on_sqlite(_triggers.create_triggers)),
        migrations.RemoveIndex(
            model_name="exposure",
            name="exposure_device_idx",
        ),
        migrations.AlterField(
            model_name="exposure",
            name="recommendation",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="exposures",
                to="recommendations.securityrecommendation",
            ),
        ),
        migrations.RunPython(_on_sqlite(_triggers.create_triggers), _on_sqlite(_triggers.drop_triggers)),
    ]
