"""Erlang C staffing maths: pure functions, no Django (docs/staffing.md gives the formulas and
their sources).

The model is M/M/N: contacts arrive at random (Poisson) at a steady rate during the interval,
handling times are exponential with mean AHT, nobody abandons, and every agent counted is on the
queue (no shrinkage). ``traffic = volume × AHT / interval`` in Erlangs.

The probability of waiting is computed from the Erlang B recursion, never from powers and
factorials: ``B(0) = 1``, ``B(n) = A·B(n−1) / (n + A·B(n−1))`` stays in [0, 1] for any ``n``,
so thousands of agents neither overflow nor lose precision. Then, for ``N > A``,
``C = N·B(N) / (N − A·(1 − B(N)))``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

# Far beyond any single queue; it bounds the search so that absurd input cannot keep a worker
# busy (1e5 recursion steps take a few milliseconds).
MAX_AGENTS = 100_000


class StaffingError(ValueError):
    """The input has no answer: ``field`` names the parameter to change."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Staffing:
    """Erlang C figures for one number of agents."""

    traffic_erlangs: float
    agents: int
    service_level: float
    waiting_probability: float
    occupancy: float
    asa_seconds: float

    def as_dict(self) -> dict[str, Any]:
        """The API's fields (contract names: ``agents_needed`` for the number of agents)."""
        out = asdict(self)
        out["agents_needed"] = out.pop("agents")
        return out


def traffic_erlangs(volume: float, interval_seconds: float, aht_seconds: float) -> float:
    """Offered load A = volume × AHT / interval: the agents that would be busy all the time."""
    return volume * aht_seconds / interval_seconds


def erlang_b_series(traffic: float) -> Iterator[float]:
    """Erlang B blocking B(n) for n = 0, 1, 2, ... by the recursion (no factorials)."""
    b = 1.0
    n = 0
    while True:
        yield b
        n += 1
        b = traffic * b / (n + traffic * b)


def erlang_c(agents: int, traffic: float) -> float:
    """Probability that a contact waits (Erlang C), for ``agents`` > ``traffic`` > 0."""
    if agents <= traffic:
        return 1.0
    series = erlang_b_series(traffic)
    b = 1.0
    for _ in range(agents + 1):
        b = next(series)
    return _c_from_b(agents, traffic, b)


def _c_from_b(agents: int, traffic: float, b: float) -> float:
    return agents * b / (agents - traffic * (1.0 - b))


def figures(agents: int, traffic: float, aht_seconds: float, answer_seconds: float) -> Staffing:
    """The Erlang C figures with ``agents`` on the queue (``agents`` > ``traffic``)."""
    return _figures(agents, traffic, aht_seconds, answer_seconds, erlang_c(agents, traffic))


def _figures(
    agents: int, traffic: float, aht_seconds: float, answer_seconds: float, wait: float
) -> Staffing:
    # Service level: P(wait ≤ t) = 1 − C·e^(−(N − A)·t / AHT).
    # Average speed of answer: ASA = C·AHT / (N − A).
    spare = agents - traffic
    return Staffing(
        traffic_erlangs=traffic,
        agents=agents,
        service_level=1.0 - wait * math.exp(-spare * answer_seconds / aht_seconds),
        waiting_probability=wait,
        occupancy=traffic / agents,
        asa_seconds=wait * aht_seconds / spare,
    )


def agents_needed(
    traffic: float, aht_seconds: float, target_service_level: float, target_answer_seconds: float
) -> Staffing:
    """The fewest agents whose service level meets the target, with the figures at that number.

    Raises ``StaffingError`` when no number of agents up to ``MAX_AGENTS`` meets it.
    """
    if traffic <= 0:
        raise StaffingError("volume", "must be more than 0")
    if not 0 < target_service_level < 1:
        raise StaffingError("target_service_level", "must be between 0 and 1 (exclusive)")
    if traffic >= MAX_AGENTS:
        raise StaffingError("volume", f"the traffic needs more than {MAX_AGENTS} agents")
    series = erlang_b_series(traffic)
    # The queue is only stable with more agents than Erlangs of traffic.
    agents = math.floor(traffic) + 1
    b = 1.0
    for _ in range(agents + 1):
        b = next(series)
    while agents <= MAX_AGENTS:
        wait = _c_from_b(agents, traffic, b)
        result = _figures(agents, traffic, aht_seconds, target_answer_seconds, wait)
        if result.service_level >= target_service_level:
            return result
        agents += 1
        b = next(series)
    raise StaffingError("volume", f"the target needs more than {MAX_AGENTS} agents")


def staffing_table(
    traffic: float, aht_seconds: float, answer_seconds: float, agents: range
) -> list[Staffing]:
    """The figures for each number of agents in ``agents`` that can serve the traffic."""
    return [
        figures(n, traffic, aht_seconds, answer_seconds) for n in agents if n > traffic and n > 0
    ]
