"""The query parameters of the KPI API and pages: parsed, validated and scoped to the user.

One parser for ``GET /api/v1/kpis``, ``/api/v1/kpis/distribution`` and the ``/kpis/`` pages, so
a page and its API call always read the same interactions (docs/api.md lists the parameters).
``parse_kpi_query(user, request.GET)`` returns a ``KpiQuery`` or raises DRF's
``ValidationError`` as ``{parameter: [message]}``: a value that does not exist, or that the user
may not see (``agents.access``), names its parameter.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from rest_framework import serializers
from rest_framework.fields import empty

from agents import access
from agents.models import Agent, Channel, Department

from .coaching import indexed_rows, iter_indexed_rows, site_norms
from .queries import (
    GROUP_BYS,
    GroupBy,
    KpiFilter,
    acw_distribution,
    site_day_bounds,
    site_today,
)

# Outside these years a day boundary in some time zone is not a valid datetime.
KPI_YEARS = (1900, 9998)
MAX_BIN_SECONDS = 3600


class EmptyIsWrong:
    """A field where an empty value (``group_by=``) is a wrong value, not a missing one.

    DRF reads an empty query-string value of an optional field as absent; for a value that
    selects what the answer means, a client that sent one has a bug worth a 400.
    """

    field_name: str

    def get_value(self, dictionary: Mapping[str, Any]) -> Any:
        return dictionary.get(self.field_name, empty)


class StrictChoiceField(EmptyIsWrong, serializers.ChoiceField):
    """A choice that must not be given empty."""


class PeriodQuerySerializer(serializers.Serializer):
    """Period and filters shared by every KPI call (an empty value means "not given")."""

    to = serializers.DateField(
        required=False, input_formats=["%Y-%m-%d"], help_text="YYYY-MM-DD, inclusive (today)."
    )
    team = serializers.CharField(required=False, max_length=100, help_text="Team name.")
    department = serializers.CharField(required=False, max_length=100, help_text="Department name.")
    agent = serializers.CharField(required=False, max_length=100, help_text="Agent external id.")
    channel = serializers.ChoiceField(choices=Channel.values, required=False)

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        # "from" is a Python keyword, so the field is added by name.
        fields["from"] = serializers.DateField(
            required=False, input_formats=["%Y-%m-%d"], help_text="YYYY-MM-DD, inclusive (today)."
        )
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


class KpiQuerySerializer(PeriodQuerySerializer):
    """``GET /api/v1/kpis``."""

    group_by = StrictChoiceField(choices=list(GROUP_BYS), default="agent")
    format = serializers.ChoiceField(
        choices=["json", "csv"], default="json", help_text="csv: the rows as a CSV file."
    )


class CoachingQuerySerializer(PeriodQuerySerializer):
    """``GET /api/v1/coaching``."""

    format = serializers.ChoiceField(
        choices=["json", "csv"], default="json", help_text="csv: the entries as a CSV file."
    )


class DistributionQuerySerializer(PeriodQuerySerializer):
    """``GET /api/v1/kpis/distribution``."""

    format = serializers.ChoiceField(
        choices=["json", "csv"], default="json", help_text="csv: the bins as a CSV file."
    )
    bin_seconds = serializers.IntegerField(
        required=False, default=10, min_value=1, max_value=MAX_BIN_SECONDS
    )


@dataclass(frozen=True)
class KpiQuery:
    """A validated KPI request: what to group by, the site days, and the filters (scoped)."""

    group_by: GroupBy
    first: date
    last: date
    where: KpiFilter
    format: Literal["json", "csv"] = "json"
    bin_seconds: int = 10

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        """[start of ``first``, start of the day after ``last``) in the site time zone."""
        return site_day_bounds(self.first, self.last)

    def rows(self, now: datetime | None = None) -> list[Any]:
        """``queries.kpi_rows`` for this query, with each row's expected ACW and ACW index
        (``reporting.coaching``)."""
        start, end = self.bounds
        return indexed_rows(
            group_by=self.group_by,
            start=start,
            end=end,
            where=self.where,
            norms=site_norms(self.last, now),
            now=now,
        )

    def iter_rows(self, now: datetime | None = None) -> Any:
        """``queries.iter_kpi_rows`` for this query (exports), with the ACW index."""
        return iter_indexed_rows(
            group_by=self.group_by,
            first=self.first,
            last=self.last,
            where=self.where,
            norms=site_norms(self.last, now),
            now=now,
        )

    def distribution(self) -> dict[str, Any]:
        """``queries.acw_distribution`` for this query."""
        start, end = self.bounds
        return acw_distribution(
            start=start, end=end, bin_seconds=self.bin_seconds, **self.where.arguments()
        )


def _not_visible(name: str, what: str) -> serializers.ValidationError:
    return serializers.ValidationError({name: f"no such {what} among those you may see"})


def parse_kpi_query(
    user: Any,
    data: Mapping[str, Any],
    serializer_class: type[PeriodQuerySerializer] = KpiQuerySerializer,
) -> KpiQuery:
    """Validate ``data`` (a query string) for ``user``; raise ``ValidationError`` naming the
    parameter that is wrong, does not exist or names something the user may not see."""
    query = serializer_class(data=data)
    query.is_valid(raise_exception=True)
    params = query.validated_data
    visible = access.visible_teams(user)
    teams = visible
    if "team" in params:
        teams = visible.filter(name=params["team"])
        if not teams.exists():
            raise _not_visible("team", "team")
    department_ids = None
    if "department" in params:
        # A department is visible when one of its teams is (every department, for managers).
        department = Department.objects.filter(name=params["department"]).first()
        if department is None or (
            not access.sees_all_teams(user) and not visible.filter(department=department).exists()
        ):
            raise _not_visible("department", "department")
        department_ids = (department.pk,)
    agent_ids = None
    if "agent" in params:
        agent = Agent.objects.filter(external_id=params["agent"], team__in=visible).first()
        if agent is None:
            raise _not_visible("agent", "agent")
        agent_ids = (agent.pk,)
    channels = (params["channel"],) if "channel" in params else None
    return KpiQuery(
        group_by=params.get("group_by", "agent"),
        first=params["from"],
        last=params["to"],
        where=KpiFilter.of(
            teams.values_list("pk", flat=True),
            agent_ids,
            channels,
            department_ids,
            every_team="team" not in params and access.sees_all_teams(user),
        ),
        format=params.get("format", "json"),
        bin_seconds=params.get("bin_seconds", 10),
    )


# --- The staffing what-if (``GET /api/v1/staffing``, ``/kpis/staffing/``) -------------------

MAX_VOLUME = 10_000_000
MAX_SECONDS = 86_400


class FiniteFloatField(serializers.FloatField):
    """A float that is a real number: ``nan`` and ``inf`` parse as floats but mean nothing here."""

    def to_internal_value(self, data: Any) -> float:
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            self.fail("invalid")
        return value


class StrictFloatField(EmptyIsWrong, FiniteFloatField):
    """A real number that must not be given empty."""


class StaffingQuerySerializer(serializers.Serializer):
    """``GET /api/v1/staffing``: the load of one interval and the service-level target (an
    empty value is a 400, as the schema says each is a number)."""

    volume = serializers.IntegerField(
        min_value=1, max_value=MAX_VOLUME, help_text="Contacts offered in the interval."
    )
    interval_seconds = serializers.IntegerField(
        min_value=1, max_value=MAX_SECONDS, help_text="Length of the interval (3600: an hour)."
    )
    aht_seconds = FiniteFloatField(
        min_value=0, max_value=MAX_SECONDS, help_text="Average handle time: talk + hold + ACW."
    )
    target_service_level = StrictFloatField(
        min_value=0,
        max_value=1,
        default=0.8,
        help_text="Share of contacts to answer within the target time, above 0 and below 1.",
    )
    target_answer_seconds = StrictFloatField(
        min_value=0, max_value=MAX_SECONDS, default=20, help_text="The target answer time."
    )
    acw_change_seconds = StrictFloatField(
        required=False,
        min_value=-MAX_SECONDS,
        max_value=MAX_SECONDS,
        help_text="What-if: change of the average ACW (may be negative); the answer adds "
        "with_acw_change for AHT + this.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["aht_seconds"] <= 0:
            raise serializers.ValidationError({"aht_seconds": "must be more than 0"})
        if not 0 < attrs["target_service_level"] < 1:
            raise serializers.ValidationError(
                {"target_service_level": "must be more than 0 and less than 1"}
            )
        change = attrs.get("acw_change_seconds")
        if change is not None and attrs["aht_seconds"] + change <= 0:
            raise serializers.ValidationError(
                {"acw_change_seconds": "would make the average handle time 0 or less"}
            )
        return attrs


class StaffingPageSerializer(serializers.Serializer):
    """``/kpis/staffing/``: whose hour to measure, and the inputs the user may override.

    ``volume`` and ``aht_seconds`` default to what the team measured in that hour (an empty
    form field means "measured"); the service level is given in percent, as people say it.
    """

    team = serializers.IntegerField(required=False, min_value=1)
    day = serializers.DateField(required=False, input_formats=["%Y-%m-%d"])
    hour = serializers.IntegerField(required=False, min_value=0, max_value=23)
    volume = serializers.IntegerField(required=False, min_value=1, max_value=MAX_VOLUME)
    aht_seconds = FiniteFloatField(required=False, min_value=0, max_value=MAX_SECONDS)
    service_level_percent = FiniteFloatField(default=80, min_value=0, max_value=100)
    target_answer_seconds = FiniteFloatField(default=20, min_value=0, max_value=MAX_SECONDS)
    acw_change_seconds = FiniteFloatField(
        default=-15, min_value=-MAX_SECONDS, max_value=MAX_SECONDS
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "day" in attrs and not KPI_YEARS[0] <= attrs["day"].year <= KPI_YEARS[1]:
            raise serializers.ValidationError(
                {"day": f"must be in the years {KPI_YEARS[0]} to {KPI_YEARS[1]}"}
            )
        if attrs.get("aht_seconds") == 0:
            raise serializers.ValidationError({"aht_seconds": "must be more than 0"})
        if not 0 < attrs["service_level_percent"] < 100:
            raise serializers.ValidationError(
                {"service_level_percent": "must be more than 0 and less than 100"}
            )
        return attrs
