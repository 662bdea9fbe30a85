"""Long commands: a bar in a terminal, one summary line in a pipe, nothing at ``-v0``."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command

from agents import services
from agents.tests.factories import event

pytestmark = pytest.mark.django_db


class Terminal(io.StringIO):
    """An output that says it is a terminal, as a user's shell is."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def history(alice: Any, bob: Any) -> None:
    for agent in ("alice", "bob"):
        assert services.ingest_event(event(agent, "agent.logged_in", 60)).status == "accepted"


def test_replay_events_in_a_pipe_writes_one_line_and_no_carriage_return(history: None) -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command("replay_events", stdout=out, stderr=err)
    assert "\r" not in err.getvalue()
    assert err.getvalue().splitlines() == [err.getvalue().strip()]
    assert err.getvalue().startswith("Replay: 2 agents in ")
    assert "Replayed 2 events." in out.getvalue()


def test_replay_events_at_verbosity_0_prints_nothing(history: None) -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command("replay_events", verbosity=0, stdout=out, stderr=err)
    assert out.getvalue() == ""
    assert err.getvalue() == ""


def test_replay_events_in_a_terminal_draws_a_bar(history: None) -> None:
    err = Terminal()
    call_command("replay_events", stdout=io.StringIO(), stderr=err)
    assert "\r" in err.getvalue()
    assert "2/2" in err.getvalue()


def test_purge_expired_data_in_a_pipe_writes_summary_lines_only(
    history: None, settings: Any
) -> None:
    settings.ACW_RETENTION_DAYS = 30
    out, err = io.StringIO(), io.StringIO()
    call_command("purge_expired_data", "--dry-run", stdout=out, stderr=err)
    assert "\r" not in err.getvalue()
    assert "Would purge 0 events" in out.getvalue()
    quiet_out, quiet_err = io.StringIO(), io.StringIO()
    call_command("purge_expired_data", "--dry-run", verbosity=0, stdout=quiet_out, stderr=quiet_err)
    assert quiet_out.getvalue() == quiet_err.getvalue() == ""


def _run_script() -> Any:
    """scripts/run.py (``make run``) as a module."""
    import importlib.util

    from django.conf import settings

    spec = importlib.util.spec_from_file_location(
        "acw_run", settings.BASE_DIR / "scripts" / "run.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_run_shows_one_line_for_the_migrations_not_one_per_migration(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import sys

    run = _run_script()
    migrate = "print('Operations to perform:'); print('  Applying agents.0001_initial... OK'); print('  Applying agents.0002_more... OK')"
    assert run.Orchestrator().run_step(
        "Migrating the database", [sys.executable, "-c", migrate], quiet=True
    )
    out = capsys.readouterr().out
    assert "Migrating the database: 2 migrations applied." in out
    assert "Applying" not in out and "Operations to perform" not in out


def test_make_run_shows_a_quiet_steps_output_when_it_fails(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import sys

    run = _run_script()
    failing = "import sys; print('  Applying agents.0001_initial...'); sys.exit('no such table: x')"
    assert not run.Orchestrator().run_step(
        "Migrating the database", [sys.executable, "-c", failing], quiet=True
    )
    out = capsys.readouterr().out
    assert "Applying agents.0001_initial..." in out
    assert "no such table: x" in out
    assert "Migrating the database failed (exit code 1)" in out
