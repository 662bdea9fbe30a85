"""The outside edge, faked: our events written as each platform would send them.

``manage.py simulate --format connect|twilio|asterisk`` runs the usual traffic model and sends
every event through a platform's real integration path: an Amazon Connect agent event inside a
Firehose request, a TaskRouter callback, or a line appended to a queue_log file that
``read_queue_log`` then ingests. The adapters translate them back, so the wall shows what a
connected platform would produce (with each platform's gaps: Connect and queue_log carry no
wrap-up codes or ACW extensions, TaskRouter no holds; queue_log ends ACW by the policy timer).

The demo's agents keep their external ids as the platform's user name, worker sid or queue
member, so they stay in their teams.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from . import services

FORMATS = ("connect", "twilio", "asterisk")
CONNECT_CHANNELS = {"phone": "VOICE", "chat": "CHAT", "email": "EMAIL", "other": "TASKS"}
TWILIO_CHANNELS = {"phone": "voice", "chat": "chat", "email": "email", "other": "default"}
QUEUES = ("sales", "support")


def _stamp(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _sid(prefix: str, *parts: str) -> str:
    return prefix + hashlib.md5(":".join(parts).encode(), usedforsecurity=False).hexdigest()


class ConnectFeed:
    """Keeps each agent's snapshot; every event becomes one agent event record."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        self.snapshots: dict[str, dict[str, Any]] = {}

    def records(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        agent, kind, at = (
            event["agent"],
            event["type"],
            datetime.fromisoformat(event["occurred_at"]),
        )
        previous = self.snapshots.get(agent) or self._fresh(agent, at)
        current = copy.deepcopy(previous)
        contacts = current["Contacts"]
        record_type = "STATE_CHANGE"
        if kind == "agent.logged_in":
            record_type, current = "LOGIN", self._fresh(agent, at)
        elif kind == "agent.logged_out":
            record_type, current["Contacts"] = "LOGOUT", []
        elif kind in ("agent.available", "agent.not_ready"):
            name = "Available" if kind == "agent.available" else event["reason"].capitalize()
            current["AgentStatus"] = self._status(name, at)
        elif kind == "interaction.started":
            # A contact still in after-contact work is cleared when the next one connects.
            current["Contacts"] = [c for c in contacts if c["State"] != "ENDED"]
            current["Contacts"].append(self._contact(event, at))
        elif kind in ("interaction.held", "interaction.resumed", "interaction.ended"):
            state = {
                "interaction.held": "CONNECTED_ONHOLD",
                "interaction.resumed": "CONNECTED",
                "interaction.ended": "ENDED",
            }[kind]
            for contact in contacts:
                if contact["ContactId"] == event["interaction_id"]:
                    contact.update(State=state, StateStartTimestamp=_stamp(at))
        elif kind == "acw.ended":
            current["Contacts"] = [c for c in contacts if c["State"] != "ENDED"]
        else:
            return []  # acw.extended: Connect's feed has no such thing
        self.snapshots[agent] = current
        record = {
            "AWSAccountId": "123456789012",
            "AgentARN": f"arn:aws:connect:::instance/demo/agent/{agent}",
            "EventId": str(uuid.uuid4()),
            "EventTimestamp": _stamp(at),
            "EventType": record_type,
            "InstanceARN": "arn:aws:connect:::instance/demo",
            "Version": "2019-05-25",
            "CurrentAgentSnapshot": current,
        }
        if record_type == "STATE_CHANGE":
            record["PreviousAgentSnapshot"] = previous
        return [record]

    def send(self, event: dict[str, Any]) -> services.FeedReport:
        request_id = str(uuid.uuid4())
        body = {
            "requestId": request_id,
            "records": [
                {"data": base64.b64encode(json.dumps(r).encode()).decode()}
                for r in self.records(event)
            ],
        }
        return services.ingest_firehose(body, request_id)

    def _fresh(self, agent: str, at: datetime) -> dict[str, Any]:
        first, _, last = self.names.get(agent, agent).partition(" ")
        return {
            "AgentStatus": self._status("Available", at),
            "NextAgentStatus": None,
            "Configuration": {
                "FirstName": first,
                "LastName": last,
                "Username": agent,
                "AgentHierarchyGroups": None,
                "RoutingProfile": {"Name": "Demo"},
            },
            "Contacts": [],
        }

    @staticmethod
    def _status(name: str, at: datetime) -> dict[str, Any]:
        return {"ARN": f"demo/agent-state/{name}", "Name": name, "StartTimestamp": _stamp(at)}

    @staticmethod
    def _contact(event: dict[str, Any], at: datetime) -> dict[str, Any]:
        return {
            "ContactId": event["interaction_id"],
            "InitialContactId": None,
            "Channel": CONNECT_CHANNELS.get(event.get("channel", "other"), "TASKS"),
            "InitiationMethod": "INBOUND",
            "State": "CONNECTED",
            "StateStartTimestamp": _stamp(at),
            "ConnectedToAgentTimestamp": _stamp(at),
            "QueueTimestamp": _stamp(at),
            "Queue": {"ARN": "demo/queue", "Name": event.get("queue") or "Demo"},
        }


class TwilioFeed:
    """Every event as the TaskRouter callback that would have caused it."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        self.tasks: dict[str, dict[str, str]] = {}  # agent → the task fields of their call

    def callbacks(self, event: dict[str, Any]) -> list[dict[str, str]]:
        agent, kind = event["agent"], event["type"]
        at = datetime.fromisoformat(event["occurred_at"])
        common = {
            "Sid": _sid("EV", event["event_id"]),
            "AccountSid": "AC" + "0" * 32,
            "WorkspaceSid": "WS" + "0" * 32,
            "Timestamp": str(int(at.timestamp())),
            "TimestampMs": str(int(at.timestamp() * 1000)),
            "WorkerSid": agent,
            "WorkerName": self.names.get(agent, agent),
        }
        if kind in ("agent.logged_in", "agent.available", "agent.not_ready", "agent.logged_out"):
            activity = {
                "agent.logged_in": "Available",
                "agent.available": "Available",
                "agent.logged_out": "Offline",
            }.get(kind) or event["reason"].capitalize()
            return [
                {
                    **common,
                    "EventType": "worker.activity.update",
                    "WorkerActivitySid": _sid("WA", activity),
                    "WorkerActivityName": activity,
                }
            ]
        if kind == "interaction.started":
            self.tasks[agent] = {
                "TaskSid": event["interaction_id"],
                "TaskChannelUniqueName": TWILIO_CHANNELS.get(event.get("channel", ""), "default"),
                "TaskQueueName": event.get("queue") or "Demo",
                "TaskAttributes": json.dumps({"direction": "inbound"}),
            }
            return [{**common, **self.tasks[agent], "EventType": "reservation.accepted"}]
        task = self.tasks.get(agent)
        if task is None:
            return []
        if kind == "interaction.ended":
            return [{**common, **task, "EventType": "reservation.wrapup"}]
        if kind == "acw.ended":
            attributes = {"direction": "inbound", "wrap_up_code": event.get("wrap_up_code")}
            done = {**task, "TaskAttributes": json.dumps(attributes)}
            return [{**common, **done, "EventType": "reservation.completed"}]
        return []  # holds and extensions: TaskRouter has no such events

    def send(self, event: dict[str, Any]) -> services.FeedReport:
        report = services.FeedReport(services.TWILIO, services.TWILIO)
        for params in self.callbacks(event):
            one = services.ingest_taskrouter(params)
            report.accepted += one.accepted
            report.duplicates += one.duplicates
            report.refusals += one.refusals
        return report


class AsteriskFeed:
    """Appends queue_log lines to a file and ingests it, as ``ingest_queue_log`` would."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def lines(self, event: dict[str, Any]) -> list[str]:
        agent, kind = event["agent"], event["type"]
        epoch = str(int(datetime.fromisoformat(event["occurred_at"]).timestamp()))

        def each_queue(verb: str, data: str = "") -> list[str]:
            return [f"{epoch}|NONE|{queue}|{agent}|{verb}|{data}" for queue in QUEUES]

        if kind == "agent.logged_in":
            return each_queue("ADDMEMBER")
        if kind == "agent.logged_out":
            return each_queue("REMOVEMEMBER")
        if kind == "agent.not_ready":
            return each_queue("PAUSE", event["reason"])
        if kind == "agent.available":
            return each_queue("UNPAUSE")
        call = event.get("interaction_id", "")
        if kind == "interaction.started":
            return [f"{epoch}|{call}|{QUEUES[0]}|{agent}|CONNECT|1|{call}-agent|2"]
        if kind == "interaction.ended":
            return [f"{epoch}|{call}|{QUEUES[0]}|{agent}|COMPLETEAGENT|1|60|1"]
        return []  # Asterisk has no wrap-up or hold lines: the ACW runs on the policy timer

    def send(self, event: dict[str, Any]) -> services.FeedReport:
        lines = self.lines(event)
        report = services.FeedReport(services.ASTERISK, services.ASTERISK)
        if not lines:
            return report
        with self.path.open("a") as handle:
            handle.write("".join(line + "\n" for line in lines))
        run = services.read_queue_log(self.path)
        report.accepted, report.duplicates = run.accepted, run.duplicates
        report.refusals = [("", "refused", "")] * run.refused
        return report


Feed = ConnectFeed | TwilioFeed | AsteriskFeed


def feed(format_: str, names: dict[str, str], queue_log: Path) -> Feed:
    if format_ == "connect":
        return ConnectFeed(names)
    if format_ == "twilio":
        return TwilioFeed(names)
    return AsteriskFeed(queue_log)
