"""People's choices reach the solver: wanted workshops, dates turned down, places held."""

from __future__ import annotations

import json
from datetime import date, timedelta

from sqlalchemy import func, select

from booking.allocation import (
    build_problem,
    clear_avoided,
    commit_proposal,
    create_proposal,
    review_proposal,
    run_proposal,
    set_workshop_wanted,
)
from booking.audit.models import AuditEvent
from booking.bookings import book_place, cancel_booking, join_waitlist, leave_waitlist
from booking.extensions import db
from booking.models import CourseLength, CourseWish, ProposalStatus
from scheduler.problem import load_problem
from tests.allocation.conftest import live_bookings
from tests.conftest import sign_in


def _learner(data, nqsw):
    return next(lr for lr in data["learners"] if lr["id"] == f"n{nqsw.id}")


def _wishes() -> int:
    return db.session.scalar(select(func.count()).select_from(CourseWish))


def test_nqsw_asks_for_a_workshop_on_my_training(client, scene, make_course):
    s = scene(people=2)
    me, other = s.nqsws
    workshop = make_course(code="WS", title="Reflective writing", optional=True)
    sign_in(client, me.user)

    page = client.get("/my/training")
    assert "I want Reflective writing" in page.text
    url = f"/my/courses/{workshop.id}/want"
    # A double click asks once.
    assert client.post(url).status_code == 302
    assert client.post(url).status_code == 302
    assert _wishes() == 1
    assert "I no longer want Reflective writing" in client.get("/my/training").text

    data, _ = build_problem(s.programme, include_optional=True)
    assert _learner(data, me)["wants"] == ["WS"]
    assert "wants" not in _learner(data, other)
    assert "wants" not in _learner(build_problem(s.programme)[0], me)  # workshops not included

    client.post(f"/my/courses/{workshop.id}/unwant")
    assert _wishes() == 0
    actions = db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == ["workshop.want", "workshop.unwant"]


def test_only_optional_workshops_of_the_programme_can_be_asked_for(client, scene):
    s = scene(people=1)
    sign_in(client, s.nqsws[0].user)
    response = client.post(f"/my/courses/{s.course.id}/want", follow_redirects=True)
    assert "Only an optional workshop" in response.text
    assert _wishes() == 0


def test_coordinator_marks_a_workshop_wanted_for_an_nqsw(client, scene, make_course, coordinator):
    s = scene(people=1)
    nqsw = s.nqsws[0]
    workshop = make_course(code="WS", title="Reflective writing", optional=True)
    sign_in(client, coordinator)

    page = client.get(f"/coordinator/nqsws/{nqsw.id}")
    assert "Mark as wanted: Reflective writing" in page.text
    client.post(f"/coordinator/nqsws/{nqsw.id}/workshops/{workshop.id}/want")
    assert _wishes() == 1
    assert (
        "No longer wanted: Reflective writing" in client.get(f"/coordinator/nqsws/{nqsw.id}").text
    )


def test_include_optional_places_only_those_who_asked(scene, make_course, make_session):
    s = scene(people=3)
    workshop = make_course(code="WS", optional=True, length=CourseLength.HALF_DAY)
    make_session(workshop, day=s.early.starts_at.date() + timedelta(days=14))
    set_workshop_wanted(s.nqsws[1], workshop, True, by=None)

    proposal = run_proposal(
        create_proposal(s.programme, by=None, time_limit=2, include_optional=True), workers=1
    )

    result = json.loads(proposal.result_json)
    on_workshop = [a["learner"] for a in result["assignments"] if a["course"] == "WS"]
    assert on_workshop == [f"n{s.nqsws[1].id}"]


def test_a_cancelled_date_is_not_offered_again_until_cleared(scene, coordinator, client):
    s = scene(people=1, capacity=5)
    nqsw = s.nqsws[0]
    cancel_booking(book_place(nqsw, s.early))

    data, _ = build_problem(s.programme)
    assert _learner(data, nqsw)["avoid"] == [f"s{s.early.id}"]
    proposal = run_proposal(create_proposal(s.programme, by=None, time_limit=2), workers=1)
    result = json.loads(proposal.result_json)
    assert [(a["learner"], a["session"]) for a in result["assignments"]] == [
        (f"n{nqsw.id}", f"s{s.late.id}")
    ]

    sign_in(client, coordinator)
    page = client.get(f"/coordinator/nqsws/{nqsw.id}")
    assert "Dates allocation will not offer" in page.text
    assert "Offer these dates again" in page.text
    client.post(f"/coordinator/nqsws/{nqsw.id}/avoided/clear")
    db.session.expire_all()
    assert "avoid" not in _learner(build_problem(s.programme)[0], nqsw)


def test_the_only_date_left_being_avoided_has_its_own_reason(scene):
    s = scene(people=1, capacity=5)
    nqsw = s.nqsws[0]
    cancel_booking(book_place(nqsw, s.early))
    cancel_booking(book_place(nqsw, s.late))

    review = review_proposal(run_proposal(create_proposal(s.programme, by=None, time_limit=2)))

    assert [(u.nqsw.id, u.code) for u in review.unplaced] == [(nqsw.id, "avoid")]


def test_a_waiting_list_left_is_a_date_turned_down(scene, make_nqsw):
    s = scene(people=1, capacity=1)
    book_place(s.nqsws[0], s.early)  # full
    waiter = make_nqsw(name="Wendy Waiter")
    leave_waitlist(join_waitlist(waiter, s.early))

    data, _ = build_problem(s.programme)
    assert _learner(data, waiter)["avoid"] == [f"s{s.early.id}"]
    assert "avoid" not in _learner(data, s.nqsws[0])
    clear_avoided(waiter, by=None)
    assert "avoid" not in _learner(build_problem(s.programme)[0], waiter)


def test_rebooking_a_cancelled_date_takes_it_off_the_list(scene):
    s = scene(people=1, capacity=5)
    nqsw = s.nqsws[0]
    cancel_booking(book_place(nqsw, s.early))
    book_place(nqsw, s.early)

    data, _ = build_problem(s.programme)
    load_problem(data)  # a fixed place is never also avoided
    assert "avoid" not in _learner(data, nqsw)


def test_a_proposal_made_mid_year_commits_whole(
    programme, make_course, make_session, make_nqsw, coordinator
):
    # Half-time NQSWs may train one day in any four weeks. Each attended a full day
    # three days ago; the Risk course runs in four days (the same four weeks) and in
    # two months. Counting the day already attended, only the later date fits: the
    # booking rule counts it at commit, so the solver must see it too.
    today = date.today()
    mca = make_course(code="MCA")
    risk = make_course(code="RISK", title="Risks, Benefits and Decision Making")
    ran = make_session(mca, day=today - timedelta(days=3), capacity=10)
    soon = make_session(risk, day=today + timedelta(days=4), capacity=10)
    later = make_session(risk, day=today + timedelta(days=60), capacity=10)
    people = [make_nqsw(fte=0.5, asye_start=today - timedelta(days=200)) for _ in range(4)]
    for person in people:
        book_place(person, ran, now=ran.starts_at - timedelta(days=7))
    fresh = make_nqsw(asye_start=today - timedelta(days=200))  # full time: room for both

    proposal = run_proposal(create_proposal(programme, by=None, time_limit=3), workers=1)
    assert proposal.status is ProposalStatus.READY
    data = json.loads(proposal.problem_json)
    assert _learner(data, people[0])["fixed"] == {"MCA": f"s{ran.id}"}
    review = review_proposal(proposal)
    assert review.kept == 4  # the attended days, kept as they are
    new = {(p.nqsw.id, p.session.id) for p in review.new}
    assert {(p.id, later.id) for p in people} <= new
    assert all(session != soon.id or nqsw == fresh.id for nqsw, session in new)
    assert ran.id not in {f.session.id for f in review.fill}

    report = commit_proposal(proposal, coordinator)

    assert report.failed == []
    assert report.booked == len(review.new) == 5
    assert len(live_bookings()) == 4 + 5
