"""Running, reviewing and committing proposals through the booking service."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from booking.allocation import (
    AllocationError,
    Progress,
    StaleProposal,
    _ProgressWriter,
    commit_proposal,
    create_proposal,
    review_proposal,
    run_progress,
    run_proposal,
)
from booking.bookings import book_place
from booking.extensions import db
from booking.models import (
    AllocationProposal,
    Booking,
    BookingSource,
    BookingStatus,
    ProposalStatus,
    User,
)
from tests.allocation.conftest import live_bookings, outbox_count
from tests.conftest import FUTURE


def _solved(programme, by=None, **options):
    proposal = create_proposal(programme, by=by, time_limit=2, **options)
    return run_proposal(proposal, workers=1)


def test_solving_writes_no_bookings(scene, coordinator):
    s = scene(people=3, capacity=2)

    proposal = _solved(s.programme, coordinator)

    assert proposal.status is ProposalStatus.READY
    assert live_bookings() == []
    assert outbox_count("booking_confirmed") == 0
    result = json.loads(proposal.result_json)
    assert result["placed"] == 3
    assert result["status"] == "optimal"
    assert json.loads(proposal.greedy_json)["placed"] == 3
    assert proposal.progress_phase == "done"


def test_review_lists_new_places_and_fill(scene):
    s = scene(people=3, capacity=2)
    review = review_proposal(_solved(s.programme))

    assert len(review.new) == 3
    assert {p.nqsw.id for p in review.new} == {n.id for n in s.nqsws}
    assert review.moves == []
    assert review.unplaced == []
    fill = {f.session.id: f for f in review.fill}
    assert fill[s.early.id].before == 0
    assert fill[s.early.id].after + fill[s.late.id].after == 3
    assert review.baseline is not None and review.baseline.placed == 3
    assert not review.stale


def test_unplaced_people_come_with_a_reason(scene, make_nqsw):
    s = scene(people=3, capacity=1)  # two places for three people

    review = review_proposal(_solved(s.programme))

    assert len(review.unplaced) == 1
    assert review.unplaced[0].code == "capacity"
    assert "full" in review.unplaced[0].reason


def test_commit_books_through_the_service_and_queues_mail(scene, coordinator):
    s = scene(people=3, capacity=2)
    proposal = _solved(s.programme, coordinator)

    report = commit_proposal(proposal, coordinator)

    assert (report.booked, report.moved, report.failed) == (3, 0, [])
    made = live_bookings()
    assert {b.nqsw_id for b in made} == {n.id for n in s.nqsws}
    assert all(b.source is BookingSource.ALLOCATION for b in made)
    assert all(b.booked_by_id == coordinator.id for b in made)
    assert outbox_count("booking_confirmed") == 3
    db.session.refresh(s.early)
    db.session.refresh(s.late)
    assert s.early.taken + s.late.taken == 3
    proposal = db.session.get(AllocationProposal, proposal.id)
    assert proposal.status is ProposalStatus.COMMITTED
    assert proposal.committed_by_id == coordinator.id


def test_second_commit_does_nothing(scene, coordinator):
    s = scene(people=2)
    proposal = _solved(s.programme)
    commit_proposal(proposal, coordinator)

    again = commit_proposal(proposal, coordinator)

    assert again.already_committed
    assert again.booked == 2  # the first commit's report, not new work
    assert len(live_bookings()) == 2
    assert outbox_count("booking_confirmed") == 2


def test_stale_proposal_is_refused(scene, coordinator):
    s = scene(people=2)
    proposal = _solved(s.programme)
    book_place(s.nqsws[0], s.late)  # someone books after the run

    with pytest.raises(StaleProposal, match="Bookings have changed"):
        commit_proposal(proposal, coordinator)

    assert len(live_bookings()) == 1
    assert db.session.get(AllocationProposal, proposal.id).status is ProposalStatus.READY
    assert review_proposal(proposal).stale


def test_existing_bookings_stay_fixed_by_default(scene, make_nqsw, coordinator):
    s = scene(people=1, capacity=1)
    holder = s.nqsws[0]
    book_place(holder, s.late)
    # Starts after the early date, so only the late date, which is full, is in their year.
    latecomer = make_nqsw(asye_start=FUTURE + timedelta(days=7))

    review = review_proposal(_solved(s.programme))

    assert review.kept == 1
    assert review.moves == []
    assert [(u.nqsw.id, u.code) for u in review.unplaced] == [(latecomer.id, "capacity")]


def test_allow_moves_moves_through_move_booking(scene, make_nqsw, coordinator):
    s = scene(people=1, capacity=1)
    holder = s.nqsws[0]
    held = book_place(holder, s.late)
    latecomer = make_nqsw(asye_start=FUTURE + timedelta(days=7))
    proposal = _solved(s.programme, allow_moves=True)
    review = review_proposal(proposal)
    assert [(p.nqsw.id, p.current.id, p.session.id) for p in review.moves] == [
        (holder.id, s.late.id, s.early.id)
    ]
    assert [(p.nqsw.id, p.session.id) for p in review.new] == [(latecomer.id, s.late.id)]

    report = commit_proposal(proposal, coordinator)

    assert (report.booked, report.moved, report.failed) == (1, 1, [])
    db.session.refresh(held)
    assert held.status is BookingStatus.MOVED
    moved = db.session.get(Booking, held.moved_to_id)
    assert (moved.session_id, moved.source) == (s.early.id, BookingSource.ALLOCATION)
    assert {(b.nqsw_id, b.session_id) for b in live_bookings()} == {
        (holder.id, s.early.id),
        (latecomer.id, s.late.id),
    }
    assert outbox_count("booking_moved") == 1
    assert outbox_count("booking_confirmed") == 2  # the holder's own booking, then the latecomer


def test_a_refused_place_is_reported_not_fatal(scene, coordinator):
    s = scene(people=2, capacity=2)
    proposal = _solved(s.programme)
    # Withdrawing changes the problem too, so mark the run fresh again to reach the
    # booking service's own refusal: commit must report it and carry on.
    withdrawn = s.nqsws[0]
    withdrawn.withdrawn_at = withdrawn.enrolled_at
    db.session.commit()
    proposal.fingerprint = _fingerprint_now(proposal)
    db.session.commit()

    report = commit_proposal(proposal, coordinator)

    assert report.booked == 1
    assert [f["learner"] for f in report.failed] == [f"n{withdrawn.id}"]
    assert "withdrawn" in report.failed[0]["reason"]
    review = review_proposal(proposal)
    assert [n.id for n, _, _ in review.refused] == [withdrawn.id]


def _fingerprint_now(proposal):
    from booking.allocation import build_problem

    return build_problem(
        proposal.programme,
        allow_moves=proposal.allow_moves,
        include_optional=proposal.include_optional,
    )[1]


def test_unfinished_proposal_cannot_be_committed(scene, coordinator):
    s = scene(people=1)
    proposal = create_proposal(s.programme, by=None, time_limit=1)

    with pytest.raises(AllocationError, match="finished"):
        commit_proposal(proposal, coordinator)


def test_nothing_to_place_is_refused(scene):
    s = scene(people=1)
    book_place(s.nqsws[0], s.early)

    with pytest.raises(AllocationError, match="Nobody"):
        create_proposal(s.programme, by=None, time_limit=1)


def test_time_limit_is_checked(scene):
    s = scene(people=1)
    with pytest.raises(AllocationError, match="between 1 and 600"):
        create_proposal(s.programme, by=None, time_limit=0)


def test_two_commits_at_once_book_once(app, scene, coordinator):
    s = scene(people=4, capacity=2)
    proposal_id = _solved(s.programme).id
    user_id = coordinator.id
    db.session.remove()
    barrier = threading.Barrier(2)
    outcomes: list[str] = []
    lock = threading.Lock()

    def commit_once() -> None:
        with app.app_context():
            # Load after the barrier: on SQLite a read holds the write lock till commit.
            barrier.wait()
            try:
                proposal = db.session.get(AllocationProposal, proposal_id)
                by = db.session.get(User, user_id)
                report = commit_proposal(proposal, by)
                result = "already" if report.already_committed else f"booked {report.booked}"
            except AllocationError as error:
                result = type(error).__name__
            finally:
                db.session.remove()
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=commit_once) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads)

    assert "booked 4" in outcomes
    assert len(outcomes) == 2
    assert outcomes.count("booked 4") == 1
    count = db.session.scalar(
        select(func.count()).select_from(Booking).where(Booking.status == BookingStatus.BOOKED)
    )
    assert count == 4
    assert outbox_count("booking_confirmed") == 4


def test_progress_is_written_to_the_proposal_row(scene):
    s = scene(people=2)
    proposal = create_proposal(s.programme, by=None, time_limit=1)
    writer = _ProgressWriter(db.engine, proposal.id, None)
    db.session.commit()  # the writer has its own connection; on SQLite it needs the lock

    figures = {"greedy_placed": 1, "greedy_cost": 3, "time_limit": 1.0}
    writer(Progress("placements", 2.0, 2.0, 0.3, 2, 2, 1, 1, **figures))
    writer(Progress("placements", 1.0, 2.0, 0.4, 1, 2, 0, 0, **figures))  # too soon: kept

    db.session.refresh(proposal)
    assert (proposal.progress_phase, proposal.progress_objective) == ("placements", 2.0)
    progress = run_progress(proposal)
    assert (progress.status, progress.placed, progress.placed_bound) == ("running", 2, 2)
    assert (progress.preference_cost, progress.cost_bound) == (1, 1)
    assert (progress.greedy_placed, progress.greedy_cost) == (1, 3)
    assert progress.details == (
        "2 course places filled: 1 place more than first come, first served (1);"
        " no allocation can place more.",
        "Preference cost 1 (one point for each step down someone's list of dates):"
        " 2 lower than first come, first served (3), and no allocation with as many"
        " places does better.",
    )
    assert 0 <= progress.seconds_left <= 1


def test_a_run_not_heard_from_is_reported_failed(scene):
    s = scene(people=2)
    proposal = create_proposal(s.programme, by=None, time_limit=1)
    proposal.created_at -= timedelta(hours=1)
    db.session.commit()

    progress = run_progress(proposal)

    assert progress.status == "failed"
    assert "Run again" in progress.message
