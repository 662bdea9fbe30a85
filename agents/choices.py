"""The domain's vocabularies, as Django model choices: states, channels, directions, ACW modes
and end reasons.

Every list of them is read from here: the models' fields, event validation, the API schema, the
pure state machine (``agents.states``, which must not import the models) and the pages, which
hand them to their JavaScript (``json_script``). Importing this module needs no database.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class State(models.TextChoices):
    OFFLINE = "offline", _("Offline")
    AVAILABLE = "available", _("Available")
    ON_INTERACTION = "on_interaction", _("On interaction")
    ACW = "acw", _("ACW")
    NOT_READY = "not_ready", _("Not ready")


class Channel(models.TextChoices):
    PHONE = "phone", _("Phone")
    CHAT = "chat", _("Chat")
    EMAIL = "email", _("E-mail")
    OTHER = "other", _("Other")


class Direction(models.TextChoices):
    INBOUND = "inbound", _("Inbound")
    OUTBOUND = "outbound", _("Outbound")


class AcwMode(models.TextChoices):
    NONE = "none", _("None (straight back to available)")
    MANUAL = "manual", _("Manual (until the agent ends it)")
    TIMED = "timed", _("Timed (automatic timer, early exit allowed)")
    TIMED_STRICT = "timed_strict", _("Timed, strict (no early exit)")


class TimeoutAction(models.TextChoices):
    AVAILABLE = "available", _("Back to available")
    NOT_READY = "not_ready", _("Not ready with a reason")


class AcwEndReason(models.TextChoices):
    AGENT_READY = "agent_ready", _("Agent ready")
    SUPERVISOR = "supervisor", _("Ended by supervisor")
    TIMEOUT = "timeout", _("Timeout")
    NOT_READY = "not_ready", _("Agent went not ready")
    INTERACTION = "interaction", _("New interaction")
    LOGOUT = "logout", _("Logout")


class PolicyViolation(models.TextChoices):
    """What an ACW did against its policy (``AcwSession.policy_violation``, comma-separated)."""

    EARLY_EXIT = "early_exit", _("Ended early under a strict policy")
    MISSING_WRAP_UP = "missing_wrap_up", _("Missing wrap-up code")


class InteractionEndReason(models.TextChoices):
    ENDED = "ended", _("Ended")
    REPLACED = "replaced", _("Replaced by a new interaction")
    LOGOUT = "logout", _("Agent logged out")
