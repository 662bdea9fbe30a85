"""Groups Supervisors and Managers, team Unassigned and the editable site-default ACW policy."""

from django.db import migrations


def create(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name in ("Supervisors", "Managers"):
        Group.objects.get_or_create(name=name)
    apps.get_model("agents", "Team").objects.get_or_create(name="Unassigned")
    # The site default (docs/api.md, ACW policies): timed 30 s, early exit allowed, extension in 30
    # s steps up to 300 s.
    apps.get_model("agents", "AcwPolicy").objects.get_or_create(
        team=None,
        channel="",
        defaults={
            "mode": "timed",
            "seconds": 30,
            "allow_extension": True,
            "extension_step_seconds": 30,
            "max_seconds": 300,
        },
    )


class Migration(migrations.Migration):
    dependencies = [("agents", "0001_initial_domain"), ("auth", "0012_alter_user_first_name_max_length")]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
