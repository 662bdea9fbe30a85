"""The HTTP API of agents: ingestion, provisioning and live state (the KPI API is reporting's).

Views parse, authorise, call one service or selector, and render.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig
from drf_spectacular.utils import (
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import exceptions, permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import access, jsonbody, selectors, services
from .api_auth import BearerTokenAuthentication
from .serializers import (
    AgentSerializer,
    AgentStatesSerializer,
    BatchResultSerializer,
    ErrorSerializer,
    EventResultSerializer,
    event_result,
)
from .validation import EVENT_SCHEMA, StrictCharField

MAX_BATCH = 1000
MAX_BODY_BYTES = 1024 * 1024
STATUS_CODES = {
    "accepted": status.HTTP_201_CREATED,
    "duplicate": status.HTTP_200_OK,
    "conflict": status.HTTP_409_CONFLICT,
    "rejected": status.HTTP_400_BAD_REQUEST,
}


class IsIntegration(permissions.BasePermission):
    message = "only integration tokens may post events"

    def has_permission(self, request: Request, view: Any) -> bool:
        return access.is_integration(request.user)


class CanWatch(permissions.BasePermission):
    message = "your role may not read agent states or KPIs"

    def has_permission(self, request: Request, view: Any) -> bool:
        return access.can_watch(request.user)


class CanProvision(permissions.BasePermission):
    message = "only integration tokens and admins may create or update agents"

    def has_permission(self, request: Request, view: Any) -> bool:
        return access.can_provision(request.user)


class RejectedSerializer(serializers.Serializer):
    event_id = serializers.CharField(allow_null=True, required=False)
    status = serializers.ChoiceField(["rejected"], required=False)
    error = serializers.CharField(help_text='"<field>: <message>"')


class BatchSerializer(serializers.Serializer):
    # Each element is validated on its own and answered in ``results`` (an invalid one is
    # ``rejected`` there, the batch is still 200), so the schema does not constrain them.
    # More than 1000 is 413, not 400, so the limit is told in words rather than as maxItems.
    events = serializers.ListField(
        child=serializers.JSONField(),
        min_length=1,
        help_text="1 to 1000 events, each shaped as the single event; each is accepted or "
        "rejected on its own.",
    )


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: OpenApiResponse(ErrorSerializer) for code in codes}


class EventsView(APIView):
    """``POST /api/v1/events``: one event, or ``{"events": [...]}`` with 1 to 1000 events."""

    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [IsIntegration]
    # The body is read as JSON whatever its content type (telephony systems are sloppy about
    # it); the schema lists JSON only, as that is the only body this endpoint reads.
    parser_classes = [jsonbody.JSONParser]

    @extend_schema(
        request=PolymorphicProxySerializer(
            "EventOrBatch", [EVENT_SCHEMA, BatchSerializer], resource_type_field_name=None
        ),
        responses={
            201: OpenApiResponse(EventResultSerializer, "accepted"),
            200: PolymorphicProxySerializer(
                "DuplicateOrBatchResult",
                [EventResultSerializer, BatchResultSerializer],
                resource_type_field_name=None,
            ),
            400: OpenApiResponse(
                RejectedSerializer,
                "a single event rejected (with its event_id and status), or a body of the "
                "wrong shape (error only)",
            ),
            409: OpenApiResponse(EventResultSerializer, "event_id reused with other content"),
            **_errors(401, 413, 429, 503),
        },
    )
    def post(self, request: Request) -> Response:
        body = _json_body(request)
        if not isinstance(body, dict):
            raise exceptions.ValidationError({"body": 'expected an event or {"events": [...]}'})
        if "events" not in body:
            result = services.ingest_event(body)
            return Response(_result(result, result.status), status=STATUS_CODES[result.status])
        batch = body["events"]
        if not isinstance(batch, list) or not batch:
            raise exceptions.ValidationError({"events": "expected a list of 1 to 1000 events"})
        if len(batch) > MAX_BATCH:
            raise PayloadTooLarge({"events": f"more than {MAX_BATCH} events"})
        return Response(_batch_summary(services.ingest_events(batch)))


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "request too large"


def _json_body(request: Request) -> Any:
    """The request body parsed as JSON, refused above 1 MiB (docs/api.md, Answers)."""
    too_large = PayloadTooLarge({"body": "larger than 1 MiB"})
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    try:
        raw = request.body
    except RequestDataTooBig as exc:
        raise too_large from exc
    # A body sent without Content-Length (chunked) is only measured once read.
    if len(raw) > MAX_BODY_BYTES:
        raise too_large
    try:
        return jsonbody.loads(raw)
    except jsonbody.JsonBodyError as exc:
        raise exceptions.ParseError(str(exc)) from exc


def _result(result: services.IngestResult, shown: services.Status) -> dict[str, Any]:
    return event_result(result.event_id, shown, result.error)


def _batch_summary(results: list[services.IngestResult]) -> dict[str, Any]:
    """Counts and per-event results in input order (``BatchResultSerializer``); a conflict
    shows as ``rejected``."""
    counts = {"accepted": 0, "duplicates": 0, "rejected": 0}
    shown_results = []
    for result in results:
        shown: services.Status = "rejected" if result.status == "conflict" else result.status
        counts["duplicates" if shown == "duplicate" else shown] += 1
        shown_results.append(_result(result, shown))
    return {**counts, "results": shown_results}


EXTERNAL_ID = StrictCharField(max_length=100, trim_whitespace=False)


class AgentProvisionSerializer(serializers.Serializer):
    name = StrictCharField(max_length=200)
    team = StrictCharField(max_length=100)


class AgentProvisionView(APIView):
    """``PUT /api/v1/agents/<external_id>``: create or update an agent (tokens and admins)."""

    permission_classes = [CanProvision]

    @extend_schema(
        request=AgentProvisionSerializer,
        responses={200: AgentSerializer, 201: AgentSerializer} | _errors(400, 401, 403, 429, 503),
    )
    def put(self, request: Request, external_id: str) -> Response:
        return provision(request, external_id)


def provision(request: Request, external_id: str) -> Response:
    """Create or update one agent from a ``{"name", "team"}`` body."""
    if not 1 <= len(external_id) <= 100:
        raise exceptions.ValidationError({"external_id": "must be 1 to 100 characters"})
    try:
        # The path is text too: a NUL (%00) would reach PostgreSQL and fail there.
        EXTERNAL_ID.run_validation(external_id)
    except serializers.ValidationError as exc:
        raise exceptions.ValidationError({"external_id": exc.detail}) from exc
    if not isinstance(request.data, dict):
        raise exceptions.ValidationError({"body": 'expected {"name": ..., "team": ...}'})
    form = AgentProvisionSerializer(data=request.data)
    form.is_valid(raise_exception=True)
    agent, created = services.provision_agent(
        external_id,
        name=form.validated_data["name"],
        team_name=form.validated_data["team"],
        actor=request.user,
    )
    return Response(
        AgentSerializer(agent).data,
        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
    )


class AgentStatesView(APIView):
    """``GET /api/v1/agents/state``: the live state of every agent the caller may see."""

    permission_classes = [CanWatch]

    def get_permissions(self) -> list[permissions.BasePermission]:
        # An agent whose external id is "state" is provisioned through this URL too.
        return [CanProvision()] if self.request.method == "PUT" else super().get_permissions()

    @extend_schema(responses={200: AgentStatesSerializer, **_errors(401, 403, 429, 503)})
    def get(self, request: Request) -> Response:
        # Rendered with AgentStateSerializer (agent_payload), as of now: an ACW past its deadline
        # shows timed out before the worker writes it.
        return Response({"agents": selectors.agent_state_rows(request.user)})

    @extend_schema(exclude=True)
    def put(self, request: Request) -> Response:
        return provision(request, "state")
