"""The one ACW policy resolver (``agents.policies``), used by ingestion, alerts and the wall."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents import services
from agents.models import AcwPolicy
from agents.policies import Policies
from agents.states import PolicySpec
from agents.tests.factories import event

pytestmark = pytest.mark.django_db


def test_the_most_specific_policy_wins(north: Any, south: Any) -> None:
    AcwPolicy.objects.create(team=north, channel="", seconds=45, alert_acw_seconds=200)
    AcwPolicy.objects.create(team=north, channel="chat", mode="manual", alert_acw_seconds=600)
    AcwPolicy.objects.create(team=None, channel="email", mode="none")
    policies = Policies.load()
    assert policies.resolve(north.pk, "chat").alert_acw_seconds == 600  # team × channel
    assert policies.resolve(north.pk, "phone").seconds == 45  # team default
    assert policies.resolve(north.pk, "email").seconds == 45  # team default beats site channel
    assert policies.resolve(south.pk, "email").mode == "none"  # site × channel
    site = policies.resolve(south.pk, "phone")  # site default (created by a migration)
    assert site.team_id is None and site.channel == ""
    assert policies.resolve(north.pk) == policies.resolve(north.pk, "")


def test_the_state_machine_gets_the_same_policy_as_a_spec(north: Any) -> None:
    AcwPolicy.objects.create(team=north, channel="chat", mode="manual", max_seconds=600)
    spec = Policies.load().spec(north.pk, "chat")
    assert isinstance(spec, PolicySpec)
    assert (spec.mode, spec.max_seconds) == ("manual", 600)


def test_without_any_row_the_models_defaults_apply(north: Any) -> None:
    AcwPolicy.objects.all().delete()
    policies = Policies.load()
    assert policies.resolve(north.pk, "phone").seconds == 30
    assert policies.spec(north.pk, "phone") == PolicySpec()


def test_the_models_defaults_are_the_state_machines_defaults() -> None:
    # Two spellings of the site default must not drift apart.
    assert AcwPolicy().as_spec() == PolicySpec()


def test_loading_for_some_teams_keeps_the_site_rows(north: Any, south: Any) -> None:
    AcwPolicy.objects.create(team=south, channel="", seconds=90)
    AcwPolicy.objects.create(team=None, channel="chat", seconds=60)
    policies = Policies.load([north.pk])
    assert policies.resolve(north.pk, "chat").seconds == 60
    assert policies.resolve(south.pk, "phone").seconds == 30  # South's row was not read


def test_it_reads_once_and_resolves_without_queries(
    north: Any, django_assert_num_queries: Any
) -> None:
    AcwPolicy.objects.create(team=north, channel="chat", seconds=60)
    with django_assert_num_queries(1):
        policies = Policies.load()
    with django_assert_num_queries(0):
        for channel in ("phone", "chat", "email", "other"):
            policies.spec(north.pk, channel)
            policies.resolve(north.pk, channel)


@pytest.mark.parametrize("mode", ["timed", "manual"])
def test_ingesting_an_event_reads_the_policies_once(alice: Any, north: Any, mode: str) -> None:
    # The state machine and the wall payload (an untimed ACW's colour points) share one read.
    AcwPolicy.objects.create(team=north, channel="", mode=mode)
    for raw in (
        event("alice", "agent.logged_in", 100),
        event("alice", "interaction.started", 90, interaction_id="c", channel="phone"),
    ):
        assert services.ingest_event(raw).status == "accepted"
    with CaptureQueriesContext(connection) as queries:
        result = services.ingest_event(event("alice", "interaction.ended", 5, interaction_id="c"))
    assert result.status == "accepted"
    policy_reads = [q for q in queries.captured_queries if '"agents_acwpolicy"' in q["sql"]]
    assert len(policy_reads) == 1
