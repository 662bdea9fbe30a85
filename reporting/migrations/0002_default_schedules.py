"""Default beat schedules (django-celery-beat, editable in admin → Periodic tasks).

Every entry has an expiry (``expire_seconds``: a run still queued after that long is dropped
rather than piling up behind a stalled worker). Existing rows with the same name are left as an
admin edited them.
"""

from django.conf import settings
from django.db import migrations

SCHEDULES = [
    # name, task, interval seconds (or None for the crontab), expire_seconds, description
    (
        "ACW timeout sweep",
        "agents.tasks.expire_due_acws_task",
        5,
        5,
        "Safety net behind the per-ACW timers: close every ACW whose deadline has passed.",
    ),
    (
        "Alert evaluation",
        "reporting.tasks.evaluate_alerts_task",
        10,
        10,
        "Open, update and resolve alerts from the live states and KPIs.",
    ),
    (
        "KPI rollups",
        "reporting.tasks.compute_rollups_task",
        60,
        60,
        "Recompute the 15-minute and daily rollups of the intervals that changed.",
    ),
    (
        "KPI daily close",
        "reporting.tasks.close_day_task",
        None,
        3600,
        "Recompute yesterday's rollups from the raw rows (00:05 site time).",
    ),
]


def install(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, every, expire_seconds, description in SCHEDULES:
        if PeriodicTask.objects.filter(name=name).exists():
            continue
        schedule = {}
        if every is not None:
            schedule["interval"], _ = IntervalSchedule.objects.get_or_create(
                every=every, period="seconds"
            )
        else:
            schedule["crontab"], _ = CrontabSchedule.objects.get_or_create(
                minute="5",
                hour="0",
                day_of_week="*",
                day_of_month="*",
                month_of_year="*",
                timezone=settings.TIME_ZONE,
            )
        PeriodicTask.objects.create(
            name=name,
            task=task,
            expire_seconds=expire_seconds,
            description=description,
            enabled=True,
            **schedule,
        )


def uninstall(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[row[0] for row in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("reporting", "0001_rollups_and_alerts"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(install, uninstall)]
