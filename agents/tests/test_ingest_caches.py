"""The event API's cost per event, pinned, and the caches that keep it low (API_CACHE_SECONDS).

The counts are the queries of one request through the whole stack (authentication, throttle,
view, service). Each transaction counts 2 more here than in production: inside the test's own
transaction, its BEGIN and COMMIT are a SAVEPOINT and its RELEASE, which are counted (in
production the COMMIT of an event's write goes in the write's own round trip:
``test_an_event_is_committed_by_its_write_unless_the_caller_holds_a_transaction``). A change that adds a query per event fails here: raise the pin only with a
reason, as every query is paid at hundreds of events per second. The counts are PostgreSQL's
(production); on the embedded SQLite the writes after the event's INSERT are one statement each.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from agents.models import AcwPolicy, Agent, ApiToken
from agents.tests.factories import event

pytestmark = pytest.mark.django_db

URL = "/api/v1/events"


@pytest.fixture(autouse=True)
def caches_on(settings: Any) -> None:
    settings.API_CACHE_SECONDS = 60.0


def post(client: APIClient, body: Any) -> Any:
    return client.post(URL, json.dumps(body), content_type="application/json")


@pytest.mark.postgres
def test_an_event_in_order_costs_a_pinned_number_of_queries(
    api: APIClient, alice: Agent, django_assert_num_queries: Any
) -> None:
    assert post(api, event("alice", "agent.logged_in", 100)).status_code == 201  # caches filled
    # Lock the agent (its round trip also reads whether the event is stored, and takes the
    # event's id), then one statement of statements: the event with its projection, the
    # interaction (new), the live state (+ 2: the transaction).
    with django_assert_num_queries(4):
        started = post(api, event("alice", "interaction.started", 90, interaction_id="c1", channel="phone"))  # fmt: skip
    assert started.status_code == 201
    # Lock, then in one: the event with its projection, the rollup interval marks, the
    # interaction (ended), the ACW (new, naming the interaction by the event that opened it),
    # the live state (+ 2).
    ended = event("alice", "interaction.ended", 60, interaction_id="c1")
    with django_assert_num_queries(4):
        assert post(api, ended).status_code == 201
    # A duplicate: the lock, whose round trip read the stored event to compare (+ 2).
    with django_assert_num_queries(3):
        assert post(api, ended).status_code == 200


@pytest.mark.postgres
def test_without_the_caches_an_event_reads_only_its_token_more(
    api: APIClient, alice: Agent, settings: Any, django_assert_num_queries: Any
) -> None:
    settings.API_CACHE_SECONDS = 0.0
    assert post(api, event("alice", "agent.logged_in", 100)).status_code == 201
    # The token, then as above: the ACW policies are read in the lock's round trip (a second
    # statement of the same query), the only way they are read on this path.
    with django_assert_num_queries(5):
        started = post(api, event("alice", "interaction.started", 90, interaction_id="c1", channel="phone"))  # fmt: skip
    assert started.status_code == 201


@pytest.mark.postgres
def test_a_batch_of_1000_events_of_50_agents_costs_a_pinned_number_of_queries(
    api: APIClient, north: Any, django_assert_num_queries: Any
) -> None:
    agents = [f"q-{n}" for n in range(50)]
    assert post(api, {"events": [event(a, "agent.logged_in", 600) for a in agents]}).status_code == 200  # fmt: skip
    batch = []
    for n in range(5):  # per agent: 5 calls of 4 events = 20 events
        for a in agents:
            cid = f"{a}-c{n}"
            batch += [
                event(a, "interaction.started", 500 - 90 * n, interaction_id=cid, channel="phone"),
                event(a, "interaction.held", 490 - 90 * n, interaction_id=cid),
                event(a, "interaction.resumed", 480 - 90 * n, interaction_id=cid),
                event(a, "interaction.ended", 470 - 90 * n, interaction_id=cid),
            ]
    assert len(batch) == 1000
    # Five chunks of 200 events (one call per agent each), each chunk: lock the 50 agents
    # (reading which events are stored, and taking their ids), then one statement of
    # statements (the events with their projections, the rollup marks, the interactions, the
    # holds, the ACWs, the live states; the ACWs of the previous calls that these calls close
    # name their interactions by opening event, no read) (+ 2: the transaction).
    with django_assert_num_queries(5 * 4):
        response = post(api, {"events": batch})
    assert response.json()["accepted"] == 1000


def test_a_revoked_token_is_refused_at_once_despite_the_cache(
    api: APIClient, api_token: str
) -> None:
    assert post(api, event("alice", "agent.logged_in")).status_code == 201
    call_command("revoke_api_token", ApiToken.objects.get().prefix)
    assert post(api, event("alice", "agent.available")).status_code == 401


def test_a_policy_saved_applies_to_the_next_event_despite_the_cache(
    api: APIClient, alice: Agent
) -> None:
    assert post(api, event("alice", "interaction.started", 60, interaction_id="c1", channel="phone")).status_code == 201  # fmt: skip
    policy, _ = AcwPolicy.objects.get_or_create(team=None, channel="")
    policy.seconds = 77
    policy.save()
    assert post(api, event("alice", "interaction.ended", 30, interaction_id="c1")).status_code == 201  # fmt: skip
    live = alice.live
    live.refresh_from_db()
    assert (live.acw_deadline - live.acw_started_at).total_seconds() == 77
