"""The domain's vocabularies, as Django model choices: states, channels, directions, ACW modes
and end reasons.

Every list of them is read from here: the models' fields, event validation, the API schema, the
pure state machine (``agents.states``, which must not import the models) and the pages, which
hand them to their JavaScript (``json_script``). Importing this module needs no database.
"""

from __future__ import annotations

from django.db import models


class State(models.TextChoices):
    OFFLINE = "offline", "Offline"
    AVAILABLE = "available", "Available"
    ON_INTERACTION = "on_interaction", "On interaction"
    ACW = "acw", "ACW"
    NOT_READY = "not_ready", "Not ready"


class Channel(models.TextChoices):
    PHONE = "phone", "Phone"
    CHAT = "chat", "Chat"
    EMAIL = "email", "E-mail"
    OTHER = "other", "Other"


class Direction(models.TextChoices):
    INBOUND = "inbound", "Inbound"
    OUTBOUND = "outbound", "Outbound"


class AcwMode(models.TextChoices):
    NONE = "none", "None (straight back to available)"
    MANUAL = "manual", "Manual (until the agent ends it)"
    TIMED = "timed", "Timed (automatic timer, early exit allowed)"
    TIMED_STRICT = "timed_strict", "Timed, strict (no early exit)"


class TimeoutAction(models.TextChoices):
    AVAILABLE = "available", "Back to available"
    NOT_READY = "not_ready", "Not ready with a reason"


class AcwEndReason(models.TextChoices):
    AGENT_READY = "agent_ready", "Agent ready"
    SUPERVISOR = "supervisor", "Ended by supervisor"
    TIMEOUT = "timeout", "Timeout"
    NOT_READY = "not_ready", "Agent went not ready"
    INTERACTION = "interaction", "New interaction"
    LOGOUT = "logout", "Logout"


class PolicyViolation(models.TextChoices):
    """What an ACW did against its policy (``AcwSession.policy_violation``, comma-separated)."""

    EARLY_EXIT = "early_exit", "Ended early under a strict policy"
    MISSING_WRAP_UP = "missing_wrap_up", "Missing wrap-up code"


class InteractionEndReason(models.TextChoices):
    ENDED = "ended", "Ended"
    REPLACED = "replaced", "Replaced by a new interaction"
    LOGOUT = "logout", "Agent logged out"
