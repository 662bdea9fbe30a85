"""Progress of long management commands: a bar in a terminal, one line in a log, nothing at -v0.

Every long command (``replay_events``, ``seed_demo``, ``seed_history``, ``purge_expired_data``,
``rebuild_rollups``) reports through ``progress()``:

- stderr is a terminal: a tqdm bar, redrawn in place;
- stderr is a pipe or a file (``make run``, cron, a container's log): no carriage returns at
  all, only one summary line when the step ends (``History: 1200 events in 3.4 s``);
- ``--verbosity 0``: nothing.

    with progress(self, options["verbosity"], total=len(ids), unit="agent", desc="Replay") as bar:
        for agent_id in ids:
            ...
            bar.update(1)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from tqdm import tqdm


class _Line:
    """The pipe variant: counts, and writes one line at the end."""

    def __init__(self, stream: IO[str] | None, total: int | None, unit: str, desc: str) -> None:
        self.stream = stream
        self.total = total
        self.unit = unit
        self.desc = desc
        self.n = 0
        self.postfix = ""
        self.started = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def close(self) -> None:
        if self.stream is None:
            return
        elapsed = time.monotonic() - self.started
        of = f"/{self.total}" if self.total is not None and self.total != self.n else ""
        extra = f" ({self.postfix})" if self.postfix else ""
        self.stream.write(f"{self.desc}: {self.n}{of} {self.unit}s in {elapsed:.1f} s{extra}\n")
        self.stream.flush()


def _stream_of(command: Any) -> IO[str]:
    # The raw stream under Django's OutputWrapper, which would end every redraw with a newline.
    stderr = getattr(command, "stderr", None)
    return getattr(stderr, "_out", None) or sys.stderr


@contextmanager
def progress(
    command: Any,
    verbosity: int,
    *,
    total: int | None = None,
    unit: str = "item",
    desc: str = "Progress",
) -> Iterator[Any]:
    """A bar (terminal), a summary line (pipe) or silence (``verbosity`` 0) on the command's
    stderr; ``.update(n)`` and ``.set_postfix_str(text)`` work on each."""
    stream = _stream_of(command)
    if verbosity == 0:
        bar: Any = _Line(None, total, unit, desc)
    elif stream.isatty():
        bar = tqdm(total=total, unit=unit, desc=desc, file=stream, dynamic_ncols=True)
    else:
        bar = _Line(stream, total, unit, desc)
    try:
        yield bar
    finally:
        bar.close()
