"""Wall colour tiers by time in state, with VICIdial's defaults (editable in admin)."""

from django.db import migrations, models

# VICIdial's real-time report: READY 30 s / 1 min / 5 min; INCALL, DISPO and PAUSED
# 10 s / 1 min / 5 min. Offline gets no tiers.
DEFAULT_TIERS = {
    "available": (30, 60, 300),
    "on_interaction": (10, 60, 300),
    "acw": (10, 60, 300),
    "not_ready": (10, 60, 300),
}


def create_defaults(apps, schema_editor):
    StateThreshold = apps.get_model("agents", "StateThreshold")
    for state, (notice, amber, red) in DEFAULT_TIERS.items():
        StateThreshold.objects.get_or_create(
            state=state,
            defaults={
                "notice_after_seconds": notice,
                "amber_after_seconds": amber,
                "red_after_seconds": red,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("agents", "0002_roles_and_site_default_policy")]

    operations = [
        migrations.CreateModel(
            name="StateThreshold",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("offline", "Offline"),
                            ("available", "Available"),
                            ("on_interaction", "On interaction"),
                            ("acw", "ACW"),
                            ("not_ready", "Not ready"),
                        ],
                        max_length=20,
                        unique=True,
                    ),
                ),
                (
                    "notice_after_seconds",
                    models.PositiveIntegerField(
                        default=10,
                        help_text="The tile is shaded once the agent has been in the state this long.",
                    ),
                ),
                ("amber_after_seconds", models.PositiveIntegerField(default=60)),
                ("red_after_seconds", models.PositiveIntegerField(default=300)),
            ],
            options={"verbose_name": "wall colour threshold", "ordering": ["state"]},
        ),
        migrations.RunPython(create_defaults, migrations.RunPython.noop),
    ]
