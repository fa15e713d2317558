"""The time limit is a promise: loading, building, solving, checking and explaining fit."""

from __future__ import annotations

import time

import pytest

from benchmarks.generate import regional, tight
from scheduler.check import violations
from scheduler.problem import load_problem
from scheduler.solver import solve_with_baseline


@pytest.mark.parametrize(
    ("family", "limit"),
    [("regional", 5.0), ("regional", 10.0), ("tight", 4.0)],
)
def test_every_phase_fits_inside_the_limit(family: str, limit: float) -> None:
    # Small members of the families (a few thousand variables per part), so the fast
    # loop stays fast; the benchmark checks the full sizes.
    data = regional(seed=5, per_region=(15, 25)) if family == "regional" else tight(learners=60)
    began = time.perf_counter()
    problem = load_problem(data)
    result, baseline = solve_with_baseline(problem, time_limit=limit, began=began)
    wall = time.perf_counter() - began
    assert wall <= limit
    assert result.seconds <= limit
    assert violations(problem, result.assignments) == []
    assert result.placed >= baseline.placed
    assert result.preference_cost <= baseline.preference_cost
    assert len(result.unplaced_requests) == result.unplaced
