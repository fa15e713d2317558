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


def _random_instance(rng: random.Random, build: Any, extras: bool = False) -> dict[str, Any]:
    """Return three learners and a few dates; ``extras`` adds a workshop and avoid lists."""
    courses = {"a": 0.5, "b": 1.0, "c": 0.5}
    if extras:
        courses["w"] = 0.5
    sessions = []
    for k in range(rng.randint(3, 5) + extras):
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
        if extras:
            needs = [c for c in needs if c != "w"]
            if rng.random() < 0.5:
                extra["wants"] = ["w"]
            held = set(extra.get("fixed", {}).values())
            spare = [s["id"] for s in sessions if s["id"] not in held]
            if spare and rng.random() < 0.5:
                extra["avoid"] = rng.sample(spare, rng.randint(1, min(2, len(spare))))
            extra["preferences"] = {
                c: listed
                for c, listed in prefs.items()
                if c in needs or c in extra.get("wants", [])
            }
            extra["fixed"] = {
                c: sid
                for c, sid in extra.get("fixed", {}).items()
                if c in needs or c in extra.get("wants", [])
            }
        learners.append(build.learner(f"n{i}", needs, **extra))
    data = build.instance(courses, sessions, learners)
    if extras:
        data["courses"][-1]["optional"] = True
    return data


def _brute_force(problem: Problem, cost_cap: int | None = None) -> tuple[int, int]:
    """Return the lexicographic optimum (placements, -cost) by trying everything.

    With ``cost_cap``, only allocations costing at most that much count.
    """
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
        if cost_cap is not None and cost > cost_cap:
            continue
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


@pytest.mark.parametrize("seed", range(30))
def test_avoid_and_wanted_workshops(seed: int, build: Any) -> None:
    # Workshops go only to learners who want them, nobody lands on a date they avoid,
    # and the answer never costs more or places fewer than first come, first served.
    problem = load_problem(_random_instance(random.Random(900 + seed), build, extras=True))
    result = solve(problem, time_limit=5)
    base = greedy(problem)
    assert violations(problem, result.assignments) == []
    assert violations(problem, base.assignments) == []
    learners = {lr.id: lr for lr in problem.learners}
    for a in result.assignments + base.assignments:
        learner = learners[a.learner]
        assert a.session not in learner.avoid
        if a.course == "w":
            assert "w" in learner.wants
    assert result.placed >= base.placed
    assert result.preference_cost <= base.preference_cost
    # The best no costlier than greedy is what the solver must reach; unconstrained
    # bounds stay above it.
    best = _brute_force(problem, cost_cap=base.preference_cost)
    anything = _brute_force(problem)
    assert (result.placed, -result.preference_cost) <= best
    assert result.bound_placed >= anything[0]
    if anything[1] >= -base.preference_cost:
        assert (result.placed, -result.preference_cost) == anything == best
        assert result.status == "optimal"
    if result.status == "optimal":
        assert (result.placed, -result.preference_cost) == anything
    reasons = {(u.learner, u.course): u.reason for u in result.unplaced_requests}
    for req in problem.requests:
        key = (problem.learners[req.learner].id, req.course)
        if key in reasons and req.available and not req.sessions:
            assert reasons[key].startswith("avoid: ")


def test_avoid_is_its_own_reason(build: Any) -> None:
    problem = build.problem(
        {"c": 0.5},
        [build.session("c1", "c"), build.session("c2", "c", day="2027-02-02")],
        [build.learner("a", ["c"], avoid=["c1", "c2"]), build.learner("b", ["c"], avoid=["c1"])],
    )
    result = solve(problem, time_limit=5)
    assert [(a.learner, a.session) for a in result.assignments] == [("b", "c2")]
    (unplaced,) = result.unplaced_requests
    assert unplaced.reason.startswith("avoid: every remaining date (2)")


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
