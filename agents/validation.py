"""Validation of incoming telephony events (docs/api.md, section 3), with DRF serializers.

``parse_event()`` turns one raw event into a ``ParsedEvent`` or raises ``EventRejected`` whose
message names the offending field. Validation is the first step of ``services.ingest_event``,
so the API, the simulator, the agent page and the tests all get the same rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty

from .choices import AcwEndReason, Channel, Direction
from .states import EVENT_TYPES

MAX_FUTURE = timedelta(minutes=5)
# No telephony event predates this; older instants are clock errors (an epoch-0 default, a
# year 1 that PostgreSQL stores but Python cannot read back once converted to UTC).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


ACW_ENDED_REASONS = [AcwEndReason.AGENT_READY.value, AcwEndReason.SUPERVISOR.value]


class EventRejected(Exception):
    """An event that cannot be stored; ``str()`` names the field."""


@dataclass(frozen=True)
class ParsedEvent:
    event_id: str
    type: str
    agent: str
    occurred_at: datetime
    data: dict[str, Any]

    def same_content(self, type: str, agent: str, occurred_at: datetime, data: dict) -> bool:
        """As docs/api.md defines it: type, agent, occurred_at as an instant and the type's own
        fields."""
        return (
            self.type == type
            and self.agent == agent
            and self.occurred_at == occurred_at
            and self.data == data
        )


@extend_schema_field(OpenApiTypes.DATETIME)
class OffsetDateTimeField(serializers.Field):
    """An ISO 8601 timestamp that must carry its UTC offset."""

    default_error_messages = {
        "invalid": "must be an ISO 8601 timestamp with a UTC offset, e.g. 2026-11-25T09:30:00+01:00",
        "naive": "must include a UTC offset (e.g. Z or +01:00)",
    }

    def to_internal_value(self, data: Any) -> datetime:
        if not isinstance(data, str):
            self.fail("invalid")
        try:
            value = datetime.fromisoformat(data.replace("z", "Z"))
        except ValueError:
            self.fail("invalid")
        if value.tzinfo is None or value.utcoffset() is None:
            self.fail("naive")
        # The instant in UTC: ISO 8601 allows offsets up to ±23:59, PostgreSQL's timestamptz
        # input only up to ±15:59, and ±19:12 reached it as a 500.
        try:
            value = value.astimezone(UTC)
        except OverflowError:  # 9999-12-31T23:00-05:00 is in the year 10000 in UTC
            self.fail("invalid")
        return value

    def to_representation(self, value: datetime) -> str:
        return value.isoformat()


class StrictCharField(serializers.CharField):
    """A JSON string and nothing else: DRF's CharField would turn ``42`` into ``"42"``.

    Its length limit applies to the string as sent, as the published schema says (DRF would
    measure it after trimming surrounding white space).
    """

    default_error_messages = {"not_a_string": "must be a string"}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        if self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)


class StrictNumberField(serializers.FloatField):
    """A JSON number and nothing else: DRF's FloatField accepts ``"30"`` and ``true``."""

    default_error_messages = {"not_a_number": "must be a number"}

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("not_a_number")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """A JSON ``true`` or ``false`` and nothing else: DRF's BooleanField accepts ``"yes"``,
    ``1`` and ``"on"``."""

    default_error_messages = {"not_a_boolean": "must be true or false"}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("not_a_boolean")
        return data


def _text(max_length: int, **kwargs: Any) -> serializers.CharField:
    return StrictCharField(max_length=max_length, trim_whitespace=False, **kwargs)


class EnvelopeSerializer(serializers.Serializer):
    """The fields every event has; each event type's serializer below adds its own."""

    event_id = _text(100, min_length=1, help_text="Idempotency key.")
    type = serializers.ChoiceField(choices=EVENT_TYPES)
    agent = _text(100, min_length=1, help_text="The agent's external id.")
    occurred_at = OffsetDateTimeField(
        help_text="ISO 8601 with a UTC offset; from 2000-01-01 to 5 minutes from now."
    )

    def validate_occurred_at(self, value: datetime) -> datetime:
        if value - timezone.now() > MAX_FUTURE:
            raise serializers.ValidationError("is more than 5 minutes in the future")
        if value < EARLIEST:
            raise serializers.ValidationError("is before the year 2000")
        return value


ENVELOPE_FIELDS = frozenset(EnvelopeSerializer._declared_fields)


class AgentEvent(EnvelopeSerializer):
    """agent.logged_in, agent.logged_out, agent.available: no fields of their own."""


class NotReadyEvent(EnvelopeSerializer):
    """agent.not_ready: the agent is not ready, for a reason."""

    reason = _text(100, min_length=1, help_text="break, lunch, meeting, training ...")


class InteractionEvent(EnvelopeSerializer):
    """interaction.held, interaction.resumed, interaction.ended."""

    interaction_id = _text(100, min_length=1)


# Optional fields accept null as "not given": many integrations serialise absent values as null.


class InteractionStartedEvent(InteractionEvent):
    """interaction.started: the agent takes an interaction on a channel."""

    channel = serializers.ChoiceField(choices=Channel.values)
    direction = serializers.ChoiceField(choices=Direction.values, required=False, allow_null=True)
    queue = _text(100, required=False, allow_blank=True, allow_null=True)
    concurrent = StrictBooleanField(
        required=False,
        allow_null=True,
        default=False,
        help_text=(
            "true: the agent holds this contact alongside the ones still open (docs/api.md, "
            '"Concurrent contacts"); false (default): an open ACW closes and an open '
            "interaction ends, with no ACW."
        ),
    )

    def validate_concurrent(self, value: bool | None) -> bool | None:
        # Stored only when true, so that an explicit false and an omitted flag are the same
        # content (and a replay sees the same event).
        return True if value else None


class AcwStartedEvent(EnvelopeSerializer):
    """acw.started: after-call work a platform announces without an interaction.ended."""

    # Both optional: a phone that only knows "the agent pressed wrap-up" sends neither.
    interaction_id = _text(100, required=False, allow_blank=False, allow_null=True)
    channel = serializers.ChoiceField(choices=Channel.values, required=False, allow_null=True)


class AcwExtendedEvent(EnvelopeSerializer):
    """acw.extended: more time for the open ACW, if its policy allows it."""

    # Optional: the contact whose ACW this is, when the agent holds several (else every one).
    interaction_id = _text(100, required=False, allow_blank=False, allow_null=True)

    seconds = StrictNumberField(
        required=False,
        allow_null=True,
        max_value=86400,
        help_text="Greater than 0; default: the policy's extension step.",
    )

    def validate_seconds(self, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise serializers.ValidationError("must be greater than 0")
        return value


class WrapUpFields(EnvelopeSerializer):
    """The wrap-up an ACW records: code, note and the checklist items ticked."""

    # Optional: the contact whose ACW this is, when the agent holds several (else every one).
    interaction_id = _text(100, required=False, allow_blank=False, allow_null=True)

    wrap_up_code = _text(100, required=False, allow_blank=True, allow_null=True)
    note = _text(4000, required=False, allow_blank=True, allow_null=True)
    checklist = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        allow_null=True,
        help_text="Ids of the checklist items the agent ticked (all of them, not a change).",
    )


class AcwUpdatedEvent(WrapUpFields):
    """acw.updated: the wrap-up so far (checklist ticks, code, note), kept with the open ACW so
    that a timeout records it; each field given replaces the one kept, acw.ended's fields win."""


class AcwEndedEvent(WrapUpFields):
    """acw.ended: the agent (or a supervisor) ends the open ACW."""

    # The reasons an event may give; the others (timeout, logout...) are the system's own.
    reason = serializers.ChoiceField(
        choices=ACW_ENDED_REASONS, default=AcwEndReason.AGENT_READY.value, allow_null=True
    )

    def validate_reason(self, value: str | None) -> str:
        # Normalised, so that an explicit default and an omitted reason are the same content.
        return value or AcwEndReason.AGENT_READY.value


EVENT_SERIALIZERS: dict[str, type[EnvelopeSerializer]] = {
    "agent.logged_in": AgentEvent,
    "agent.logged_out": AgentEvent,
    "agent.available": AgentEvent,
    "agent.not_ready": NotReadyEvent,
    "interaction.started": InteractionStartedEvent,
    "interaction.held": InteractionEvent,
    "interaction.resumed": InteractionEvent,
    "interaction.ended": InteractionEvent,
    "acw.started": AcwStartedEvent,
    "acw.extended": AcwExtendedEvent,
    "acw.updated": AcwUpdatedEvent,
    "acw.ended": AcwEndedEvent,
}

# One instance of each, shared by every event and thread: ``run_validation()`` is what
# ``is_valid()`` runs (the same checks, the same errors), without building a serializer and
# deep-copying its fields for every event, which was most of the validation's time (10 times).
_SERIALIZERS: dict[str, EnvelopeSerializer] = {
    type_: serializer() for type_, serializer in EVENT_SERIALIZERS.items()
}
_ENVELOPE = EnvelopeSerializer()

# The OpenAPI schema of one event: one of the serializers above, chosen by ``type``. The
# published schema is generated from the very classes that validate.
EVENT_SCHEMA = PolymorphicProxySerializer(
    component_name="Event",
    serializers=EVENT_SERIALIZERS,
    resource_type_field_name="type",
    many=False,
)


def printable(text: str) -> str:
    """``text`` with lone surrogates written as ``\\udXXX`` escapes.

    JSON may carry ``"\\ud800"``, which decodes to a Python string that has no UTF-8 form:
    echoing it back in an answer (an error naming the value, a rejected ``event_id``) made the
    answer itself fail to render, after the batch's valid events had been committed.
    """
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _first_error(errors: Any, prefix: str = "") -> str:
    """Flatten DRF's error structure to one "field: message" line."""
    if isinstance(errors, dict):
        field_name, value = next(iter(errors.items()))
        name = f"{prefix}.{field_name}" if prefix else str(field_name)
        if field_name == "non_field_errors":
            name = prefix or "event"
        return _first_error(value, name)
    if isinstance(errors, list) and errors:
        return _first_error(errors[0], prefix)
    message = str(errors)
    if message == "This field is required.":
        message = "is required"
    elif message.startswith('"') and "is not a valid choice" in message:
        message = f"{message} (expected one of the documented values)"
    return printable(f"{prefix}: {message}" if prefix else message)


# What ``_well_formed`` answers for a value it cannot vouch for: the serializer decides.
_UNSURE: Any = object()
_MISSING: Any = object()

FastCheck = Callable[[Any], Any]


def _text_check(field: StrictCharField) -> FastCheck:
    """A non-empty ASCII string within the field's length without a NUL: what the field
    returns as is (no trimming). Anything else, blank or not, is left to the field, whose
    validators reject NULs and lone surrogates."""
    shortest = max(1, field.min_length or 0)
    longest = field.max_length if field.max_length is not None else float("inf")

    def check(value: Any) -> Any:
        if (
            type(value) is str
            and shortest <= len(value) <= longest
            and value.isascii()
            and "\x00" not in value
        ):
            return value
        return _UNSURE

    return check


def _choice_check(field: serializers.ChoiceField) -> FastCheck:
    """One of the choices, as a string: the choice itself."""
    choices = field.choice_strings_to_values

    def check(value: Any) -> Any:
        if type(value) is str and value in choices:
            return choices[value]
        return _UNSURE

    return check


def _own_check(field: serializers.Field) -> FastCheck:
    """A field of this module with no validators: its own conversion, which is plain code."""

    def check(value: Any) -> Any:
        try:
            return field.to_internal_value(value)
        except serializers.ValidationError:
            return _UNSURE

    return check


def _ids_check(field: serializers.ListField) -> FastCheck | None:
    """A list of whole numbers at or above the child's minimum (``checklist``); the field
    turns each into an int, which they already are."""
    child = field.child
    if (
        not isinstance(child, serializers.IntegerField)
        or child.max_value is not None
        or field.validators
        or not field.allow_empty
    ):
        return None
    least = child.min_value if child.min_value is not None else -float("inf")

    def check(value: Any) -> Any:
        if type(value) is list and all(type(n) is int and n >= least for n in value):
            return list(value)
        return _UNSURE

    return check


def _fast_check(field: serializers.Field) -> FastCheck | None:
    """How ``_well_formed`` checks a value given for ``field``; None: it never vouches."""
    if isinstance(field, StrictCharField):
        return _text_check(field)
    if isinstance(field, serializers.ChoiceField):
        return _choice_check(field)
    if isinstance(field, OffsetDateTimeField | StrictBooleanField) and not field.validators:
        return _own_check(field)
    if isinstance(field, serializers.ListField):
        return _ids_check(field)
    return None


@dataclass(frozen=True)
class _FastField:
    name: str
    field: serializers.Field
    check: FastCheck | None
    validate: Callable[[Any], Any] | None  # the serializer's validate_<name>


def _fast_fields(serializer: EnvelopeSerializer) -> list[_FastField]:
    return [
        _FastField(
            field.field_name,
            field,
            _fast_check(field),
            getattr(serializer, f"validate_{field.field_name}", None),
        )
        for field in serializer._writable_fields
    ]


_FAST_FIELDS = {type_: _fast_fields(serializer) for type_, serializer in _SERIALIZERS.items()}


def _well_formed(raw: dict[str, Any]) -> dict[str, Any] | None:
    """What ``run_validation`` returns for an event every value of which is plainly valid, in
    the same order; None as soon as one is not (missing where required, of another type, out
    of range, a string that is not plain ASCII ...), for the serializer to say why.

    Most events are well formed: DRF's field objects (their empty-value checks, conversions
    and validator lists, field by field) cost several times what this costs. Every value it
    vouches for is one the field returns as is; the ``validate_<field>`` methods run on it as
    DRF runs them.
    """
    type_ = raw.get("type")
    fields = _FAST_FIELDS.get(type_) if type(type_) is str else None
    if fields is None:
        return None
    valid: dict[str, Any] = {}
    for fast in fields:
        field = fast.field
        value = raw.get(fast.name, _MISSING)
        if value is _MISSING:
            if field.required:
                return None
            if field.default is empty:
                continue  # an optional field not given: not in the result
            if callable(field.default):
                return None
            value = field.default
        elif value is None:
            if not field.allow_null:
                return None
        elif fast.check is None or (value := fast.check(value)) is _UNSURE:
            return None
        if fast.validate is not None:
            try:
                value = fast.validate(value)
            except serializers.ValidationError:
                return None
        valid[fast.name] = value
    return valid


def parse_event(raw: Any) -> ParsedEvent:
    """Validate one raw event; raise ``EventRejected`` naming the first bad field."""
    if not isinstance(raw, dict):
        raise EventRejected("event: must be a JSON object")
    valid = _well_formed(raw) if type(raw) is dict else None
    if valid is None:
        valid = _validated_by_serializer(raw)
    data = {
        key: value
        for key, value in valid.items()
        if key not in ENVELOPE_FIELDS and value is not None
    }
    return ParsedEvent(
        event_id=valid["event_id"],
        type=valid["type"],
        agent=valid["agent"],
        occurred_at=valid["occurred_at"],
        data=data,
    )


def _validated_by_serializer(raw: dict[str, Any]) -> dict[str, Any]:
    """The event's serializer's validated data, or ``EventRejected`` naming its first error."""
    type_ = raw.get("type")
    # An unknown type has no serializer of its own: the envelope alone names the first bad
    # field. Either way the envelope's fields come first, so its errors are reported first.
    serializer = _SERIALIZERS.get(type_, _ENVELOPE) if isinstance(type_, str) else _ENVELOPE
    try:
        return cast(dict[str, Any], serializer.run_validation(raw))
    except serializers.ValidationError as exc:
        raise EventRejected(_first_error(exc.detail)) from exc
