"""The write side of the integrations: platform records in, ``agents.services`` out.

Each entry point translates records with its pure adapter, names agents created on first sight,
hands every event to ``agents.services.ingest_events`` (the one ingestion path: same
validation, idempotency, ordering and replay as ``POST /api/v1/events``) and records what
happened on the integration's status row. A record that cannot be taken is refused on its own,
with its position and the reason; it never blocks the records after it.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from agents import services as agent_services
from agents.choices import Channel
from agents.models import Agent, Event
from agents.states import AgentProjection

from . import connect, queue_log, taskrouter
from .common import RecordRefused, Translated
from .models import (
    ASTERISK,
    CONNECT,
    TWILIO,
    IntegrationStatus,
    QueueLogPosition,
    RefusedRecord,
    TwilioActivity,
)

logger = logging.getLogger(__name__)

EXCERPT = 500  # characters of a record kept with its status or refusal
KEEP_REFUSALS = 500  # newest refused records kept per integration


@dataclass
class FeedReport:
    """What one request (or one chunk of a file) brought, written to the status row once."""

    name: str
    kind: str
    records: int = 0
    accepted: int = 0
    duplicates: int = 0
    refusals: list[tuple[str, str, str]] = field(default_factory=list)  # position, reason, excerpt
    last_record: str = ""

    def refuse(self, position: str, reason: str, excerpt: str) -> None:
        self.refusals.append((position, reason, excerpt[:EXCERPT]))


Item = tuple[str, str, Callable[[], Translated]]  # position, excerpt, translation


def take(report: FeedReport, items: Iterable[Item]) -> None:
    """Translate and ingest records in order; each is taken or refused on its own."""
    batch: list[dict[str, Any]] = []
    owners: list[tuple[str, str]] = []  # (position, excerpt) of each event in ``batch``
    names: dict[str, str] = {}
    for position, excerpt, translate in items:
        report.records += 1
        report.last_record = excerpt[:EXCERPT]
        try:
            translated = translate()
        except RecordRefused as exc:
            report.refuse(position, str(exc), excerpt)
            continue
        except Exception as exc:
            # A bug in an adapter must not cost the rest of the batch: refuse and log it.
            logger.exception("adapter failed on %s %s", report.name, position)
            report.refuse(position, f"could not translate: {type(exc).__name__}", excerpt)
            continue
        names.update(translated.names)
        batch.extend(translated.events)
        owners.extend((position, excerpt) for _ in translated.events)
    if not batch:
        return
    in_batch = {event["agent"] for event in batch}
    created = name_new_agents({k: v for k, v in names.items() if k in in_batch})
    refused_positions: set[str] = set()
    results = agent_services.ingest_events(batch, source=report.kind)
    if created and any(result.status != "accepted" for result in results):
        _forget_phantoms(created)
    for result, (position, excerpt) in zip(results, owners, strict=True):
        if result.status == "accepted":
            report.accepted += 1
        elif result.status == "duplicate":
            report.duplicates += 1
        elif position not in refused_positions:
            refused_positions.add(position)
            report.refuse(position, f"{result.event_id}: {result.error}", excerpt)


def name_new_agents(names: Mapping[str, str]) -> list[str]:
    """Create the agents a platform names, and give a display name to those still unnamed.

    Created before their first event so that the first wall update already shows the name. An
    agent created on first sight is named after its external id; a name an admin or the
    provisioning API set is never overwritten. Returns the external ids created here.
    """
    if not names:
        return []
    known = dict(
        Agent.objects.filter(external_id__in=list(names)).values_list("external_id", "name")
    )
    created = []
    for external_id, name in names.items():
        if external_id not in known:
            agent_services.get_or_create_agent(external_id)
            known[external_id] = external_id
            created.append(external_id)
        if known[external_id] == external_id and name != external_id:
            Agent.objects.filter(external_id=external_id, name=external_id).update(name=name)
    return created


def _forget_phantoms(external_ids: list[str]) -> None:
    """Remove agents created for events that were all refused: no phantom on the walls."""
    try:
        with transaction.atomic():
            Agent.objects.filter(external_id__in=external_ids, events__isnull=True).delete()
    except IntegrityError:
        # An event for one of them arrived meanwhile (PROTECT): it is no phantom, keep it.
        pass


def record_status(report: FeedReport) -> None:
    """Add a report to its integration's status row (counters as F() updates) and refusals."""
    now = timezone.now()
    status, _ = IntegrationStatus.objects.get_or_create(
        name=report.name[:300], defaults={"kind": report.kind}
    )
    update: dict[str, Any] = {
        "records": F("records") + report.records,
        "refused": F("refused") + len(report.refusals),
        "events_accepted": F("events_accepted") + report.accepted,
        "events_duplicate": F("events_duplicate") + report.duplicates,
    }
    if report.records:
        update |= {"last_arrival_at": now, "last_record": report.last_record}
    if report.refusals:
        position, reason, _ = report.refusals[-1]
        update |= {"last_refused_at": now, "last_refusal": f"{position}: {reason}"[:2000]}
        RefusedRecord.objects.bulk_create(
            RefusedRecord(integration=status, position=p[:300], reason=r, excerpt=e)
            for p, r, e in report.refusals[-KEEP_REFUSALS:]
        )
        oldest_kept = (
            RefusedRecord.objects.filter(integration=status)
            .order_by("-id")
            .values_list("id", flat=True)[KEEP_REFUSALS - 1 : KEEP_REFUSALS]
        )
        if oldest_kept:
            RefusedRecord.objects.filter(integration=status, id__lt=oldest_kept[0]).delete()
    IntegrationStatus.objects.filter(pk=status.pk).update(**update)


# --- Amazon Connect (Firehose HTTP endpoint delivery) ---------------------------------------


def ingest_firehose(body: Mapping[str, Any], request_id: str) -> FeedReport:
    """Take one Firehose request's records (agent events, base64 JSON), in order."""
    report = FeedReport(CONNECT, CONNECT)
    records = body.get("records")
    items: list[Item] = []
    for index, record in enumerate(records if isinstance(records, list) else []):
        position = f"request {request_id} record {index}"
        raw = record.get("data") if isinstance(record, dict) else None
        items.append((position, _readable(raw), _connect_translation(raw)))
    take(report, items)
    record_status(report)
    return report


def _readable(raw: Any) -> str:
    """The start of a record as an admin wants to read it: decoded when it is base64."""
    if isinstance(raw, str):
        try:
            return base64.b64decode(raw[: EXCERPT * 2]).decode("utf-8", "replace")[:EXCERPT]
        except (binascii.Error, ValueError):
            pass
    return str(raw)[:EXCERPT]


def _connect_translation(raw: Any) -> Callable[[], Translated]:
    def translate() -> Translated:
        if not isinstance(raw, str):
            raise RecordRefused("data: must be a base64 string")
        try:
            decoded = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise RecordRefused("data: not valid base64") from None
        try:
            record = json.loads(decoded)
        except (ValueError, UnicodeDecodeError):
            raise RecordRefused("data: not a JSON agent event") from None
        return connect.translate(record)

    return translate


# --- Twilio TaskRouter ------------------------------------------------------------------------


def ingest_taskrouter(params: Mapping[str, str]) -> FeedReport:
    """Take one TaskRouter event callback (already signature-checked)."""
    report = FeedReport(TWILIO, TWILIO)
    position = f"event {str(params.get('Sid') or '?')[:64]} ({params.get('EventType') or '?'})"
    excerpt = json.dumps(dict(params), sort_keys=True)[:EXCERPT]

    def translate() -> Translated:
        change = taskrouter.activity_change(params)
        if change is not None:
            sid, name, available = change
            TwilioActivity.objects.update_or_create(
                sid=sid, defaults={"name": name, "available": available}
            )
            return Translated()
        return taskrouter.translate(params, _availability(params), _held_tasks)

    take(report, [(position, excerpt, translate)])
    record_status(report)
    return report


def _availability(params: Mapping[str, str]) -> dict[str, bool]:
    sid = params.get("WorkerActivitySid")
    if not sid:
        return {}
    return dict(TwilioActivity.objects.filter(sid=sid).values_list("sid", "available"))


def _held_tasks(worker: str, at: datetime) -> list[str]:
    """The tasks other than voice ones the worker held just before ``at``, as the stored
    callbacks left them (accepted, and in wrap-up until completed): the projection after the
    worker's last event before ``at``, so that a redelivered callback reads the same."""
    before = (
        Event.objects.filter(agent__external_id=worker, occurred_at__lt=at)
        .order_by("-occurred_at", "-id")
        .values_list("state_after", flat=True)
        .first()
    )
    projection = AgentProjection.from_json(before)
    open_contacts = [(it.interaction_id, it.channel) for it in projection.interactions]
    open_contacts += [(acw.interaction_id, acw.channel) for acw in projection.acws]
    return [task for task, channel in open_contacts if task and channel != Channel.PHONE]


def twilio_refused(reason: str) -> None:
    """Count a callback refused before translation (a missing or wrong signature)."""
    report = FeedReport(TWILIO, TWILIO, records=1)
    report.refuse("callback", reason, "")
    record_status(report)


# --- Asterisk queue_log ---------------------------------------------------------------------

CHUNK_LINES = 500


@dataclass
class QueueLogRun:
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    refused: int = 0
    rotations: int = 0

    def add(self, report: FeedReport) -> None:
        self.lines += report.records
        self.accepted += report.accepted
        self.duplicates += report.duplicates
        self.refused += len(report.refusals)


def read_queue_log(
    path: str | Path,
    *,
    follow: bool = False,
    poll_seconds: float = 0.5,
    stop: threading.Event | None = None,
) -> QueueLogRun:
    """Ingest ``path`` from where the last run stopped (``QueueLogPosition``).

    Only whole lines are consumed; each chunk of lines is ingested in one transaction together
    with the new position and adapter state, so a restart resumes exactly after the last
    committed line. Rotation: when the file at ``path`` is another file than the one the
    position belongs to, the rest of the old file is read first if it is still next to it
    (``queue_log.1``...), then the new file from its start; a file shorter than the position
    (truncated in place) is read from its start. With ``follow`` it keeps polling until
    ``stop`` is set.
    """
    path = Path(path).absolute()
    stop = stop or threading.Event()
    run = QueueLogRun()
    name = f"{ASTERISK}:{path}"
    position, _ = QueueLogPosition.objects.get_or_create(path=str(path))
    handle = None
    try:
        while True:
            if handle is None:
                handle = _open_at_position(path, position, run, name)
                if handle is None:  # no file (yet)
                    if not follow or stop.wait(poll_seconds):
                        return run
                    continue
            _consume(handle, position, run, name)
            if not follow:
                return run
            if stop.wait(poll_seconds):
                return run
            replaced = _replaced(path, handle)
            if replaced:
                # Rotated: read what was appended to the old file before the switch.
                _consume(handle, position, run, name)
                handle.close()
                handle = None
                _reset(position, None)
                run.rotations += 1
    finally:
        if handle is not None:
            handle.close()


def _open_at_position(path: Path, position: QueueLogPosition, run: QueueLogRun, name: str) -> Any:
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return None
    stat = os.fstat(handle.fileno())
    if position.inode is not None and position.inode != stat.st_ino:
        # The file we were reading was rotated while we were not looking.
        old = _rotated_copy(path, position.inode)
        if old is not None:
            with old.open("rb") as old_handle:
                _consume(old_handle, position, run, name)
        run.rotations += 1
        _reset(position, stat.st_ino)
    elif stat.st_size < position.offset:
        _reset(position, stat.st_ino)  # truncated in place (copytruncate)
    elif position.inode is None:
        position.inode = stat.st_ino
        position.save(update_fields=["inode", "updated_at"])
    handle.seek(position.offset)
    return handle


def _rotated_copy(path: Path, inode: int) -> Path | None:
    for sibling in sorted(path.parent.glob(path.name + "?*")):
        try:
            if sibling.stat().st_ino == inode:
                return sibling
        except OSError:
            continue
    return None


def _replaced(path: Path, handle: Any) -> bool:
    try:
        current = path.stat()
    except FileNotFoundError:
        return False  # rotated and not re-created yet: keep reading the old handle
    return current.st_ino != os.fstat(handle.fileno()).st_ino or current.st_size < handle.tell()


def _reset(position: QueueLogPosition, inode: int | None) -> None:
    position.inode, position.offset, position.line = inode, 0, 0
    position.save(update_fields=["inode", "offset", "line", "updated_at"])


def _consume(handle: Any, position: QueueLogPosition, run: QueueLogRun, name: str) -> None:
    """Ingest every whole line from the handle's position, in chunks."""
    if position.inode is None:
        position.inode = os.fstat(handle.fileno()).st_ino
    while True:
        # Always from the end of the last whole line: a half-written line read before must be
        # read again whole, never as the tail that was appended later.
        handle.seek(position.offset)
        lines: list[bytes] = []
        size = 0
        while len(lines) < CHUNK_LINES:
            line = handle.readline()
            if not line.endswith(b"\n"):
                break  # end of file, or a line still being written: read it next time
            lines.append(line)
            size += len(line)
        if not lines:
            handle.seek(position.offset)
            return
        _take_chunk(lines, size, position, run, name)


def _take_chunk(
    lines: list[bytes], size: int, position: QueueLogPosition, run: QueueLogRun, name: str
) -> None:
    state = queue_log.QueueLogState.from_json(position.state)
    report = FeedReport(name, ASTERISK)
    items: list[Item] = []
    offset, number = position.offset, position.line
    for raw in lines:
        number += 1
        text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        where = f"line {number} (byte {offset})"
        offset += len(raw)
        if text.strip():
            items.append((where, text, _queue_log_translation(text, state)))
    with transaction.atomic():
        take(report, items)
        position.offset += size
        position.line = number
        position.state = state.to_json()
        position.save(update_fields=["inode", "offset", "line", "state", "updated_at"])
        record_status(report)
    run.add(report)


def _queue_log_translation(line: str, state: queue_log.QueueLogState) -> Callable[[], Translated]:
    return lambda: queue_log.translate(line, state)
