"""Account commands (docs/api.md, section 2): ``create_user`` and ``create_api_token``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from agents import access
from agents.models import Agent, ApiToken, Team
from agents.tests.factories import event

pytestmark = pytest.mark.django_db

ROOT = Path(settings.BASE_DIR)
# A separate process can reach the test database only on PostgreSQL (SQLite's is in memory).
needs_shared_database = pytest.mark.skipif(
    not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
    reason="the embedded default's test database is in memory, invisible to a subprocess",
)


@pytest.fixture(autouse=True)
def password(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ACW_PASSWORD", "s3cret-Pass")
    return "s3cret-Pass"


def create_user(*args: str) -> str:
    out = StringIO()
    call_command("create_user", *args, stdout=out)
    return out.getvalue()


def groups(username: str) -> set[str]:
    return set(User.objects.get(username=username).groups.values_list("name", flat=True))


def test_the_role_groups_exist_after_migrate(db: None) -> None:
    assert set(Group.objects.values_list("name", flat=True)) >= {"Supervisors", "Managers"}


def test_it_creates_a_supervisor_of_new_and_existing_teams(north: Team, password: str) -> None:
    output = create_user("sue", "--role", "supervisor", "--teams", "North, Night shift")
    sue = User.objects.get(username="sue")
    assert sue.check_password(password)
    assert groups("sue") == {"Supervisors"}
    assert set(sue.supervised_teams.values_list("name", flat=True)) == {"North", "Night shift"}
    assert Team.objects.filter(name="North").count() == 1
    assert access.is_supervisor(sue) and not access.sees_all_teams(sue)
    assert "sue" in output


def test_it_creates_a_manager(password: str) -> None:
    create_user("mo", "--role", "manager")
    mo = User.objects.get(username="mo")
    assert groups("mo") == {"Managers"}
    assert mo.check_password(password)
    assert access.sees_all_teams(mo)


def test_it_creates_an_agent_user_linked_to_an_existing_agent(alice: Agent) -> None:
    create_user("alice-login", "--role", "agent", "--agent", "alice")
    alice.refresh_from_db()
    assert alice.user is not None and alice.user.username == "alice-login"
    assert groups("alice-login") == set()
    assert not access.can_watch(alice.user)


def test_the_agent_must_exist(db: None) -> None:
    with pytest.raises(CommandError, match="ghost"):
        create_user("g", "--role", "agent", "--agent", "ghost")
    assert not User.objects.filter(username="g").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["u", "--role", "supervisor"],
        ["u", "--role", "supervisor", "--teams", " , "],
        ["u", "--role", "agent"],
        ["u", "--role", "manager", "--teams", "North"],
        ["u", "--role", "manager", "--agent", "alice"],
    ],
    ids=["supervisor without teams", "blank teams", "agent without agent", "teams", "agent"],
)
def test_inconsistent_options_are_command_errors(alice: Agent, args: list[str]) -> None:
    with pytest.raises(CommandError):
        create_user(*args)
    assert not User.objects.filter(username="u").exists()


def test_an_invalid_username_or_team_name_is_a_command_error(db: None) -> None:
    teams = Team.objects.count()
    with pytest.raises(CommandError, match="username"):
        create_user("no spaces allowed", "--role", "manager")
    with pytest.raises(CommandError, match="--teams"):
        create_user("sue", "--role", "supervisor", "--teams", "t" * 101)
    assert not User.objects.exists()
    assert Team.objects.count() == teams


def test_an_unknown_role_is_refused(db: None) -> None:
    with pytest.raises(CommandError):
        create_user("u", "--role", "admin")


def test_a_rerun_updates_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    create_user("mo", "--role", "manager")
    monkeypatch.setenv("ACW_PASSWORD", "another-Pass-2")
    output = create_user("mo", "--role", "manager")
    assert User.objects.get(username="mo").check_password("another-Pass-2")
    assert User.objects.filter(username="mo").count() == 1
    assert "Updated" in output


def test_a_rerun_with_another_role_clears_the_old_one(north: Team, south: Team) -> None:
    create_user("sue", "--role", "supervisor", "--teams", "North,South")
    create_user("sue", "--role", "supervisor", "--teams", "South")
    sue = User.objects.get(username="sue")
    assert list(sue.supervised_teams.values_list("name", flat=True)) == ["South"]
    create_user("sue", "--role", "manager")
    assert groups("sue") == {"Managers"}
    assert not sue.supervised_teams.exists()


def test_an_agent_user_made_manager_is_no_longer_linked_to_the_agent(alice: Agent) -> None:
    create_user("al", "--role", "agent", "--agent", "alice")
    create_user("al", "--role", "manager")
    alice.refresh_from_db()
    assert alice.user is None
    assert groups("al") == {"Managers"}


def test_a_supervisor_made_agent_loses_supervision(north: Team, alice: Agent) -> None:
    create_user("sue", "--role", "supervisor", "--teams", "North")
    create_user("sue", "--role", "agent", "--agent", "alice")
    sue = User.objects.get(username="sue")
    assert groups("sue") == set()
    assert not sue.supervised_teams.exists()
    assert not access.can_watch(sue)


def test_relinking_an_agent_user_moves_the_link(alice: Agent, bob: Agent) -> None:
    create_user("al", "--role", "agent", "--agent", "alice")
    create_user("al", "--role", "agent", "--agent", "bob")
    alice.refresh_from_db()
    bob.refresh_from_db()
    assert alice.user is None
    assert bob.user is not None and bob.user.username == "al"


def test_without_acw_password_and_no_terminal_it_is_a_command_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ACW_PASSWORD")
    monkeypatch.setattr("sys.stdin", StringIO(""))
    with pytest.raises(CommandError, match="ACW_PASSWORD"):
        create_user("mo", "--role", "manager")
    assert not User.objects.filter(username="mo").exists()


@needs_shared_database
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_create_user_runs_from_the_shell_with_acw_password(password: str) -> None:
    """The documented command line, in a real process against the test database."""
    env = _test_env()
    env["ACW_PASSWORD"] = password
    done = subprocess.run(
        [sys.executable, "manage.py", "create_user", "shell-sue", "--role", "supervisor",
         "--teams", "Team A,Team B"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    sue = User.objects.get(username="shell-sue")
    assert sue.check_password(password)
    assert set(sue.supervised_teams.values_list("name", flat=True)) == {"Team A", "Team B"}
    failed = subprocess.run(
        [sys.executable, "manage.py", "create_user", "x", "--role", "agent", "--agent", "nope"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert failed.returncode != 0
    assert "nope" in failed.stderr
    assert "Traceback" not in failed.stderr


# --- create_api_token -----------------------------------------------------------------------


def test_create_api_token_prints_a_working_token_on_its_last_line(db: None) -> None:
    out = StringIO()
    call_command("create_api_token", "telephony", stdout=out, stderr=StringIO())
    token = out.getvalue().strip().splitlines()[-1]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.post(
        "/api/v1/events",
        json.dumps(event("alice", "agent.logged_in", 60)),
        content_type="application/json",
    )
    assert response.status_code == 201
    assert client.get("/api/v1/agents/state").status_code == 200


def test_only_the_hash_of_the_token_is_stored(db: None) -> None:
    out = StringIO()
    call_command("create_api_token", "wfm", stdout=out, stderr=StringIO())
    token = out.getvalue().strip().splitlines()[-1]
    row = ApiToken.objects.get(name="wfm")
    assert row.token_hash == ApiToken.hash(token) != token
    stored = json.dumps(list(ApiToken.objects.values()), default=str)
    assert token not in stored
    assert len(token) >= 32


def test_each_run_issues_a_different_token(db: None) -> None:
    tokens = set()
    for _ in range(3):
        out = StringIO()
        call_command("create_api_token", "same-name", stdout=out, stderr=StringIO())
        tokens.add(out.getvalue().strip().splitlines()[-1])
    assert len(tokens) == 3
    assert ApiToken.objects.filter(name="same-name").count() == 3


@needs_shared_database
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_create_api_token_from_the_shell_prints_the_token_last() -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", "create_api_token", "ci"],
        cwd=ROOT, env=_test_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip().splitlines()[-1]
    assert ApiToken.objects.filter(token_hash=ApiToken.hash(token), active=True).exists()


def _test_env() -> dict[str, str]:
    """The environment of this run, pointed at the test database (not the default one)."""
    db = settings.DATABASES["default"]
    user = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return {**os.environ, "DATABASE_URL": f"postgres://{user}@{host}/{db['NAME']}", "DEBUG": "1"}
