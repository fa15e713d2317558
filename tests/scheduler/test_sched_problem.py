"""Loading, validation and eligibility of allocation instances."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest

from scheduler.problem import (
    Allocation,
    Assignment,
    ProblemError,
    UnplacedRequest,
    allocation_from_json,
    allocation_to_json,
    load_problem,
)

EXAMPLE: dict[str, Any] = {
    "format": "asye-allocation/1",
    "rules": {"protected_days_per_week": 0.5, "window_weeks": 4, "training_share": 1.0},
    "courses": [
        {"id": "mca", "title": "MCA in Practice", "days": 1.0},
        {"id": "care", "title": "Care Act", "days": 0.5},
    ],
    "sessions": [
        {
            "id": "mca-1",
            "course": "mca",
            "start": "2027-01-12T09:30:00Z",
            "end": "2027-01-12T16:30:00Z",
            "capacity": 30,
        },
        {
            "id": "care-1",
            "course": "care",
            "start": "2027-06-14T23:30:00Z",
            "end": "2027-06-15T02:30:00Z",
            "capacity": 30,
            "group": "london",
        },
    ],
    "learners": [
        {
            "id": "n1",
            "employer": "trust-a",
            "start": "2026-09-01",
            "end": "2027-08-31",
            "fte": 1.0,
            "needs": ["mca"],
            "unavailable": [{"from": "2026-12-21", "to": "2027-01-01"}],
            "preferences": {"mca": ["mca-1"]},
            "fixed": {},
        }
    ],
}


def test_example_loads() -> None:
    problem = load_problem(EXAMPLE)
    assert [c.id for c in problem.courses] == ["mca", "care"]
    learner = problem.learners[0]
    assert learner.needs == ("mca",)
    assert learner.preferences == {"mca": ("mca-1",)}
    assert problem.rules.cap_days(learner.fte) == 2.0


def test_session_day_is_london_date() -> None:
    # 23:30 UTC in June is 00:30 British Summer Time the next day.
    problem = load_problem(EXAMPLE)
    assert problem.sessions[1].day == date(2027, 6, 15)
    assert problem.sessions[0].day == date(2027, 1, 12)


def test_files_without_the_new_fields_mean_what_they_did() -> None:
    # optional, wants and avoid were added to version 1: absent, nothing changes.
    problem = load_problem(EXAMPLE)
    assert not any(c.optional for c in problem.courses)
    learner = problem.learners[0]
    assert (learner.wants, learner.avoid) == ((), frozenset())
    assert [(r.course, r.sessions) for r in problem.requests] == [("mca", (0,))]


def test_avoided_sessions_and_wanted_workshops(build: Any) -> None:
    data = build.instance(
        {"mca": 1.0, "scr": 0.5},
        [
            build.session("mca-1", "mca"),
            build.session("mca-2", "mca", day="2027-02-02"),
            build.session("scr-1", "scr", day="2027-03-02"),
        ],
        [
            build.learner("n1", ["mca"], wants=["scr"], avoid=["mca-1"]),
            build.learner("n2", ["mca"]),
        ],
    )
    data["courses"][1]["optional"] = True
    problem = load_problem(data)
    asked = [(problem.learners[r.learner].id, r.course, r.sessions) for r in problem.requests]
    # n1 never gets mca-1; n2 asked for no workshop, so scr is not a request of theirs.
    assert asked == [("n1", "mca", (1,)), ("n1", "scr", (2,)), ("n2", "mca", (0, 1))]


def test_rules_default_when_missing() -> None:
    data = copy.deepcopy(EXAMPLE)
    del data["rules"]
    assert load_problem(data).rules.window_weeks == 4


def _broken(change: str) -> dict[str, Any]:
    data = copy.deepcopy(EXAMPLE)
    learner = data["learners"][0]
    session = data["sessions"][0]
    if change == "format":
        data["format"] = "asye-allocation/2"
    elif change == "unknown-need":
        learner["needs"] = ["mca", "mcaa"]
    elif change == "duplicate-need":
        learner["needs"] = ["mca", "mca"]
    elif change == "duplicate-session":
        data["sessions"][1]["id"] = "mca-1"
    elif change == "duplicate-learner":
        data["learners"].append(copy.deepcopy(learner))
    elif change == "duplicate-course":
        data["courses"][1]["id"] = "mca"
    elif change == "end-before-start":
        learner["end"] = "2026-08-31"
    elif change == "session-end":
        session["end"] = session["start"]
    elif change == "fte-zero":
        learner["fte"] = 0
    elif change == "fte-big":
        learner["fte"] = 1.5
    elif change == "capacity":
        session["capacity"] = -1
    elif change == "capacity-bool":
        session["capacity"] = True
    elif change == "fixed-course":
        learner["fixed"] = {"mca": "care-1"}
    elif change == "fixed-unknown":
        learner["fixed"] = {"mca": "mca-9"}
    elif change == "bad-date":
        learner["start"] = "2027-02-30"
    elif change == "date-format":
        learner["start"] = "1/9/2026"
    elif change == "naive-time":
        session["start"] = "2027-01-12T09:30:00"
    elif change == "session-course":
        session["course"] = "nope"
    elif change == "pref-session":
        learner["preferences"] = {"mca": ["care-1"]}
    elif change == "pref-course":
        learner["preferences"] = {"mcx": ["mca-1"]}
    elif change == "unknown-field":
        learner["prefrences"] = {}
    elif change == "days":
        data["courses"][0]["days"] = 0
    elif change == "unavailable":
        learner["unavailable"] = [{"from": "2027-01-02", "to": "2027-01-01"}]
    elif change == "window":
        data["rules"]["window_weeks"] = 0
    elif change == "share":
        data["rules"]["training_share"] = 2
    elif change == "not-list":
        data["learners"] = {}
    elif change == "groups":
        learner["groups"] = [""]
    elif change == "optional-kind":
        data["courses"][1]["optional"] = "yes"
    elif change == "optional-in-needs":
        data["courses"][1]["optional"] = True
        learner["needs"] = ["mca", "care"]
    elif change == "wants-core":
        learner["wants"] = ["care"]
    elif change == "wants-twice":
        data["courses"][1]["optional"] = True
        learner["wants"] = ["care", "care"]
    elif change == "avoid-unknown":
        learner["avoid"] = ["mca-9"]
    elif change == "avoid-twice":
        learner["avoid"] = ["care-1", "care-1"]
    elif change == "avoid-fixed":
        learner["fixed"] = {"mca": "mca-1"}
        learner["avoid"] = ["mca-1"]
    return data


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        ("format", "format", "expected"),
        ("unknown-need", "learners[0].needs[1]", 'unknown course "mcaa"'),
        ("duplicate-need", "learners[0].needs[1]", "listed twice"),
        ("duplicate-session", "sessions[1].id", 'duplicate session id "mca-1"'),
        ("duplicate-learner", "learners[1].id", "duplicate learner"),
        ("duplicate-course", "courses[1].id", "duplicate course"),
        ("end-before-start", "learners[0].end", "before start"),
        ("session-end", "sessions[0].end", "after start"),
        ("fte-zero", "learners[0].fte", "more than 0"),
        ("fte-big", "learners[0].fte", "at most 1"),
        ("capacity", "sessions[0].capacity", "negative"),
        ("capacity-bool", "sessions[0].capacity", "whole number"),
        ("fixed-course", "learners[0].fixed.mca", 'is a date of "care"'),
        ("fixed-unknown", "learners[0].fixed.mca", 'unknown session "mca-9"'),
        ("bad-date", "learners[0].start", "not a real date"),
        ("date-format", "learners[0].start", "YYYY-MM-DD"),
        ("naive-time", "sessions[0].start", "offset"),
        ("session-course", "sessions[0].course", 'unknown course "nope"'),
        ("pref-session", "learners[0].preferences.mca[0]", "is a date of"),
        ("pref-course", "learners[0].preferences.mcx", "unknown course"),
        ("unknown-field", "learners[0].prefrences", "unknown field"),
        ("days", "courses[0].days", "more than 0"),
        ("unavailable", "learners[0].unavailable[0].to", "before from"),
        ("window", "rules.window_weeks", "at least 1"),
        ("share", "rules.training_share", "between 0 and 1"),
        ("not-list", "learners", "expected a list"),
        ("groups", "learners[0].groups[0]", "non-empty string"),
        ("optional-kind", "courses[1].optional", "true or false"),
        ("optional-in-needs", "learners[0].needs[1]", "list it in wants"),
        ("wants-core", "learners[0].wants[0]", "not optional"),
        ("wants-twice", "learners[0].wants[1]", "listed twice"),
        ("avoid-unknown", "learners[0].avoid[0]", 'unknown session "mca-9"'),
        ("avoid-twice", "learners[0].avoid[1]", "listed twice"),
        ("avoid-fixed", "learners[0].avoid[0]", "also a fixed place"),
    ],
)
def test_bad_input_names_path(change: str, path: str, message: str) -> None:
    with pytest.raises(ProblemError) as caught:
        load_problem(_broken(change))
    assert caught.value.path == path
    assert message in caught.value.message


def test_not_an_object() -> None:
    with pytest.raises(ProblemError, match="expected an object"):
        load_problem([])


def test_requests_order_preferences_then_start(build: Any) -> None:
    problem = build.problem(
        {"c": 0.5},
        [
            build.session("late", "c", day="2027-03-01"),
            build.session("early", "c", day="2027-01-04"),
            build.session("mid", "c", day="2027-02-01"),
        ],
        [build.learner("a", ["c"], preferences={"c": ["mid"]})],
    )
    (req,) = problem.requests
    assert [problem.sessions[i].id for i in req.sessions] == ["mid", "early", "late"]
    assert req.costs == (0, 1, 1)


def test_fixed_course_outside_needs_is_a_request(build: Any) -> None:
    problem = build.problem(
        {"a": 0.5, "b": 0.5},
        [build.session("a1", "a"), build.session("b1", "b", day="2027-02-02")],
        [build.learner("n", ["a"], fixed={"b": "b1"})],
    )
    assert problem.learners[0].requests == ("a", "b")


def test_result_json_round_trip() -> None:
    allocation = Allocation(
        status="optimal",
        placed=1,
        unplaced=1,
        preference_cost=2,
        bound_placed=1,
        bound_preference_cost=2,
        seconds=0.5,
        assignments=(Assignment("n1", "mca", "mca-1"),),
        unplaced_requests=(UnplacedRequest("n1", "care", "capacity: every eligible date is full"),),
        warnings=("fixed: something",),
    )
    data = allocation_to_json(allocation)
    assert data["format"] == "asye-allocation-result/1"
    assert data["bound"] == {"placed": 1, "preference_cost": 2}
    assert allocation_from_json(data) == allocation
