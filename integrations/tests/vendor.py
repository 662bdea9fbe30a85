"""Platform-shaped fixtures, written from each vendor's documented field lists.

Amazon Connect: agent event stream records (``EventType``, ``EventId``, ``EventTimestamp``,
``AgentARN``, ``InstanceARN``, ``AWSAccountId``, ``Version``, previous/current snapshot with
``AgentStatus``, ``NextAgentStatus``, ``Configuration``, ``Contacts``) inside a Firehose HTTP
endpoint request. Twilio: TaskRouter event callback form fields, signed like Twilio signs them.
Asterisk: queue_log lines.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from twilio.request_validator import RequestValidator

ACCOUNT = "123456789012"
INSTANCE = f"arn:aws:connect:eu-west-2:{ACCOUNT}:instance/9f2c4c4e-1f5b-4e53-9a66-2f1e0b6ad7a1"
STATUS_ARNS = {"Available": "a1", "Offline": "a2", "Lunch": "a3", "Break": "a4"}


def stamp(at: datetime) -> str:
    """Connect's style: UTC with milliseconds and a Z."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def contact(
    contact_id: str,
    state: str,
    state_start: datetime,
    connected_at: datetime | None,
    channel: str = "VOICE",
    queue: str = "Support",
) -> dict[str, Any]:
    return {
        "ContactId": contact_id,
        "InitialContactId": None,
        "Channel": channel,
        "InitiationMethod": "INBOUND",
        "State": state,
        "StateStartTimestamp": stamp(state_start),
        "ConnectedToAgentTimestamp": stamp(connected_at) if connected_at else None,
        "QueueTimestamp": stamp(state_start),
        "Queue": {"ARN": f"{INSTANCE}/queue/{queue.lower()}", "Name": queue},
    }


def snapshot(
    username: str,
    status: str,
    status_since: datetime,
    contacts: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "AgentStatus": {
            "ARN": f"{INSTANCE}/agent-state/{STATUS_ARNS.get(status, status)}",
            "Name": status,
            "StartTimestamp": stamp(status_since),
        },
        "NextAgentStatus": None,
        "Configuration": {
            "FirstName": username.split("@")[0].capitalize(),
            "LastName": "Connect",
            "Username": username,
            "AgentHierarchyGroups": None,
            "RoutingProfile": {
                "ARN": f"{INSTANCE}/routing-profile/basic",
                "Name": "Basic Routing Profile",
                "Concurrency": [{"Channel": "VOICE", "MaximumSlots": 1}],
                "DefaultOutboundQueue": {"ARN": f"{INSTANCE}/queue/out", "Name": "Outbound"},
                "InboundQueues": [{"ARN": f"{INSTANCE}/queue/support", "Name": "Support"}],
            },
        },
        "Contacts": contacts or [],
    }


def record(
    event_type: str,
    at: datetime,
    current: dict[str, Any] | None,
    previous: dict[str, Any] | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "AWSAccountId": ACCOUNT,
        "AgentARN": f"{INSTANCE}/agent/{uuid.uuid5(uuid.NAMESPACE_DNS, str(current))}",
        "EventId": event_id or str(uuid.uuid4()),
        "EventTimestamp": stamp(at),
        "EventType": event_type,
        "InstanceARN": INSTANCE,
        "Version": "2019-05-25",
        "CurrentAgentSnapshot": current,
    }
    if previous is not None:
        body["PreviousAgentSnapshot"] = previous
    return body


def firehose(records: list[dict[str, Any] | bytes], request_id: str | None = None) -> dict:
    """A Firehose HTTP endpoint delivery request body."""

    def data(item: dict[str, Any] | bytes) -> str:
        raw = item if isinstance(item, bytes) else json.dumps(item).encode()
        return base64.b64encode(raw).decode()

    return {
        "requestId": request_id or str(uuid.uuid4()),
        "timestamp": 1_700_000_000_000,
        "records": [{"data": data(item)} for item in records],
    }


# --- Twilio TaskRouter ----------------------------------------------------------------------

WORKSPACE = "WS" + "0" * 32
ACTIVITIES = {
    "Offline": ("WA" + "1" * 32, False),
    "Available": ("WA" + "2" * 32, True),
    "Break": ("WA" + "3" * 32, False),
    "Lunch": ("WA" + "4" * 32, False),
}


def taskrouter(event_type: str, sid: str, at: datetime, **fields: str) -> dict[str, str]:
    """One event callback's form fields (common fields plus the resource's own)."""
    params = {
        "EventType": event_type,
        "Sid": sid,
        "AccountSid": "AC" + "a" * 32,
        "WorkspaceSid": WORKSPACE,
        "WorkspaceName": "Contact center",
        "EventDescription": f"{event_type} event",
        "ResourceType": event_type.split(".")[0].capitalize(),
        "ResourceSid": fields.get("TaskSid") or fields.get("WorkerSid") or sid,
        "Timestamp": str(int(at.timestamp())),
        "TimestampMs": str(int(at.timestamp() * 1000)),
    }
    params.update(fields)
    return params


def worker_fields(worker_sid: str, name: str, activity: str) -> dict[str, str]:
    activity_sid, _ = ACTIVITIES[activity]
    return {
        "WorkerSid": worker_sid,
        "WorkerName": name,
        "WorkerAttributes": json.dumps({"contact_uri": f"client:{name.lower()}"}),
        "WorkerActivitySid": activity_sid,
        "WorkerActivityName": activity,
        "WorkerVersion": "3",
    }


def task_fields(task_sid: str, channel: str = "voice", **attributes: Any) -> dict[str, str]:
    return {
        "TaskSid": task_sid,
        "TaskAttributes": json.dumps({"direction": "inbound", **attributes}),
        "TaskAge": "25",
        "TaskPriority": "0",
        "TaskAssignmentStatus": "assigned",
        "TaskChannelUniqueName": channel,
        "TaskQueueSid": "WQ" + "5" * 32,
        "TaskQueueName": "Support",
        "WorkflowSid": "WW" + "6" * 32,
    }


def sign(url: str, params: dict[str, str], token: str) -> str:
    return RequestValidator(token).compute_signature(url, params)
