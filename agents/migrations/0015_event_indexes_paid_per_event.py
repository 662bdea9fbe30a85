"""Two indexes of the events' table fewer, each written for every event stored.

- The agent's own index: ``event_agent_order`` (agent, occurred_at, id) starts with the agent
  and serves every read by agent.
- The ``varchar_pattern_ops`` copy of the unique ``event_id`` that Django adds to a unique
  text field for ``LIKE 'prefix%'``, which nothing runs (the admin's search is ``UPPER(...)
  LIKE '%...%'``, which no index serves). The unique field becomes a unique constraint of the
  same name in Django's state only: the unique index PostgreSQL built for it stays as it is.
"""

import django.db.models.deletion
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

LIKE_INDEX = "agents_event_event_id_e857f3eb_like"


def drop_like_index(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f'DROP INDEX IF EXISTS "{LIKE_INDEX}"')


def create_like_index(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f'CREATE INDEX "{LIKE_INDEX}" ON "agents_event" ("event_id" varchar_pattern_ops)'
        )


class Migration(migrations.Migration):
    dependencies = [
        ("agents", "0014_translatable_field_labels_2"),
    ]

    operations = [
        migrations.AlterField(
            model_name="event",
            name="agent",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="events",
                to="agents.agent",
                verbose_name="agent",
            ),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="event",
                    name="event_id",
                    field=models.CharField(max_length=100, verbose_name="event id"),
                ),
                migrations.AddConstraint(
                    model_name="event",
                    constraint=models.UniqueConstraint(
                        fields=("event_id",), name="agents_event_event_id_key"
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(drop_like_index, create_like_index)],
        ),
    ]
