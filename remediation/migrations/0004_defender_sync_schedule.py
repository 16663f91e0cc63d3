"""The beat entry `defender_sync` (every 6 hours; off until DEFENDER_* credentials are configured) and
the right of `Security staff` to read the Defender pulls' runs in the admin."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def defender_sync(apps, schema_editor):
    from remediation.services import periodic_tasks_setup

    periodic_tasks_setup(apps=apps)  # adds the missing entries only: defender_sync on an existing installation
    app_config = apps.get_app_config("recommendations")
    app_config.models_module = True
    create_permissions(app_config, verbosity=0, apps=apps)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    view_runs = Permission.objects.get(content_type__app_label="recommendations", codename="view_defendersyncrun")
    for group in Group.objects.filter(name="Security staff"):
        group.permissions.add(view_runs)


class Migration(migrations.Migration):
    dependencies = [
        ("remediation", "0003_periodic_tasks"),
        ("recommendations", "0005_defender_sync_run"),
    ]

    operations = [migrations.RunPython(defender_sync, migrations.RunPython.noop)]
