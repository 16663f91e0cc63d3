"""Create the Celery beat schedules of DESIGN.md section 10 by name (never wiped, edits kept).

Uses the same code as `manage.py setup_periodic_tasks`, with this migration's models.
"""

from django.db import migrations


def create_schedules(apps, schema_editor):
    from remediation.services import periodic_tasks_setup

    periodic_tasks_setup(apps=apps)


class Migration(migrations.Migration):
    dependencies = [
        ("remediation", "0002_roles"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedules, migrations.RunPython.noop)]
