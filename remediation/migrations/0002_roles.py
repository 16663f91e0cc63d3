"""Create the `Security staff` and `IT staff` groups with their permissions (upsert by name)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEW_ALL = [
    "recommendations.view_devicegroup",
    "recommendations.view_device",
    "recommendations.view_securityrecommendation",
    "recommendations.view_exposure",
    "recommendations.view_recommendationexception",
    "remediation.view_remediationactivity",
    "remediation.view_activitydevice",
    "remediation.view_activityevent",
    "remediation.export_activity",
    "remediation.complete_activity",
    "intune.view_intunetask",
    "intune.view_intuneconnection",
]

ROLES = {
    "Security staff": VIEW_ALL
    + [
        "recommendations.view_all_device_groups",
        "recommendations.handle_exceptions",
        "recommendations.add_recommendationexception",
        "recommendations.change_recommendationexception",
        "recommendations.add_devicegroup",
        "recommendations.change_devicegroup",
        "recommendations.add_device",
        "recommendations.change_device",
        "recommendations.add_securityrecommendation",
        "recommendations.change_securityrecommendation",
        "recommendations.add_exposure",
        "recommendations.change_exposure",
        "recommendations.view_importjob",
        "recommendations.add_importjob",
        "remediation.add_remediationactivity",
    ],
    "IT staff": VIEW_ALL + ["remediation.decide_activity"],
}


def create_roles(apps, schema_editor):
    # Permissions are normally created after migrate; make sure they exist now.
    for app_label in ("recommendations", "remediation", "intune"):
        app_config = apps.get_app_config(app_label)
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codes in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        for code in codes:
            app_label, codename = code.split(".")
            perm = Permission.objects.get(content_type__app_label=app_label, codename=codename)
            group.permissions.add(perm)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("recommendations", "0001_initial"),
        ("remediation", "0001_initial"),
        ("intune", "0002_initial"),
    ]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
