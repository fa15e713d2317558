"""The transport bound with per-learner caps (big batches) is a proved bound."""

from __future__ import annotations

import random
from typing import Any

import pytest

from scheduler.bounds import candidates
from scheduler.problem import Problem, load_problem
from scheduler.solver import _classes, _Context, _flow, _split
from tests.scheduler.test_sched_property import _brute_force, _random_instance


def _capped_transport(problem: Problem) -> tuple[int, dict[int, int]]:
    """Return the per-learner-capped transport bound on placements and the caps."""
    cand = candidates(problem)
    ctx = _Context(problem, cand)
    rows = ctx.rows(_split(problem, cand))
    classes = _classes(ctx, rows)
    assert classes is not None
    personal = {li: c.cap for c in classes for li in c.members}
    if not rows.vars:
        return cand.fixed_placed, personal
    out = _flow(rows, cand.free, None, ctx.learner_of, personal)
    assert out is not None
    return cand.fixed_placed + sum(out[0]), personal


def test_fixed_place_over_the_cap_does_not_zero_the_learners_cap(build: Any) -> None:
    # A 0.4 FTE learner (0.8 days per four weeks) holds a full day: over the cap by
    # itself. Their other course runs beside it (no room) and months later (fits).
    problem = build.problem(
        {"mca": 1.0, "care": 0.5},
        [
            build.session("mca-1", "mca", day="2027-01-12"),
            build.session("care-0", "care", day="2027-01-14", start="09:30", end="12:30"),
            build.session("care-1", "care", day="2027-05-11", start="09:30", end="12:30"),
        ],
        [build.learner("n1", ["mca", "care"], fte=0.4, fixed={"mca": "mca-1"})],
    )
    bound, personal = _capped_transport(problem)
    assert personal == {0: 1}
    assert bound == 2 == _brute_force(problem)[0]


def _part_timers_with_fixed(rng: random.Random, build: Any) -> dict[str, Any]:
    inst = _random_instance(rng, build)
    for lr in inst["learners"]:
        if rng.random() < 0.5:
            lr["fte"] = rng.choice([0.2, 0.4])
        if rng.random() < 0.4:
            own = [s["id"] for s in inst["sessions"] if s["course"] == lr["needs"][0]]
            if own:
                lr["fixed"] = {lr["needs"][0]: rng.choice(own)}
    return inst


@pytest.mark.parametrize("seed", range(30))
def test_capped_transport_never_below_brute_force(seed: int, build: Any) -> None:
    problem = load_problem(_part_timers_with_fixed(random.Random(300 + seed), build))
    bound, _ = _capped_transport(problem)
    assert bound >= _brute_force(problem)[0]
