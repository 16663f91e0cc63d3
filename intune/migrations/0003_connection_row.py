from django.db import migrations


def create_row(apps, schema_editor):
    apps.get_model("intune", "IntuneConnection").objects.get_or_create(pk=1, defaults={"enabled": False})


class Migration(migrations.Migration):
    dependencies = [("intune", "0002_initial")]
    operations = [migrations.RunPython(create_row, migrations.RunPython.noop)]
