"""The KPI read API: ``GET /api/v1/kpis``.

The view parses and authorises the query, and renders the rows that ``queries.kpi_rows`` computes.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents import access
from agents.api import CanWatch, _errors

from .queries import kpi_rows, site_day_bounds, site_today

# Outside these years a day boundary in some time zone is not a valid datetime.
KPI_YEARS = (1900, 9998)


class KpiRowSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="Agent external id or team name.")
    name = serializers.CharField()
    interactions = serializers.IntegerField()
    talk_seconds = serializers.FloatField()
    hold_seconds = serializers.FloatField()
    acw_seconds = serializers.FloatField()
    avg_acw_seconds = serializers.FloatField()
    aht_seconds = serializers.FloatField()
    acw_share = serializers.FloatField()


class KpisSerializer(serializers.Serializer):
    rows = KpiRowSerializer(many=True)


class KpiQuerySerializer(serializers.Serializer):
    group_by = serializers.ChoiceField(choices=["agent", "team"], default="agent")
    to = serializers.DateField(required=False, input_formats=["%Y-%m-%d"])
    team = serializers.CharField(required=False, max_length=100)

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        # "from" is a Python keyword, so the field is added by name.
        fields["from"] = serializers.DateField(required=False, input_formats=["%Y-%m-%d"])
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        for name in ("from", "to"):
            if name in attrs and not KPI_YEARS[0] <= attrs[name].year <= KPI_YEARS[1]:
                raise serializers.ValidationError(
                    {name: f"must be in the years {KPI_YEARS[0]} to {KPI_YEARS[1]}"}
                )
        today = site_today()
        attrs.setdefault("from", today)
        attrs.setdefault("to", today)
        if attrs["from"] > attrs["to"]:
            raise serializers.ValidationError({"from": "must not be after 'to'"})
        return attrs


class KpisView(APIView):
    """``GET /api/v1/kpis``: ACW KPIs per agent or team for a range of days (contract §4)."""

    permission_classes = [CanWatch]

    @extend_schema(
        parameters=[
            OpenApiParameter("group_by", str, enum=["agent", "team"]),
            OpenApiParameter("from", str, description="YYYY-MM-DD, inclusive (default today)"),
            OpenApiParameter("to", str, description="YYYY-MM-DD, inclusive (default today)"),
            OpenApiParameter("team", str, description="only this team"),
        ],
        responses={200: KpisSerializer, **_errors(400, 401, 403, 503)},
    )
    def get(self, request: Request) -> Response:
        query = KpiQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        teams = access.visible_teams(request.user)
        if "team" in params:
            teams = teams.filter(name=params["team"])
            if not teams.exists():
                raise exceptions.ValidationError({"team": "no such team among those you may see"})
        start, end = site_day_bounds(params["from"], params["to"])
        rows = kpi_rows(
            team_ids=teams.values_list("pk", flat=True),
            group_by=params["group_by"],
            start=start,
            end=end,
        )
        return Response({"rows": [row.as_dict() for row in rows]})
