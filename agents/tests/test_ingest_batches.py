"""Batches: many agents, duplicates within and across batches, late events, chunk boundaries.

A batch is written chunk by chunk (``services.CHUNK_SIZE`` events), each agent locked and
projected once per chunk; whatever the mix, the result must equal the same traffic ingested one
event at a time in order, and every event keeps its own answer in input order.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from django.utils import timezone

from agents import services
from agents.models import Event, Team
from agents.tests.test_ingest_event import DAY_BASE, a_day, history
from reporting.queries import kpi_rows

pytestmark = pytest.mark.django_db

AGENTS = 6


def test_mixed_batches_give_the_in_order_history_and_answer_each_event(north: Team) -> None:
    days = {n: a_day(f"ref-{n}", random.Random(n)) for n in range(AGENTS)}
    for n in range(AGENTS):
        for prefix in ("ref", "bat"):
            services.provision_agent(f"{prefix}-{n}", name=f"Person {n}", team_name="North")
    # The reference: one event at a time, in order.
    for day in days.values():
        assert {services.ingest_event(e).status for e in day} == {"accepted"}

    # The same traffic for the "bat" agents, all agents mixed and shuffled, in batches that
    # span several chunks; each batch repeats some of its own events and some of earlier
    # batches (late arrivals of events already applied are duplicates, the others replay).
    rng = random.Random(3)
    traffic = [
        {**e, "agent": f"bat-{n}", "event_id": f"bat-{e['event_id']}"}
        for n, day in days.items()
        for e in day
    ]
    rng.shuffle(traffic)
    size = services.CHUNK_SIZE + services.CHUNK_SIZE // 2
    sent: list[dict[str, Any]] = []
    for start in range(0, len(traffic), size):
        fresh = traffic[start : start + size]
        again = rng.sample(fresh, len(fresh) // 10) + rng.sample(sent, min(len(sent), 15))
        batch = fresh + again
        rng.shuffle(batch)
        conflicting = {**fresh[0], "occurred_at": DAY_BASE.isoformat()}  # same id, other time
        batch.append(conflicting)
        results = services.ingest_events(batch)
        assert [r.event_id for r in results] == [e["event_id"] for e in batch]
        seen: set[str] = {e["event_id"] for e in sent}
        expected = []
        for e in batch[:-1]:
            expected.append("duplicate" if e["event_id"] in seen else "accepted")
            seen.add(e["event_id"])
        assert [r.status for r in results] == [*expected, "conflict"]
        sent.extend(fresh)

    assert Event.objects.filter(agent__external_id__startswith="bat-").count() == len(traffic)
    for n in range(AGENTS):
        assert history(f"bat-{n}") == history(f"ref-{n}")
    rows = kpi_rows(team_ids=[north.pk], group_by="agent", start=DAY_BASE, end=timezone.now())
    by_agent = {row.key: {k: v for k, v in row.as_dict().items() if k != "key"} for row in rows}
    for n in range(AGENTS):
        assert by_agent[f"bat-{n}"] == by_agent[f"ref-{n}"]


def test_a_batch_creates_unknown_agents_only_for_events_it_stores(db: None) -> None:
    from agents.models import Agent
    from agents.tests.factories import event

    stored = event("known-later", "agent.logged_in", 60)
    assert services.ingest_events([stored])[0].status == "accepted"
    Agent.objects.filter(external_id="known-later").update(external_id="renamed")
    # Its id again, now for an agent nobody knows: a conflict, and no phantom agent.
    results = services.ingest_events([stored, event("brand-new", "agent.logged_in", 30)])
    assert [r.status for r in results] == ["conflict", "accepted"]
    assert not Agent.objects.filter(external_id="known-later").exists()
    assert Agent.objects.filter(external_id="brand-new").exists()
