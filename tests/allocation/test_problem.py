"""Building the scheduler's problem from the database."""

from __future__ import annotations

from datetime import timedelta

from booking.allocation import build_problem, set_workshop_wanted
from booking.bookings import book_place, join_waitlist
from booking.extensions import db
from booking.models import CourseLength, utcnow
from scheduler.problem import load_problem
from scheduler.solver import solve
from tests.conftest import FUTURE


def _learner(data, nqsw):
    return next(lr for lr in data["learners"] if lr["id"] == f"n{nqsw.id}")


def _session(data, session):
    return next(s for s in data["sessions"] if s["id"] == f"s{session.id}")


def test_problem_holds_needs_fixed_places_and_asye_year(scene, make_nqsw, make_course):
    s = scene(people=2)
    a, b = s.nqsws
    b.fte = 0.5
    db.session.commit()
    book_place(a, s.early)
    workshop = make_course(code="WS", title="Reflective writing", optional=True)

    data, _ = build_problem(s.programme)
    problem = load_problem(data)  # the scheduler accepts what we build

    assert {c.id for c in problem.courses} == {"MCA", "WS"}
    first, second = _learner(data, a), _learner(data, b)
    assert first["fixed"] == {"MCA": f"s{s.early.id}"}
    assert first["needs"] == []
    assert second["needs"] == ["MCA"]  # the optional workshop only when asked for
    assert second["start"] == b.asye_start.isoformat()
    assert second["end"] == b.asye_end.isoformat()
    assert second["fte"] == 0.5
    assert second["employer"] == f"e{b.employer_id}"
    # Include optional workshops: only for those who asked (b has not).
    assert "wants" not in _learner(build_problem(s.programme, include_optional=True)[0], b)
    set_workshop_wanted(b, workshop, True, by=None)
    with_workshop = build_problem(s.programme, include_optional=True)[0]
    assert _learner(with_workshop, b)["needs"] == ["MCA"]
    assert _learner(with_workshop, b)["wants"] == [workshop.code]
    assert "wants" not in _learner(with_workshop, a)
    assert {"id": "WS", "title": "Reflective writing", "days": 1.0, "optional": True} in (
        with_workshop["courses"]
    )
    assert "wants" not in _learner(build_problem(s.programme)[0], b)
    assert data["rules"] == {
        "protected_days_per_week": 0.5,
        "window_weeks": 4,
        "training_share": 1.0,
    }


def test_no_personal_data_in_the_problem(scene):
    s = scene(people=1)
    text = str(build_problem(s.programme)[0])
    nqsw = s.nqsws[0]
    assert nqsw.name not in text
    assert nqsw.email not in text
    assert nqsw.swe_number not in text


def test_withdrawn_nqsws_are_left_out_and_their_places_shrink_capacity(scene):
    s = scene(people=2, capacity=5)
    leaver, stayer = s.nqsws
    book_place(leaver, s.early)
    book_place(stayer, s.early)
    leaver.withdrawn_at = utcnow()
    db.session.commit()

    data, _ = build_problem(s.programme)

    assert [lr["id"] for lr in data["learners"]] == [f"n{stayer.id}"]
    # Five places, one held by someone outside the problem; the stayer's own place
    # is a fixed placement the solver counts itself.
    assert _session(data, s.early)["capacity"] == 4
    assert _session(data, s.late)["capacity"] == 5


def test_past_and_cancelled_sessions_are_not_offered(scene, make_session):
    s = scene(people=1)
    past = make_session(s.course, day=FUTURE - timedelta(days=100))
    s.late.status = s.late.status.CANCELLED
    db.session.commit()

    data, _ = build_problem(s.programme)

    ids = {x["id"] for x in data["sessions"]}
    assert f"s{s.early.id}" in ids
    assert f"s{past.id}" not in ids
    assert f"s{s.late.id}" not in ids


def test_a_place_already_attended_is_fixed_for_protected_time(scene, make_session):
    s = scene(people=1)
    nqsw = s.nqsws[0]
    past = make_session(s.course, day=FUTURE + timedelta(days=7))
    book_place(nqsw, past)

    data, _ = build_problem(s.programme, now=past.ends_at + timedelta(hours=1))

    # Nothing left to place, but the day still counts in any window reaching back to it;
    # the run session takes nobody new (its capacity is the places already held).
    assert _learner(data, nqsw)["needs"] == []
    assert _learner(data, nqsw)["fixed"] == {"MCA": f"s{past.id}"}
    (session,) = [x for x in data["sessions"] if x["id"] == f"s{past.id}"]
    assert session["capacity"] == 1


def test_allow_moves_turns_places_into_first_preferences(scene):
    s = scene(people=1)
    nqsw = s.nqsws[0]
    book_place(nqsw, s.late)

    learner = _learner(build_problem(s.programme, allow_moves=True)[0], nqsw)

    assert learner["fixed"] == {}
    assert learner["needs"] == ["MCA"]
    assert learner["preferences"] == {"MCA": [f"s{s.late.id}"]}


def test_regional_sessions_stay_open_to_everyone_as_in_the_booking_service(scene):
    s = scene(people=1)
    s.early.region = "North"
    s.late.capacity = 0
    db.session.commit()

    data, _ = build_problem(s.programme)
    result = solve(load_problem(data), time_limit=1, workers=1)

    assert _session(data, s.early)["group"] is None
    assert [(a.learner, a.session) for a in result.assignments] == [
        (f"n{s.nqsws[0].id}", f"s{s.early.id}")
    ]


def test_fingerprint_changes_when_bookings_change(scene):
    s = scene(people=2)
    before = build_problem(s.programme)[1]
    assert build_problem(s.programme)[1] == before  # stable for the same state

    book_place(s.nqsws[0], s.early)

    assert build_problem(s.programme)[1] != before


def test_fingerprint_depends_on_the_options(scene, make_course):
    s = scene(people=1)
    workshop = make_course(code="WS", optional=True, length=CourseLength.HALF_DAY)
    set_workshop_wanted(s.nqsws[0], workshop, True, by=None)
    assert build_problem(s.programme)[1] != build_problem(s.programme, include_optional=True)[1]


def test_waiting_lists_become_preferences(scene, make_nqsw):
    s = scene(people=1, capacity=1)
    book_place(s.nqsws[0], s.early)  # the early date is now full
    waiter = make_nqsw(name="Wendy Waiting")
    join_waitlist(waiter, s.early)

    learner = _learner(build_problem(s.programme)[0], waiter)

    assert learner["needs"] == ["MCA"]
    assert learner["preferences"] == {"MCA": [f"s{s.early.id}"]}
