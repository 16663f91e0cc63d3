"""Create the beat entry `recount_exposures` (nightly check of the stored exposure counters) by name.

Same code as `manage.py setup_periodic_tasks`: only what is missing is added; nothing is changed or wiped.
"""

from django.db import migrations


def create_schedules(apps, schema_editor):
    from remediation.services import periodic_tasks_setup

    periodic_tasks_setup(apps=apps)


class Migration(migrations.Migration):
    dependencies = [
        ("remediation", "0004_defender_sync_schedule"),
        ("recommendations", "0006_exposure_counter_triggers"),
    ]

    operations = [migrations.RunPython(create_schedules, migrations.RunPython.noop)]
