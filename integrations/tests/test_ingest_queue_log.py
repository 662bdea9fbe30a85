"""Asterisk end to end: ``manage.py ingest_queue_log`` on real files into the agent state API,
the wall and the KPI API; stored position, restarts, rotation, --follow and bad lines."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from agents.models import Event
from agents.tests.test_consumers import connected_wall
from integrations.models import IntegrationStatus, QueueLogPosition, RefusedRecord
from integrations.services import read_queue_log

AGENT = "PJSIP/1001"
START = int((timezone.now() - timedelta(hours=1)).timestamp())

pytestmark = pytest.mark.django_db


def q(seconds: int, verb: str, queue: str = "sales", callid: str = "NONE", *data: str) -> str:
    return "|".join([str(START + seconds), callid, queue, AGENT, verb, *data]) + "\n"


def both(seconds: int, verb: str, *data: str) -> list[str]:
    """Asterisk writes membership and pause lines once per queue."""
    return [q(seconds, verb, queue, "NONE", *data) for queue in ("sales", "support")]


SHIFT = [
    *both(0, "ADDMEMBER", ""),
    *both(60, "PAUSE", "Lunch"),
    *both(360, "UNPAUSE", ""),
    q(395, "ENTERQUEUE", "sales", "call-1", "", "5551234", "1").replace(AGENT, "NONE"),
    q(400, "CONNECT", "sales", "call-1", "5", "call-1-agent", "2"),
    q(520, "COMPLETECALLER", "sales", "call-1", "5", "120", "1"),
    q(600, "CONNECT", "support", "call-2", "3", "call-2-agent", "1"),
    q(660, "ATTENDEDTRANSFER", "support", "call-2", "BRIDGE", "b-1", "3", "60", "1"),
    *both(700, "PAUSE", "Training"),
    *both(800, "UNPAUSE", ""),
    *both(900, "REMOVEMEMBER", ""),
]


def ingest(path: Path) -> str:
    out = StringIO()
    call_command("ingest_queue_log", str(path), stdout=out)
    return out.getvalue()


def kpi_row(api: APIClient) -> dict[str, Any]:
    first = timezone.now() - timedelta(days=1)
    days = f"from={first.date()}&to={timezone.now().date()}"
    rows = api.get(f"/api/v1/kpis?group_by=agent&{days}").json()["rows"]
    return next(row for row in rows if row["key"] == AGENT)


def state(api: APIClient) -> dict[str, Any]:
    rows = api.get("/api/v1/agents/state").json()["agents"]
    return next(row for row in rows if row["agent"] == AGENT)


EXPECTED = {"interactions": 2, "talk_seconds": 180, "hold_seconds": 0, "acw_seconds": 60}


def test_a_shift_with_pauses_and_transfers_gives_state_and_kpis(
    api: APIClient, tmp_path: Path
) -> None:
    log = tmp_path / "queue_log"
    log.write_text("".join(SHIFT[:4]))
    ingest(log)
    row = state(api)
    assert (row["state"], row["reason"]) == ("not_ready", "Lunch")
    with log.open("a") as handle:
        handle.write("".join(SHIFT[4:]))
    summary = ingest(log)
    assert "0 refused" in summary
    row = kpi_row(api)
    # Two calls (120 s and 60 s of talk), each followed by the default 30 s timed ACW.
    assert {key: row[key] for key in EXPECTED} == EXPECTED
    assert state(api)["state"] == "offline"
    # One login and one logout although the agent is in two queues.
    assert Event.objects.filter(type="agent.logged_in").count() == 1
    assert Event.objects.filter(type="agent.logged_out").count() == 1
    assert list(
        Event.objects.filter(type="agent.not_ready")
        .order_by("occurred_at")
        .values_list("data__reason", flat=True)
    ) == ["Lunch", "Training"]


def test_it_resumes_from_the_stored_position_and_a_reread_line_is_a_duplicate(
    api: APIClient, tmp_path: Path
) -> None:
    log = tmp_path / "queue_log"
    log.write_text("".join(SHIFT))
    ingest(log)
    stored = Event.objects.count()
    assert "0 lines" in ingest(log)  # nothing new
    # A position lost (a restored database, a copied file): every line is read again.
    QueueLogPosition.objects.update(offset=0, line=0, state={})
    summary = ingest(log)
    assert f"0 events accepted, {stored} duplicates" in summary
    assert Event.objects.count() == stored
    assert {key: kpi_row(api)[key] for key in EXPECTED} == EXPECTED


def test_the_later_half_of_a_shift_read_first_gives_the_same_kpis(
    api: APIClient, tmp_path: Path
) -> None:
    # E.g. a collector that picked up the new file before the rotated one.
    early, late = tmp_path / "queue_log.1", tmp_path / "queue_log"
    early.write_text("".join(SHIFT[:9]))
    late.write_text("".join(SHIFT[9:]))
    ingest(late)
    ingest(early)
    assert {key: kpi_row(api)[key] for key in EXPECTED} == EXPECTED
    assert state(api)["state"] == "offline"


def test_a_half_written_line_waits_until_it_is_whole(api: APIClient, tmp_path: Path) -> None:
    log = tmp_path / "queue_log"
    whole = "".join(SHIFT[:2])
    log.write_text(whole + SHIFT[2][:7])
    ingest(log)
    assert QueueLogPosition.objects.get().offset == len(whole.encode())
    log.write_text(whole + SHIFT[2] + SHIFT[3])
    ingest(log)
    assert state(api)["reason"] == "Lunch"
    assert RefusedRecord.objects.count() == 0


def test_rotation_while_stopped_finishes_the_old_file_first(api: APIClient, tmp_path: Path) -> None:
    log = tmp_path / "queue_log"
    log.write_text("".join(SHIFT[:2]))
    ingest(log)
    # Lines written after our last run, then the file rotated (logrotate's default: rename).
    with log.open("a") as handle:
        handle.write("".join(SHIFT[2:6]))
    log.rename(tmp_path / "queue_log.1")
    log.write_text("".join(SHIFT[6:]))
    summary = ingest(log)
    assert "1 rotations" in summary
    assert {key: kpi_row(api)[key] for key in EXPECTED} == EXPECTED


def test_a_file_truncated_in_place_is_read_from_its_start(api: APIClient, tmp_path: Path) -> None:
    log = tmp_path / "queue_log"
    log.write_text("".join(SHIFT))
    ingest(log)
    log.write_text(q(1000, "ADDMEMBER", "sales", "NONE", ""))  # copytruncate, then a new line
    ingest(log)
    assert state(api)["state"] == "available"


def test_a_malformed_line_is_reported_with_its_position_and_the_rest_is_read(
    api: APIClient, tmp_path: Path
) -> None:
    log = tmp_path / "queue_log"
    lines = [*SHIFT[:2], "this is not a queue_log line\n", "xx|c|q|PJSIP/1|CONNECT\n", *SHIFT[2:]]
    log.write_text("".join(lines))
    summary = ingest(log)
    assert "2 refused" in summary
    offset = len("".join(SHIFT[:2]).encode())
    refusals = {r.position: r.reason for r in RefusedRecord.objects.all()}
    assert refusals[f"line 3 (byte {offset})"].startswith("line: expected epoch|callid")
    assert refusals[f"line 4 (byte {offset + len(lines[2])})"].startswith("epoch: not a number")
    assert {key: kpi_row(api)[key] for key in EXPECTED} == EXPECTED
    status = IntegrationStatus.objects.get(kind="asterisk")
    assert status.name == f"asterisk:{log}"
    assert (status.records, status.refused) == (len(lines), 2)


def test_a_missing_file_reads_nothing(tmp_path: Path) -> None:
    assert "0 lines" in ingest(tmp_path / "absent")


def test_an_unreadable_path_is_a_clear_command_error(tmp_path: Path) -> None:
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="Is a directory"):
        ingest(tmp_path)


def _wait_for(condition: Any, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_follow_tails_the_file_across_a_rotation(api: APIClient, tmp_path: Path) -> None:
    log = tmp_path / "queue_log"
    log.write_text("".join(SHIFT[:2]))
    stop = threading.Event()
    result: dict[str, Any] = {}

    def follow() -> None:
        from django.db import connection

        try:
            result["run"] = read_queue_log(log, follow=True, poll_seconds=0.05, stop=stop)
        finally:
            connection.close()

    thread = threading.Thread(target=follow)
    thread.start()
    try:
        _wait_for(lambda: Event.objects.count() == 1)
        with log.open("a") as handle:
            handle.write("".join(SHIFT[2:8]))
        _wait_for(lambda: Event.objects.filter(type="interaction.started").exists())
        # logrotate: rename, a last line still written to the old file, then a new file.
        log.rename(tmp_path / "queue_log.1")
        with (tmp_path / "queue_log.1").open("a") as handle:
            handle.write(SHIFT[8])
        log.write_text("".join(SHIFT[9:]))
        _wait_for(lambda: Event.objects.filter(type="agent.logged_out").exists())
    finally:
        stop.set()
        thread.join(10)
    assert result["run"].rotations == 1
    assert {key: kpi_row(api)[key] for key in EXPECTED} == EXPECTED


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.asyncio
async def test_the_wall_shows_queue_log_agents(
    manager_maria: Any, tmp_path: Path, settings: Any
) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    wall, _ = await connected_wall(manager_maria)
    log = tmp_path / "queue_log"
    now = int(timezone.now().timestamp())
    log.write_text(f"{now}|NONE|sales|{AGENT}|ADDMEMBER|\n{now}|NONE|sales|{AGENT}|PAUSE|Break\n")
    await database_sync_to_async(read_queue_log)(log)
    seen: list[dict[str, Any]] = []
    while not seen or seen[-1]["state"] != "not_ready":
        frame = await wall.receive_json_from(timeout=3)
        seen.extend([frame["agent"]] if frame["type"] == "agent" else frame["agents"])
    assert (seen[-1]["agent"], seen[-1]["reason"]) == (AGENT, "Break")
    await wall.disconnect()


@pytest.mark.integration
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_command_follows_stops_on_sigterm_and_resumes_where_it_stopped(
    tmp_path: Path,
) -> None:
    import os
    import signal
    import subprocess
    import sys

    from django.conf import settings

    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "DEBUG": "1",
    }
    log = tmp_path / "queue_log"
    log.write_text("".join(SHIFT[:4]))
    command = [
        sys.executable,
        "manage.py",
        "ingest_queue_log",
        str(log),
        "--follow",
        "--poll",
        "0.1",
    ]

    def run_until(condition: Any) -> str:
        process = subprocess.Popen(
            command, cwd=settings.BASE_DIR, env=env, stdout=subprocess.PIPE, text=True
        )
        try:
            _wait_for(condition, seconds=60)
        finally:
            process.send_signal(signal.SIGTERM)
            out, _ = process.communicate(timeout=30)
        assert process.returncode == 0
        return out

    first = run_until(lambda: Event.objects.filter(type="agent.not_ready").exists())
    assert "4 lines" in first
    with log.open("a") as handle:
        handle.write("".join(SHIFT[4:]))
    second = run_until(lambda: Event.objects.filter(type="agent.logged_out").exists())
    # Resumed after the 4 lines already taken: none of them is read again.
    assert f"{len(SHIFT) - 4} lines" in second and " 0 duplicates" in second
