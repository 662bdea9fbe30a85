"""What the browser tests share: the server process and a few page helpers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from django.conf import settings

from agents.tests.factories import event

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A server process serving ``acw_site.asgi:application`` against the test database.

    daphne with DEBUG on by default (the browser tests); ``production=True`` runs it as
    deployed (docs/deploy.md): one uvicorn process with DEBUG off, for the benchmarks.
    """

    def __init__(self, log_path: Path, *, production: bool = False) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.production = production
        self.proc: subprocess.Popen[bytes] | None = None

    def _env(self) -> dict[str, str]:
        db = settings.DATABASES["default"]
        env = dict(os.environ)
        env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        if db["ENGINE"] == "django.db.backends.postgresql":
            auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
            env["DATABASE_URL"] = f"postgres://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
        else:
            env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
        env["DEBUG"] = "1"
        if self.production:
            # Sessions made by this process must verify there: the same secret key.
            env.update(DEBUG="0", SECRET_KEY=settings.SECRET_KEY, ALLOWED_HOSTS="127.0.0.1")
        return env

    def _command(self) -> list[str]:
        app = "acw_site.asgi:application"
        if self.production:
            return [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1",
                    "--port", str(self.port), "--log-level", "warning", "--no-access-log"]  # fmt: skip
        return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), app]

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self._command(),
            cwd=ROOT,
            env=self._env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited; see {self.log_path}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"server did not start; see {self.log_path}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def post_events(self, token: str, *events: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps({"events": list(events)}).encode()
        request = urllib.request.Request(
            f"{self.url}/api/v1/events",
            data=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())


def log_in(page: Any, server: Server, username: str, password: str, then: str = "/") -> None:
    page.goto(f"{server.url}/accounts/login/?next={then}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}{then}")


def wait_live(page: Any) -> None:
    page.wait_for_selector('#conn[data-status="live"]')


FIRST = [
    "Ana",
    "Ben",
    "Chloé",
    "Dev",
    "Eli",
    "Fatima",
    "Gus",
    "Hana",
    "Ivo",
    "Jade",
    "Kofi",
    "Lena",
    "Mateo",
    "Nia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sami",
    "Tess",
    "Uma",
    "Viktor",
    "Wen",
    "Xavi",
    "Yara",
    "Zoe",
]
LAST = [
    "Adams",
    "Berg",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ito",
    "Jansen",
    "Kowalski",
    "Lopez",
    "Martin",
    "Novak",
    "Okafor",
    "Petrov",
    "Quist",
    "Rossi",
    "Silva",
    "Tanaka",
    "Ueda",
    "Varga",
    "Weber",
    "Yilmaz",
    "Zhang",
]
REASONS = ["break", "lunch", "meeting", "training"]


def seed_floor(count: int, teams: list[str], seed: int = 1, prefix: str = "ag") -> list[str]:
    """``count`` agents across ``teams`` in a realistic spread of states, via the services."""
    import random

    from agents import services

    rng = random.Random(seed)
    ids = []
    raw: list[dict[str, Any]] = []
    for n in range(count):
        external_id = f"{prefix}{n:04d}"
        name = f"{FIRST[n % len(FIRST)]} {LAST[(n * 7 + n // 26) % len(LAST)]}"
        services.provision_agent(external_id, name=name, team_name=teams[n % len(teams)])
        ids.append(external_id)
        login = rng.uniform(300, 3000)
        raw.append(event(external_id, "agent.logged_in", login))
        roll = rng.random()
        if roll < 0.38:
            started = rng.uniform(5, 420)
            raw.append(
                event(
                    external_id,
                    "interaction.started",
                    started,
                    interaction_id=f"i{n}",
                    channel=rng.choice(["phone", "phone", "phone", "chat", "email"]),
                )
            )
        elif roll < 0.56:
            ended = rng.uniform(1, 34)
            raw.append(
                event(
                    external_id,
                    "interaction.started",
                    ended + 200,
                    interaction_id=f"i{n}",
                    channel=rng.choice(["phone", "chat"]),
                )
            )
            raw.append(event(external_id, "interaction.ended", ended, interaction_id=f"i{n}"))
            if rng.random() < 0.25:
                raw.append(event(external_id, "acw.extended", max(0.5, ended - 1)))
        elif roll < 0.72:
            raw.append(
                event(
                    external_id, "agent.not_ready", rng.uniform(5, 1200), reason=rng.choice(REASONS)
                )
            )
        elif roll < 0.8:
            raw.append(event(external_id, "agent.logged_out", rng.uniform(5, 200)))
        else:
            ready = rng.uniform(1, 400)
            wrap = rng.uniform(8, 40)
            raw.append(
                event(
                    external_id,
                    "interaction.started",
                    ready + wrap + 240,
                    interaction_id=f"i{n}",
                    channel="phone",
                )
            )
            raw.append(
                event(external_id, "interaction.ended", ready + wrap, interaction_id=f"i{n}")
            )
            raw.append(event(external_id, "acw.ended", ready, wrap_up_code="resolved"))
    raw.sort(key=lambda e: e["occurred_at"])
    results = services.ingest_events(raw)
    assert all(r.status == "accepted" for r in results)
    return ids
