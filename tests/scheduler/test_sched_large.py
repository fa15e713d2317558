"""The paths big batches take: groups joined by open sessions, patterns, course sweeps."""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Any

import pytest

from scheduler import solver
from scheduler.__main__ import main
from scheduler.baseline import greedy
from scheduler.bounds import candidates
from scheduler.check import violations
from scheduler.problem import Assignment, Problem, load_problem
from scheduler.solver import (
    PLACEMENT_WEIGHT,
    _classes,
    _columns,
    _Context,
    _group_bound,
    _groups,
    _improve,
    _linked,
    _Rows,
    _split,
    _sweep,
    _Totals,
    _upper,
    solve,
)
from tests.scheduler.test_sched_bounds import _part_timers_with_fixed
from tests.scheduler.test_sched_property import _brute_force, _random_instance


@pytest.fixture
def big_paths(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Send every batch down the big-batch paths; record whether ``_linked`` answered."""
    monkeypatch.setattr(solver, "LARGE_VARIABLES", 0)
    monkeypatch.setattr(solver, "GROUP_VARIABLES", 0)
    used: list[bool] = []
    linked = solver._linked

    def spy(*args: Any) -> Any:
        out = linked(*args)
        used.append(out is not None)
        return out

    monkeypatch.setattr(solver, "_linked", spy)
    return used


def _model(problem: Problem) -> tuple[_Context, _Rows]:
    cand = candidates(problem)
    ctx = _Context(problem, cand)
    return ctx, ctx.rows(_split(problem, cand))


def _chosen(problem: Problem, ctx: _Context, rows: _Rows, values: list[bool]) -> set[str]:
    return {
        f"{problem.learners[ctx.learner_of[v.request]].id}:{problem.sessions[v.session].id}"
        for v, on in zip(rows.vars, values, strict=True)
        if on
    }


def _assignments(
    problem: Problem, ctx: _Context, rows: _Rows, values: list[bool]
) -> list[Assignment]:
    """Return the fixed places and those ``values`` choose."""
    fixed = [
        Assignment(problem.learners[r.learner].id, r.course, problem.sessions[r.fixed].id)
        for r in problem.requests
        if r.fixed is not None
    ]
    return fixed + [
        Assignment(
            problem.learners[ctx.learner_of[v.request]].id,
            problem.sessions[v.session].course,
            problem.sessions[v.session].id,
        )
        for v, on in zip(rows.vars, values, strict=True)
        if on
    ]


def test_regions_joined_by_an_online_date_are_proved_optimal(
    build: Any, big_paths: list[bool]
) -> None:
    # One place in each region and one online: three of the four are placed, each on
    # a date they listed first (or with no list), so the cost is 0.
    problem = build.problem(
        {"c": 0.5},
        [
            build.session("north-1", "c", capacity=1, group="north"),
            build.session("south-1", "c", day="2027-01-13", capacity=1, group="south"),
            build.session("online", "c", day="2027-01-14", capacity=1),
        ],
        [
            build.learner("a", ["c"], groups=["north"], preferences={"c": ["online"]}),
            build.learner("b", ["c"], groups=["north"], preferences={"c": ["north-1"]}),
            build.learner("c", ["c"], groups=["south"], preferences={"c": ["south-1"]}),
            build.learner("d", ["c"], groups=["south"], preferences={"c": ["south-1"]}),
        ],
    )
    result = solve(problem, time_limit=5)
    assert big_paths == [True]
    assert violations(problem, result.assignments) == []
    sessions = {a.session for a in result.assignments}
    assert sessions == {"north-1", "south-1", "online"}
    assert ("a", "online") in {(a.learner, a.session) for a in result.assignments}
    assert (result.placed, result.preference_cost, result.status) == (3, 0, "optimal")
    assert (result.bound_placed, result.bound_preference_cost) == (3, 0)


def _two_regions(rng: random.Random, build: Any) -> dict[str, Any]:
    """Return three learners in two regions; each course has one place per region and online."""
    courses = {"a": 0.5, "b": 1.0}
    days = ["2027-01-04", "2027-01-06", "2027-01-14", "2027-02-09"]
    sessions = [
        build.session(
            f"{c}-{where}",
            c,
            day=rng.choice(days),
            start=start,
            end=end,
            capacity=1,
            group=None if where == "online" else where,
        )
        for c in courses
        for where in ("north", "south", "online")
        for start, end in [rng.choice([("09:30", "12:30"), ("13:30", "16:30")])]
    ]
    learners = []
    for i, region in enumerate(["north", "north", "south"]):
        needs = ["a", "b"] if rng.random() < 0.5 else ["a"]
        own = [s["id"] for s in sessions if s["course"] == "a"]
        learners.append(
            build.learner(
                f"n{i}",
                needs,
                groups=[region],
                fte=rng.choice([0.4, 1.0, 1.0]),
                preferences={"a": rng.sample(own, rng.randint(1, 2))},
            )
        )
    return build.instance(courses, sessions, learners)


def test_group_path_keeps_rules_and_proves_only_the_truth(
    build: Any, big_paths: list[bool]
) -> None:
    for seed in range(24):
        problem = load_problem(_two_regions(random.Random(400 + seed), build))
        result = solve(problem, time_limit=2)
        assert violations(problem, result.assignments) == [], seed
        best = _brute_force(problem)
        assert (result.placed, -result.preference_cost) <= best, seed
        assert result.bound_placed >= best[0], seed
        if result.placed == best[0]:
            assert result.bound_preference_cost <= -best[1], seed
        if result.status == "optimal":
            assert (result.placed, -result.preference_cost) == best, seed
        base = greedy(problem)
        assert (result.placed, -result.preference_cost) >= (base.placed, -base.preference_cost)
    # The instances are built so that most of them take the group path.
    assert sum(big_paths) >= len(big_paths) // 2, big_paths


def _split_instances(build: Any, first_seed: int) -> list[Problem]:
    """Return the instances of twelve seeds that split into groups (most do)."""
    out = []
    for seed in range(first_seed, first_seed + 12):
        problem = load_problem(_two_regions(random.Random(seed), build))
        ctx, rows = _model(problem)
        if _groups(ctx, rows) is not None:
            out.append(problem)
    assert len(out) >= 6
    return out


def test_priced_bound_holds_for_any_prices(build: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(solver, "GROUP_VARIABLES", 0)
    rng = random.Random(1)
    for problem in _split_instances(build, 600):
        ctx, rows = _model(problem)
        split = _groups(ctx, rows)
        assert split is not None
        groups, linking = split
        placed, cost = _brute_force(problem)
        worth = [PLACEMENT_WEIGHT - v.cost for v in rows.vars]
        ones = [1.0] * len(rows.vars)
        for _ in range(5):
            price = {k: rng.choice([0.0, 0.5, 50.0, 99.0, 100.0, 250.0]) for k in linking}
            until = time.perf_counter() + 60
            bounds = [_group_bound(rows, idx, linking, worth, price, until) for idx in groups]
            assert _upper(rows, price, bounds) >= PLACEMENT_WEIGHT * placed + cost - 1e-6
            scaled = {k: p / PLACEMENT_WEIGHT for k, p in price.items()}
            counts = [_group_bound(rows, idx, linking, ones, scaled, until) for idx in groups]
            assert _upper(rows, scaled, counts) >= placed - 1e-6


def test_group_answer_keeps_every_row(build: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Called directly, so the solver's final check (which would fall back to greedy)
    # cannot hide a broken share of the linking sessions.
    monkeypatch.setattr(solver, "GROUP_VARIABLES", 0)
    for problem in _split_instances(build, 700):
        ctx, rows = _model(problem)
        out = _linked(rows, [False] * len(rows.vars), 2.0, _Totals(0, 0, 0, 0, 0.0, None), ctx, 1)
        assert out is not None
        assert violations(problem, _assignments(problem, ctx, rows, out.values)) == []
        best = _brute_force(problem)
        assert (out.count, -out.cost) <= best
        assert out.count_bound >= best[0] - ctx.cand.fixed_placed
        if out.count == best[0] - ctx.cand.fixed_placed:
            assert out.cost_bound <= -best[1] - ctx.cand.fixed_cost


@pytest.mark.parametrize("seed", range(6))
def test_transport_start_without_classes_keeps_rules(
    seed: int, build: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Too many kinds of learner for column generation: the trimmed transport starts.
    monkeypatch.setattr(solver, "LARGE_VARIABLES", 0)
    monkeypatch.setattr(solver, "PERSONAL_CLASSES", 0)
    problem = load_problem(_random_instance(random.Random(500 + seed), build))
    result = solve(problem, time_limit=2)
    assert violations(problem, result.assignments) == []
    best = _brute_force(problem)
    assert (result.placed, -result.preference_cost) <= best
    assert result.bound_placed >= best[0]
    if result.status == "optimal":
        assert (result.placed, -result.preference_cost) == best


def test_column_generation_finds_the_patterns_that_share(build: Any) -> None:
    # 0.4 FTE: one half day per four weeks, so each learner takes c and e in different
    # months. Both cannot take the same pair of dates (one place each): one goes
    # c-jan + e-mar, the other c-mar + e-jan.
    problem = build.problem(
        {"c": 0.5, "e": 0.5},
        [
            build.session("c-jan", "c", day="2027-01-12", capacity=1),
            build.session("e-jan", "e", day="2027-01-14", capacity=1),
            build.session("c-mar", "c", day="2027-03-09", capacity=1),
            build.session("e-mar", "e", day="2027-03-11", capacity=1),
        ],
        [build.learner("a", ["c", "e"], fte=0.4), build.learner("b", ["c", "e"], fte=0.4)],
    )
    ctx, rows = _model(problem)
    classes = _classes(ctx, rows)
    assert classes is not None
    assert [(len(c.members), c.cap) for c in classes] == [(2, 2)]
    values, bound = _columns(ctx, rows, classes, until=float("inf"))
    assert sum(values) == 4
    assert math.floor(bound + 1e-6) == 4
    assert violations(problem, _assignments(problem, ctx, rows, values)) == []


@pytest.mark.parametrize("seed", range(20))
def test_pattern_bound_never_below_brute_force(seed: int, build: Any) -> None:
    problem = load_problem(_part_timers_with_fixed(random.Random(800 + seed), build))
    ctx, rows = _model(problem)
    classes = _classes(ctx, rows)
    assert classes is not None
    values, bound = _columns(ctx, rows, classes, until=float("inf"))
    assert violations(problem, _assignments(problem, ctx, rows, values)) == []
    placed = _brute_force(problem)[0]
    assert ctx.cand.fixed_placed + bound >= placed - 1e-6
    assert ctx.cand.fixed_placed + sum(values) <= placed


def test_course_sweep_moves_people_to_place_more_and_cheaper(build: Any) -> None:
    # a holds c-feb but asked for c-jan. x (0.5 FTE, one day per four weeks) holds a full
    # day d-jan, so only c-feb fits beside it. y holds d-jan too and asked for c-clash,
    # which runs at the same time. One sweep of c: a to c-jan, x and y to c-feb.
    problem = build.problem(
        {"c": 0.5, "d": 1.0},
        [
            build.session("c-jan", "c", day="2027-01-12", start="09:30", end="12:30", capacity=1),
            build.session("c-feb", "c", day="2027-02-16", start="09:30", end="12:30", capacity=2),
            build.session("c-clash", "c", day="2027-01-13", start="13:30", end="16:30"),
            build.session("d-jan", "d", day="2027-01-13", capacity=2),
        ],
        [
            build.learner("a", ["c"], preferences={"c": ["c-jan"]}),
            build.learner("x", ["c", "d"], fte=0.5),
            build.learner("y", ["c", "d"], preferences={"c": ["c-clash"]}),
        ],
    )
    ctx, rows = _model(problem)
    start = [
        f"{problem.learners[ctx.learner_of[v.request]].id}:{problem.sessions[v.session].id}"
        in {"a:c-feb", "x:d-jan", "y:d-jan"}
        for v in rows.vars
    ]
    course_of = [problem.sessions[v.session].course for v in rows.vars]
    values = _sweep(rows, start, course_of, until=float("inf"))
    assert _chosen(problem, ctx, rows, values) == {
        "a:c-jan",
        "x:c-feb",
        "x:d-jan",
        "y:c-feb",
        "y:d-jan",
    }
    assert violations(problem, _assignments(problem, ctx, rows, values)) == []


def test_group_engine_prints_nothing_on_stdout(
    build: Any, big_paths: list[bool], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # HiGHS writes a banner straight to file descriptor 1 unless told not to, which
    # would break `python -m scheduler solve` writing its JSON to stdout.
    inst = _two_regions(random.Random(700), build)
    path = tmp_path / "instance.json"
    path.write_text(json.dumps(inst), encoding="utf-8")
    assert main(["solve", str(path), "--time-limit", "3"]) == 0
    out = capfd.readouterr().out
    assert big_paths == [True]
    assert json.loads(out)["format"] == "asye-allocation-result/1"


def test_learner_re_solved_alone_moves_two_courses_at_once(build: Any) -> None:
    # 0.4 FTE: one half day per four weeks. y holds c-mar and d-jan but asked for c-jan,
    # which only fits if d moves to March too: no single-course sweep can do that.
    problem = build.problem(
        {"c": 0.5, "d": 0.5},
        [
            build.session("c-jan", "c", day="2027-01-12", start="09:30", end="12:30"),
            build.session("d-jan", "d", day="2027-01-14", start="09:30", end="12:30"),
            build.session("c-mar", "c", day="2027-03-09", start="09:30", end="12:30"),
            build.session("d-mar", "d", day="2027-03-11", start="09:30", end="12:30"),
        ],
        [build.learner("y", ["c", "d"], fte=0.4, preferences={"c": ["c-jan"]})],
    )
    ctx, rows = _model(problem)
    start = [problem.sessions[v.session].id in {"c-mar", "d-jan"} for v in rows.vars]
    course_of = [problem.sessions[v.session].course for v in rows.vars]
    assert _sweep(rows, start, course_of, until=float("inf")) == start
    values = _improve(
        rows, start, ctx.learner_of, time.perf_counter() + 1.5, lambda _: None, 2, alone=[0]
    )
    assert _chosen(problem, ctx, rows, values) == {"y:c-jan", "y:d-mar"}
    assert violations(problem, _assignments(problem, ctx, rows, values)) == []


class _Unsolved:
    """A pywraplp solver stand-in that stops before any answer, as on a loaded machine."""

    def __init__(self, maximize: bool) -> None:
        self.maximize = maximize

    def SetTimeLimit(self, ms: int) -> None:
        pass

    def SetHint(self, x: Any, values: Any) -> None:
        pass

    def SetSolverSpecificParametersAsString(self, text: str) -> bool:
        return True

    def Solve(self) -> int:
        return solver.pywraplp.Solver.NOT_SOLVED

    def Objective(self) -> Any:
        outer = self

        class _Objective:
            def maximization(self) -> bool:
                return outer.maximize

            def BestBound(self) -> float:
                return 0.0

        return _Objective()


@pytest.mark.parametrize("maximize", [True, False])
def test_an_unsolved_model_proves_nothing(maximize: bool) -> None:
    # A group MIP stopped before its root once reported a bound of 0 for a
    # maximisation, which made greedy's answer look proved optimal.
    values, bound = solver._run_mip(_Unsolved(maximize), [], None, 5.0, "HIGHS")  # type: ignore[arg-type]
    assert values is None
    assert bound == (math.inf if maximize else -math.inf)
