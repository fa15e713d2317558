"""Random small instances: the solver keeps every rule and matches brute force."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from scheduler.baseline import greedy
from scheduler.check import violations
from scheduler.problem import Assignment, Problem, load_problem
from scheduler.solver import solve

DAYS = ["2027-01-04", "2027-01-06", "2027-01-14", "2027-01-29", "2027-02-01", "2027-02-09"]
TIMES = [("09:30", "12:30"), ("13:30", "16:30"), ("09:30", "16:30"), ("11:00", "14:00")]


def _random_instance(rng: random.Random, build: Any) -> dict[str, Any]:
    courses = {"a": 0.5, "b": 1.0, "c": 0.5}
    sessions = []
    for k in range(rng.randint(3, 5)):
        course = rng.choice(list(courses))
        start, end = rng.choice(TIMES)
        sessions.append(
            build.session(
                f"s{k}",
                course,
                day=rng.choice(DAYS),
                start=start,
                end=end,
                capacity=rng.randint(0, 2),
                group=rng.choice([None, None, "north"]),
            )
        )
    learners = []
    for i in range(3):
        needs = rng.sample(list(courses), rng.randint(1, 2))
        extra: dict[str, Any] = {"fte": rng.choice([0.2, 0.5, 0.6, 1.0, 1.0])}
        if rng.random() < 0.3:
            extra["unavailable"] = [{"from": "2027-01-05", "to": rng.choice(DAYS[1:])}]
        if rng.random() < 0.5:
            extra["groups"] = ["north"]
        if rng.random() < 0.3:
            extra["end"] = "2027-01-20"
        prefs = {}
        for c in needs:
            own = [s["id"] for s in sessions if s["course"] == c]
            if own and rng.random() < 0.6:
                prefs[c] = rng.sample(own, rng.randint(1, len(own)))
        extra["preferences"] = prefs
        if rng.random() < 0.2:
            own = [s["id"] for s in sessions if s["course"] == needs[0]]
            if own:
                extra["fixed"] = {needs[0]: rng.choice(own)}
        learners.append(build.learner(f"n{i}", needs, **extra))
    return build.instance(courses, sessions, learners)


def _brute_force(problem: Problem) -> tuple[int, int]:
    """Return the lexicographic optimum (placements, -cost) by trying everything."""
    fixed: list[Assignment] = []
    choices: list[list[Assignment | None]] = []
    for req in problem.requests:
        learner = problem.learners[req.learner]
        if req.fixed is not None:
            fixed.append(Assignment(learner.id, req.course, problem.sessions[req.fixed].id))
            continue
        options: list[Assignment | None] = [None]
        options += [
            Assignment(learner.id, req.course, problem.sessions[i].id) for i in req.sessions
        ]
        choices.append(options)
    best = (-1, 0)
    learners = {lr.id: lr for lr in problem.learners}
    for combo in itertools.product(*choices):
        chosen = fixed + [a for a in combo if a is not None]
        if violations(problem, chosen):
            continue
        cost = sum(learners[a.learner].preference_cost(a.course, a.session) for a in chosen)
        best = max(best, (len(chosen), -cost))
    return best


@pytest.mark.parametrize("seed", range(25))
def test_random_instance(seed: int, build: Any) -> None:
    rng = random.Random(seed)
    problem = load_problem(_random_instance(rng, build))
    result = solve(problem, time_limit=5)
    base = greedy(problem)
    assert violations(problem, result.assignments) == []
    assert violations(problem, base.assignments) == []
    assert (result.placed, -result.preference_cost) >= (base.placed, -base.preference_cost)
    assert result.status == "optimal"
    assert (result.placed, -result.preference_cost) == _brute_force(problem)
    assert (result.bound_placed, result.bound_preference_cost) == (
        result.placed,
        result.preference_cost,
    )
    assert result.placed + result.unplaced == len(problem.requests)
    assert len(result.unplaced_requests) == result.unplaced
    assert not any(u.reason.startswith("unallocated") for u in result.unplaced_requests)
    # Greedy's bound is a real bound: never below what the solver proved reachable.
    assert base.bound_placed >= result.placed


@pytest.mark.parametrize("seed", range(8))
def test_large_batch_path_keeps_rules(
    seed: int, build: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Force the transport-and-repair path that big instances take.
    monkeypatch.setattr("scheduler.solver.LARGE_VARIABLES", 0)
    rng = random.Random(100 + seed)
    problem = load_problem(_random_instance(rng, build))
    result = solve(problem, time_limit=3)
    assert violations(problem, result.assignments) == []
    best = _brute_force(problem)
    assert (result.placed, -result.preference_cost) <= best
    assert result.bound_placed >= best[0]
    assert result.bound_preference_cost <= -best[1] or result.placed < best[0]
    base = greedy(problem)
    assert (result.placed, -result.preference_cost) >= (base.placed, -base.preference_cost)
    if result.status == "optimal":
        assert (result.placed, -result.preference_cost) == best


@pytest.mark.parametrize("seed", range(6))
def test_cp_sat_engine_matches_brute_force(seed: int, build: Any) -> None:
    rng = random.Random(200 + seed)
    problem = load_problem(_random_instance(rng, build))
    result = solve(problem, time_limit=5, engine="cp-sat")
    assert violations(problem, result.assignments) == []
    assert (result.placed, -result.preference_cost) == _brute_force(problem)
