"""The solver and the greedy baseline on instances whose optimum is known by hand."""

from __future__ import annotations

from typing import Any

import pytest

from scheduler.baseline import greedy
from scheduler.check import violations
from scheduler.problem import Allocation, Problem
from scheduler.solver import Progress, solve


def _solve(problem: Problem) -> Allocation:
    result = solve(problem, time_limit=10)
    assert violations(problem, result.assignments) == []
    return result


def _placed(result: Allocation) -> set[tuple[str, str, str]]:
    return {(a.learner, a.course, a.session) for a in result.assignments}


def _reasons(result: Allocation) -> dict[tuple[str, str], str]:
    return {(u.learner, u.course): u.reason.split(":")[0] for u in result.unplaced_requests}


def test_capacity(build: Any) -> None:
    problem = build.problem(
        {"c": 0.5},
        [build.session("s", "c", capacity=2)],
        [build.learner(f"n{i}", ["c"]) for i in range(3)],
    )
    result = _solve(problem)
    assert (result.placed, result.unplaced, result.status) == (2, 1, "optimal")
    assert list(_reasons(result).values()) == ["capacity"]
    assert result.unplaced_requests[0].reason == "capacity: every eligible date is full"


def test_zero_capacity_is_full(build: Any) -> None:
    problem = build.problem(
        {"c": 0.5}, [build.session("s", "c", capacity=0)], [build.learner("n", ["c"])]
    )
    result = _solve(problem)
    assert result.placed == 0
    assert _reasons(result) == {("n", "c"): "capacity"}


def test_one_session_per_course(build: Any) -> None:
    problem = build.problem(
        {"c": 0.5},
        [build.session("s1", "c"), build.session("s2", "c", day="2027-03-03")],
        [build.learner("n", ["c"])],
    )
    result = _solve(problem)
    assert result.placed == 1
    assert len(result.assignments) == 1


@pytest.mark.parametrize(
    ("day", "placed"),
    [("2026-09-01", 1), ("2027-08-31", 1), ("2026-08-31", 0), ("2027-09-01", 0)],
)
def test_asye_year_is_inclusive(build: Any, day: str, placed: int) -> None:
    problem = build.problem(
        {"c": 0.5}, [build.session("s", "c", day=day)], [build.learner("n", ["c"])]
    )
    result = _solve(problem)
    assert result.placed == placed
    if not placed:
        assert _reasons(result) == {("n", "c"): "no-date"}


def test_london_date_decides_the_year(build: Any) -> None:
    # 23:30Z on 14 June is 00:30 on 15 June in British Summer Time: after the year ends.
    late = build.session("bst", "c")
    late["start"], late["end"] = "2027-06-14T23:30:00Z", "2027-06-15T01:30:00Z"
    winter = build.session("gmt", "d")
    winter["start"], winter["end"] = "2027-01-14T23:30:00Z", "2027-01-15T01:30:00Z"
    problem = build.problem(
        {"c": 0.5, "d": 0.5},
        [late, winter],
        [build.learner("n", ["c", "d"], start="2026-06-15", end="2027-06-14")],
    )
    result = _solve(problem)
    assert _placed(result) == {("n", "d", "gmt")}
    assert _reasons(result) == {("n", "c"): "no-date"}


def test_unavailable_range_is_inclusive(build: Any) -> None:
    problem = build.problem(
        {"c": 0.5},
        [build.session("s1", "c", day="2027-01-04"), build.session("s2", "c", day="2027-01-08")],
        [build.learner("n", ["c"], unavailable=[{"from": "2027-01-04", "to": "2027-01-08"}])],
    )
    result = _solve(problem)
    assert result.placed == 0
    assert _reasons(result) == {("n", "c"): "unavailable"}


def test_groups_restrict_sessions(build: Any) -> None:
    problem = build.problem(
        {"c": 0.5},
        [build.session("ldn", "c", group="london")],
        [
            build.learner("in", ["c"], groups=["london"]),
            build.learner("out", ["c"], groups=["north-west"]),
            build.learner("none", ["c"]),
        ],
    )
    result = _solve(problem)
    assert _placed(result) == {("in", "c", "ldn")}
    assert _reasons(result) == {("out", "c"): "no-group", ("none", "c"): "no-group"}


def test_sessions_without_group_are_open(build: Any) -> None:
    problem = build.problem(
        {"c": 0.5}, [build.session("s", "c")], [build.learner("n", ["c"], groups=["x"])]
    )
    assert _solve(problem).placed == 1


def test_overlapping_sessions_clash(build: Any) -> None:
    problem = build.problem(
        {"a": 0.5, "b": 0.5, "m": 0.5, "p": 0.5},
        [
            build.session("a1", "a", start="09:30", end="12:30"),
            build.session("b1", "b", start="12:00", end="15:00"),
            build.session("m1", "m", day="2027-03-01", start="09:30", end="12:30"),
            build.session("p1", "p", day="2027-03-01", start="12:30", end="15:30"),
        ],
        [build.learner("n", ["a", "b", "m", "p"])],
    )
    result = _solve(problem)
    # Morning and afternoon that only touch do not clash; a and b do.
    assert result.placed == 3
    assert {a.course for a in result.assignments} >= {"m", "p"}
    assert list(_reasons(result).values()) == ["clash"]


def test_part_timer_cannot_take_a_full_day(build: Any) -> None:
    # 0.2 FTE: 0.5 x 4 x 0.2 = 0.4 days per 4 weeks, less than one full day.
    problem = build.problem(
        {"mca": 1.0, "care": 0.5},
        [build.session("mca-1", "mca"), build.session("care-1", "care", day="2027-03-01")],
        [build.learner("n", ["mca", "care"], fte=0.2)],
    )
    result = _solve(problem)
    assert result.placed == 0
    assert _reasons(result) == {("n", "mca"): "protected-time", ("n", "care"): "protected-time"}
    assert result.status == "optimal"


def test_windows_start_on_mondays(build: Any) -> None:
    # Wed 6 Jan and Mon 1 Feb are 26 days apart but share no Monday-based 4-week window,
    # so with Thu 14 Jan every window holds 2 days: the cap exactly.
    problem = build.problem(
        {"x": 1.0, "y": 1.0, "z": 1.0},
        [
            build.session("x1", "x", day="2027-01-06"),
            build.session("z1", "z", day="2027-01-14"),
            build.session("y1", "y", day="2027-02-01"),
        ],
        [build.learner("n", ["x", "y", "z"])],
    )
    assert _solve(problem).placed == 3


def test_window_over_cap(build: Any) -> None:
    problem = build.problem(
        {"x": 1.0, "y": 1.0, "z": 1.0},
        [
            build.session("x1", "x", day="2027-01-04"),
            build.session("y1", "y", day="2027-01-13"),
            build.session("z1", "z", day="2027-01-31"),
        ],
        [build.learner("n", ["x", "y", "z"])],
    )
    result = _solve(problem)
    assert result.placed == 2
    assert list(_reasons(result).values()) == ["protected-time"]


def test_fixed_places_count_towards_capacity_and_cap(build: Any) -> None:
    problem = build.problem(
        {"c": 1.0, "d": 1.0, "e": 1.0},
        [
            build.session("c1", "c", capacity=1),
            build.session("d1", "d", day="2027-01-13"),
            build.session("e1", "e", day="2027-01-14"),
        ],
        [
            build.learner("held", ["c", "d", "e"], fixed={"c": "c1"}),
            build.learner("late", ["c"]),
        ],
    )
    result = _solve(problem)
    assert ("held", "c", "c1") in _placed(result)
    assert _reasons(result)[("late", "c")] == "capacity"
    # c1 (12 Jan) plus one of d1/e1 fills the 2-day cap.
    assert sum(a.learner == "held" for a in result.assignments) == 2


def test_fixed_place_breaking_rules_is_kept_and_reported(build: Any) -> None:
    problem = build.problem(
        {"c": 1.0},
        [build.session("c1", "c", capacity=0)],
        [build.learner("n", ["c"], fte=0.2, fixed={"c": "c1"})],
    )
    result = _solve(problem)
    assert _placed(result) == {("n", "c", "c1")}
    assert any("capacity 0" in w for w in result.warnings)
    assert any("over the cap" in w for w in result.warnings)


def test_preference_cost(build: Any) -> None:
    sessions = [build.session(f"s{k}", "c", day=f"2027-0{k}-04", capacity=1) for k in (1, 2, 3)]
    learners = [
        build.learner("a", ["c"], preferences={"c": ["s2", "s1"]}),
        build.learner("b", ["c"], preferences={"c": ["s2", "s1"]}),
        build.learner("c", ["c"], preferences={"c": ["s2", "s1"]}),
    ]
    result = _solve(build.problem({"c": 0.5}, sessions, learners))
    # Costs: s2 -> 0, s1 -> 1, s3 (unlisted) -> 2.
    assert (result.placed, result.preference_cost, result.status) == (3, 3, "optimal")


def test_more_placements_beat_lower_cost(build: Any) -> None:
    # b can only take s1, which a listed. Moving a to s2 costs 1; greedy pays that 1
    # already on course d, where f took e's listed date first. Swapping e and f saves
    # it, so one more placement comes at no more cost than first come, first served.
    problem = build.problem(
        {"c": 0.5, "d": 0.5},
        [
            build.session("s1", "c", capacity=1),
            build.session("s2", "c", day="2027-02-02"),
            build.session("d0", "d", day="2027-03-02", capacity=1),
            build.session("d1", "d", day="2027-04-06"),
        ],
        [
            build.learner("a", ["c"], preferences={"c": ["s1"]}),
            build.learner("b", ["c"], end="2027-01-31"),
            build.learner("f", ["d"]),
            build.learner("e", ["d"], preferences={"d": ["d0"]}),
        ],
    )
    result = _solve(problem)
    assert _placed(result) == {
        ("a", "c", "s2"),
        ("b", "c", "s1"),
        ("f", "d", "d1"),
        ("e", "d", "d0"),
    }
    assert (result.placed, result.preference_cost) == (4, 1)
    assert (result.bound_placed, result.bound_preference_cost) == (4, 1)
    assert result.status == "optimal"
    base = greedy(problem)
    # First come, first served gives a its favourite and leaves b without a date.
    assert (base.placed, base.preference_cost, base.status) == (3, 1, "feasible")


def test_never_costlier_than_greedy(build: Any) -> None:
    # Placing b as well would move a off their only listed date: one more placement
    # for a higher preference cost than first come, first served. The solver keeps
    # greedy's answer, the floor on both counts, and says it is not proved optimal.
    problem = build.problem(
        {"c": 0.5},
        [build.session("s1", "c", capacity=1), build.session("s2", "c", day="2027-02-02")],
        [
            build.learner("a", ["c"], preferences={"c": ["s1"]}),
            build.learner("b", ["c"], end="2027-01-31"),
        ],
    )
    result = _solve(problem)
    base = greedy(problem)
    assert (base.placed, base.preference_cost) == (1, 0)
    assert _placed(result) == {("a", "c", "s1")}
    assert (result.placed, result.preference_cost) == (1, 0)
    assert result.bound_placed == 2
    assert result.status == "feasible"
    assert base.bound_placed == 2
    assert _reasons(base) == {("b", "c"): "capacity"}


def test_greedy_order(build: Any) -> None:
    problem = build.problem(
        {"c": 0.5, "d": 0.5},
        [
            build.session("late", "c", day="2027-03-01", capacity=1),
            build.session("early", "c", day="2027-01-04", capacity=1),
            build.session("d1", "d", day="2027-01-04", start="09:00", end="10:00"),
        ],
        [
            build.learner("first", ["d", "c"]),
            build.learner("second", ["c"], preferences={"c": ["early", "late"]}),
        ],
    )
    base = greedy(problem)
    # "first" takes d1 then, with no preference, the earliest c date that fits: d1
    # (9:00-10:00) clashes with "early" (9:30-16:30), so "late".
    assert _placed(base) == {("first", "d", "d1"), ("first", "c", "late"), ("second", "c", "early")}
    assert [a.course for a in base.assignments[:2]] == ["d", "c"]


def test_status_feasible_when_time_runs_out(build: Any) -> None:
    problem = build.problem({"c": 0.5}, [build.session("s", "c")], [build.learner("n", ["c"])])
    result = solve(problem, time_limit=5)
    assert result.status == "optimal"
    assert (result.bound_placed, result.bound_preference_cost) == (1, 0)


def test_progress_is_reported(build: Any) -> None:
    seen: list[Progress] = []
    problem = build.problem(
        {"c": 0.5},
        [build.session("s1", "c", capacity=1), build.session("s2", "c", day="2027-02-02")],
        [build.learner("a", ["c"]), build.learner("b", ["c"])],
    )
    solve(problem, time_limit=5, on_progress=seen.append)
    assert {p.phase for p in seen} == {"placements", "preferences"}
    assert all(p.bound >= 0 and p.seconds >= 0 for p in seen)


@pytest.mark.parametrize("engine", ["mip", "cp-sat"])
def test_engines_agree(build: Any, engine: Any) -> None:
    problem = build.problem(
        {"c": 0.5, "d": 1.0},
        [
            build.session("c1", "c", capacity=1),
            build.session("c2", "c", day="2027-01-20", capacity=1),
            build.session("d1", "d", day="2027-01-13", capacity=2),
        ],
        [
            build.learner("a", ["c", "d"], fte=0.5, preferences={"c": ["c2"]}),
            build.learner("b", ["c", "d"]),
        ],
    )
    result = solve(problem, time_limit=5, engine=engine)
    assert violations(problem, result.assignments) == []
    assert (result.placed, result.preference_cost, result.status) == (3, 0, "optimal")
