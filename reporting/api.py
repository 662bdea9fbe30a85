"""The KPI read API: ``GET /api/v1/kpis`` and ``GET /api/v1/kpis/distribution``.

The views parse and authorise the query (``reporting.params``), and render what
``reporting.queries`` computes, as JSON or (``format=csv``) as a streamed CSV file.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.api import CanWatch, _errors

from .coaching import ENTRY_FIELDS, REASON_CODES, Coaching, coaching
from .erlang import StaffingError
from .params import (
    KPI_YEARS,
    CoachingQuerySerializer,
    DistributionQuerySerializer,
    KpiQuerySerializer,
    StaffingQuerySerializer,
    parse_kpi_query,
)
from .queries import KpiRow, row_fields, rows_json
from .staffing import what_if

__all__ = ["KPI_YEARS", "CoachingView", "DistributionView", "KpisView", "StaffingView"]


class KpiRowSerializer(serializers.Serializer):
    key = serializers.CharField(
        help_text="Agent external id, team or department name, channel, wrap-up code, "
        "YYYY-MM-DD, interval start (ISO 8601, site offset) or D-HH, per group_by."
    )
    name = serializers.CharField()
    interactions = serializers.IntegerField()
    talk_seconds = serializers.FloatField()
    hold_seconds = serializers.FloatField()
    acw_seconds = serializers.FloatField()
    avg_acw_seconds = serializers.FloatField()
    aht_seconds = serializers.FloatField()
    acw_share = serializers.FloatField()
    acw_count = serializers.IntegerField(help_text="ACW sessions among those interactions.")
    timeouts = serializers.IntegerField(help_text="ACWs the system closed at the deadline.")
    extended = serializers.IntegerField(help_text="ACWs extended at least once.")
    too_short = serializers.IntegerField(help_text="ACWs shorter than their policy's minimum.")
    norm_acw_seconds = serializers.FloatField(
        required=False,
        allow_null=True,
        help_text="group_by=wrap_up_code only: the code's expected ACW (null when unset).",
    )
    expected_acw_seconds = serializers.FloatField(
        allow_null=True,
        help_text="The ACW expected for this row's mix of wrap-up codes: the sum over codes of "
        "interactions × the code's norm (set in admin, else learned), ÷ interactions "
        "(docs/coaching.md).",
    )
    acw_index = serializers.FloatField(
        allow_null=True, help_text="avg_acw_seconds ÷ expected_acw_seconds (1.0: as expected)."
    )


class KpisSerializer(serializers.Serializer):
    rows = KpiRowSerializer(many=True)


class DistributionBinSerializer(serializers.Serializer):
    # "from" is a Python keyword: the field is declared under another name and renamed.
    from_ = serializers.IntegerField()
    to = serializers.IntegerField()
    count = serializers.IntegerField()

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class DistributionSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Closed ACWs (the sum of the bins).")
    bin_seconds = serializers.IntegerField()
    bins = DistributionBinSerializer(many=True)
    p50 = serializers.IntegerField(allow_null=True, help_text="Median ACW, whole seconds.")
    p90 = serializers.IntegerField(allow_null=True, help_text="90th percentile, whole seconds.")


class CsvRenderer(BaseRenderer):
    """Names ``text/csv`` for content negotiation; the KPI view streams the file itself."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context=None):  # type: ignore[no-untyped-def]
        raise NotImplementedError("CSV answers are streamed by the view")


class FormatParameterNegotiation(DefaultContentNegotiation):
    """``format`` is one of the KPI query parameters (json or csv), validated with the others:
    it must not make DRF look for a renderer (an unknown value would be a 404, not a 400)."""

    def select_renderer(self, request: Request, renderers: list, format_suffix: str | None = None):  # type: ignore[no-untyped-def]
        return super().select_renderer(request, renderers, format_suffix="json")


class _Line:
    """A file-like object whose ``write`` returns the line, for ``csv.writer`` in a stream."""

    def write(self, value: str) -> str:
        return value


# Lines per chunk of a streamed CSV: a chunk per line would cost more than the line.
CSV_CHUNK_LINES = 500


def csv_lines(header: list[str], rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """The CSV lines of ``rows`` (dicts with ``header``'s keys), a chunk at a time."""
    return csv_value_lines(header, ([row[name] for name in header] for row in rows))


def csv_value_lines(header: list[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """The CSV lines of ``rows`` (values in ``header``'s order; None is empty), in chunks of
    ``CSV_CHUNK_LINES``: only the current chunk is held in memory."""
    writer = csv.writer(_Line())
    return _csv_chunks(
        header,
        (writer.writerow(["" if value is None else value for value in row]) for row in rows),
    )


def _csv_chunks(header: list[str], lines: Iterable[str]) -> Iterator[str]:
    """The header line, then ``lines`` (CSV text), joined ``CSV_CHUNK_LINES`` at a time."""
    chunk = [csv.writer(_Line()).writerow(header)]
    for line in lines:
        chunk.append(line)
        if len(chunk) >= CSV_CHUNK_LINES:
            yield "".join(chunk)
            chunk = []
    if chunk:
        yield "".join(chunk)


def csv_response(filename: str, header: list[str], rows: Iterable[dict[str, Any]]) -> Any:
    """A streamed ``text/csv`` download of dicts with ``header``'s keys."""
    return _csv_download(filename, csv_lines(header, rows))


def _csv_download(filename: str, lines: Iterator[str]) -> Any:
    """A streamed ``text/csv`` download: nothing but the current chunk is held in memory."""
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def kpi_csv_filename(group_by: str, first: Any, last: Any) -> str:
    return f"acw-kpis-by-{group_by}-{first}-to-{last}.csv"


def kpi_csv_response(query: Any) -> Any:
    """The CSV of a ``params.KpiQuery``: the API's rows, field for field (``KpiRow.as_csv``)."""
    norm = query.group_by == "wrap_up_code"
    rows: Iterator[KpiRow] = query.iter_rows()
    return _csv_download(
        kpi_csv_filename(query.group_by, query.first, query.last),
        _csv_chunks(row_fields(query.group_by), (row.as_csv(norm=norm) for row in rows)),
    )


class KpisView(APIView):
    """``GET /api/v1/kpis``: ACW KPIs grouped by agent, team, department, channel, wrap-up
    code, day, 15-minute interval or weekday × hour, for a range of site days (docs/api.md);
    ``format=csv`` for the same rows as a CSV file."""

    permission_classes = [CanWatch]
    renderer_classes = [*APIView.renderer_classes, CsvRenderer]
    content_negotiation_class = FormatParameterNegotiation

    @extend_schema(
        parameters=[KpiQuerySerializer],
        responses={
            (200, "application/json"): KpisSerializer,
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR, description="format=csv: the rows as CSV."
            ),
            **_errors(400, 401, 403, 429, 503),
        },
    )
    def get(self, request: Request) -> Any:
        query = parse_kpi_query(request.user, request.query_params)
        if query.format == "csv":
            return kpi_csv_response(query)
        # Written straight to JSON text (no dict and serializer per row): the same bytes.
        return HttpResponse(
            rows_json(query.rows(), query.group_by), content_type="application/json"
        )


class CoachingReasonSerializer(serializers.Serializer):
    code = serializers.ChoiceField(choices=REASON_CODES, help_text="The rule (docs/coaching.md).")
    message = serializers.CharField(help_text="Why, with the numbers.")
    value = serializers.FloatField(help_text="The measured value (index, ratio or rate).")
    threshold = serializers.FloatField()


class CoachingEntrySerializer(serializers.Serializer):
    agent = serializers.CharField(help_text="The agent's external id.")
    name = serializers.CharField()
    team = serializers.CharField()
    interactions = serializers.IntegerField()
    avg_acw_seconds = serializers.FloatField()
    expected_acw_seconds = serializers.FloatField(allow_null=True)
    acw_index = serializers.FloatField(allow_null=True)
    too_short_rate = serializers.FloatField(help_text="too_short ÷ acw_count.")
    checklist_completion = serializers.FloatField(
        allow_null=True, help_text="Ticked ÷ applicable checklist steps (recent window)."
    )
    reasons = CoachingReasonSerializer(many=True)


class CoachingSerializer(serializers.Serializer):
    entries = CoachingEntrySerializer(many=True)


class CoachingView(APIView):
    """``GET /api/v1/coaching``: the agents of the visible teams who need coaching in the
    period, each with the rules they meet and the numbers (docs/coaching.md); ``format=csv``
    for the same entries as a CSV file (reasons as codes, the sentences in ``why``)."""

    permission_classes = [CanWatch]
    renderer_classes = [*APIView.renderer_classes, CsvRenderer]
    content_negotiation_class = FormatParameterNegotiation

    @extend_schema(
        parameters=[CoachingQuerySerializer],
        responses={
            (200, "application/json"): CoachingSerializer,
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR, description="format=csv: the entries as CSV."
            ),
            **_errors(400, 401, 403, 429, 503),
        },
    )
    def get(self, request: Request) -> Any:
        query = parse_kpi_query(request.user, request.query_params, CoachingQuerySerializer)
        result = coaching(query.where, query.first, query.last)
        if query.format == "csv":
            return coaching_csv_response(result, query.first, query.last)
        entries = []
        for entry in result.entries:
            body = entry.as_dict()
            body["reasons"] = [reason.as_dict() for reason in entry.reasons]
            del body["why"]
            entries.append(body)
        return Response({"entries": entries})


def coaching_csv_response(result: Coaching, first: Any, last: Any) -> Any:
    """The coaching list as a streamed CSV (page and API)."""
    return csv_response(
        f"acw-coaching-{first}-to-{last}.csv",
        ENTRY_FIELDS,
        (
            {**row, "reasons": "; ".join(row["reasons"])}
            for row in (entry.as_dict() for entry in result.entries)
        ),
    )


class DistributionView(APIView):
    """``GET /api/v1/kpis/distribution``: the histogram of ACW durations and its p50 / p90
    for the interactions that ended in the period (docs/api.md)."""

    permission_classes = [CanWatch]
    renderer_classes = [*APIView.renderer_classes, CsvRenderer]
    content_negotiation_class = FormatParameterNegotiation

    @extend_schema(
        parameters=[DistributionQuerySerializer],
        responses={
            (200, "application/json"): DistributionSerializer,
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR, description="format=csv: the bins as CSV."
            ),
            **_errors(400, 401, 403, 429, 503),
        },
    )
    def get(self, request: Request) -> Any:
        query = parse_kpi_query(request.user, request.query_params, DistributionQuerySerializer)
        body = query.distribution()
        if query.format == "csv":
            return csv_response(
                f"acw-distribution-{query.first}-to-{query.last}.csv",
                ["from", "to", "count"],
                body["bins"],
            )
        return Response(body)


class StaffingFiguresSerializer(serializers.Serializer):
    traffic_erlangs = serializers.FloatField(help_text="volume × AHT / interval.")
    agents_needed = serializers.IntegerField(
        help_text="The fewest agents whose service level meets the target."
    )
    service_level = serializers.FloatField(help_text="Share answered within the target time.")
    waiting_probability = serializers.FloatField(help_text="Erlang C: share that waits at all.")
    occupancy = serializers.FloatField(help_text="traffic / agents.")
    asa_seconds = serializers.FloatField(help_text="Average speed of answer.")


class StaffingSerializer(StaffingFiguresSerializer):
    with_acw_change = StaffingFiguresSerializer(
        required=False, help_text="Only with acw_change_seconds: the same for AHT + change."
    )


class StaffingView(APIView):
    """``GET /api/v1/staffing``: agents needed for a service level by Erlang C (no shrinkage),
    and with ``acw_change_seconds`` the same for the AHT changed by that much (docs/api.md,
    docs/staffing.md)."""

    permission_classes = [CanWatch]

    @extend_schema(
        parameters=[StaffingQuerySerializer],
        responses={200: StaffingSerializer, **_errors(400, 401, 403, 429, 503)},
    )
    def get(self, request: Request) -> Any:
        query = StaffingQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        try:
            answer = what_if(**query.validated_data)
        except StaffingError as error:
            raise serializers.ValidationError({error.field: error.message}) from error
        return Response(answer.as_dict())
