"""The booking rules, each with the message a person sees."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from sqlalchemy import select

from booking.bookings import (
    accept_offer,
    book_place,
    cancel_booking,
    cancel_session,
    expire_offers,
    join_waitlist,
    leave_waitlist,
    move_booking,
    training_plan,
    working_days_between,
)
from booking.errors import (
    AlreadyBooked,
    BookingError,
    OutsideAsyeYear,
    ProtectedTimeExceeded,
    SessionFull,
    SessionNotBookable,
)
from booking.extensions import db
from booking.models import (
    BookingStatus,
    CourseLength,
    OutboxMessage,
    SessionStatus,
    WaitStatus,
)

from ..conftest import FUTURE, london

MONDAY = FUTURE - timedelta(days=FUTURE.weekday())


def _kinds() -> list[str]:
    return [m.kind for m in db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))]


def test_booking_takes_a_place_and_queues_confirmation(make_session, make_nqsw):
    session, nqsw = make_session(capacity=2), make_nqsw()
    booking = book_place(nqsw, session)
    assert booking.status is BookingStatus.BOOKED
    assert session.taken == 1 and session.places_left == 1
    [message] = db.session.scalars(select(OutboxMessage)).all()
    assert message.kind == "booking_confirmed" and message.recipients == nqsw.email
    assert session.course.title in message.text_body and "<p>" in message.html_body


def test_full_session_is_refused(make_session, make_nqsw):
    session = make_session(capacity=1)
    book_place(make_nqsw(), session)
    with pytest.raises(SessionFull, match=r"is full\. You can join the waiting list"):
        book_place(make_nqsw(), session)
    assert session.taken == 1


def test_one_booking_per_course(make_course, make_session, make_nqsw):
    course = make_course()
    first, second = (
        make_session(course, day=MONDAY),
        make_session(course, day=MONDAY + timedelta(weeks=20)),
    )
    nqsw = make_nqsw()
    book_place(nqsw, first)
    with pytest.raises(AlreadyBooked, match="Move that booking instead"):
        book_place(nqsw, second)
    with pytest.raises(AlreadyBooked, match="already booked on this session"):
        book_place(nqsw, first)


def test_session_outside_asye_year_is_refused(make_session, make_nqsw):
    session = make_session(day=MONDAY)
    late_starter = make_nqsw(asye_start=MONDAY + timedelta(days=1))
    with pytest.raises(OutsideAsyeYear, match="outside the ASYE year"):
        book_place(late_starter, session)
    finished = make_nqsw(asye_start=MONDAY - timedelta(days=366))
    with pytest.raises(OutsideAsyeYear):
        book_place(finished, session)


def test_part_time_year_is_extended_pro_rata(make_nqsw):
    full = make_nqsw(asye_start=date(2026, 9, 1), fte=1.0)
    half = make_nqsw(asye_start=date(2026, 9, 1), fte=0.5)
    assert full.asye_end == date(2027, 8, 31)
    assert half.asye_end == date(2028, 8, 30)  # 730 days from the start


def test_cancelled_or_past_sessions_cannot_be_booked(make_session, make_nqsw):
    cancelled = make_session(status=SessionStatus.CANCELLED)
    with pytest.raises(SessionNotBookable, match="cancelled"):
        book_place(make_nqsw(), cancelled)
    past = make_session(day=date.today() - timedelta(days=3))
    with pytest.raises(SessionNotBookable, match="already started"):
        book_place(make_nqsw(asye_start=date.today() - timedelta(days=30)), past)


def test_protected_time_names_the_sessions_in_the_window(make_course, make_session, make_nqsw):
    # Full time: 0.5 days/week x 4 weeks = 2 days in any 4 weeks.
    days = [MONDAY + timedelta(days=d) for d in (1, 8, 15)]
    sessions = [
        make_session(make_course(title=f"Course {i}", length=CourseLength.FULL_DAY), day=d)
        for i, d in enumerate(days)
    ]
    nqsw = make_nqsw()
    book_place(nqsw, sessions[0])
    book_place(nqsw, sessions[1])
    with pytest.raises(ProtectedTimeExceeded) as refused:
        book_place(nqsw, sessions[2])
    message = refused.value.message
    assert "3 days of training" in message and "allows 2 days at 1 FTE" in message
    assert "Course 0 on" in message and "Course 1 on" in message
    assert sessions[2].taken == 0


def test_protected_time_is_pro_rata_for_part_time(make_course, make_session, make_nqsw):
    # 0.2 FTE: 0.5 x 4 x 0.2 = 0.4 days in any 4 weeks, so even a half day is too much.
    half_day = make_session(make_course(length=CourseLength.HALF_DAY), day=MONDAY)
    with pytest.raises(ProtectedTimeExceeded, match=r"allows 0\.4 days at 0\.2 FTE"):
        book_place(make_nqsw(fte=0.2), half_day)
    # 0.6 FTE: 1.2 days: a full day and nothing else within the window...
    nqsw = make_nqsw(fte=0.6)
    full = make_session(make_course(length=CourseLength.FULL_DAY), day=MONDAY)
    book_place(nqsw, full)
    near = make_session(make_course(length=CourseLength.HALF_DAY), day=MONDAY + timedelta(weeks=3))
    with pytest.raises(ProtectedTimeExceeded):
        book_place(nqsw, near)
    # ...but a half day four weeks later starts a fresh window.
    far = make_session(make_course(length=CourseLength.HALF_DAY), day=MONDAY + timedelta(weeks=4))
    assert book_place(nqsw, far).status is BookingStatus.BOOKED


def test_windows_follow_programme_settings(programme, make_course, make_session, make_nqsw):
    programme.protected_days_per_week = 1.0
    programme.window_weeks = 2
    db.session.commit()
    nqsw = make_nqsw()
    for offset in (0, 1):
        book_place(nqsw, make_session(make_course(), day=MONDAY + timedelta(days=offset)))
    with pytest.raises(ProtectedTimeExceeded, match="in the 2 weeks from"):
        book_place(nqsw, make_session(make_course(), day=MONDAY + timedelta(days=9)))


def test_working_days_skip_weekends():
    friday = date(2027, 1, 8)
    assert working_days_between(friday, friday + timedelta(days=3)) == 1  # to Monday
    assert working_days_between(friday, friday + timedelta(days=7)) == 5
    assert working_days_between(friday, friday) == 0


def test_cancellation_inside_cut_off_is_recorded_as_late(make_session, make_nqsw):
    session = make_session(day=MONDAY + timedelta(days=2))  # a Wednesday
    nqsw = make_nqsw()
    booking = book_place(nqsw, session)
    # Three working days before: inside the default five-day cut-off.
    now = london(MONDAY - timedelta(days=1), time(12))
    cancel_booking(booking, now=now)
    assert booking.status is BookingStatus.CANCELLED and booking.late_cancellation
    assert session.taken == 0
    early = book_place(nqsw, session)
    cancel_booking(early, now=london(MONDAY - timedelta(days=14), time(12)))
    assert not early.late_cancellation


def test_move_to_the_other_date_frees_the_first(make_course, make_session, make_nqsw):
    course = make_course()
    first = make_session(course, day=MONDAY)
    second = make_session(course, day=MONDAY + timedelta(weeks=20), capacity=1)
    nqsw = make_nqsw()
    booking = book_place(nqsw, first)
    moved = move_booking(booking, second)
    assert booking.status is BookingStatus.MOVED and booking.moved_to_id == moved.id
    assert (first.taken, second.taken) == (0, 1)
    assert _kinds()[-1] == "booking_moved"
    with pytest.raises(SessionFull):
        move_booking(book_place(make_nqsw(), first), second)


def test_move_refuses_another_course(make_session, make_nqsw):
    nqsw = make_nqsw()
    booking = book_place(nqsw, make_session())
    with pytest.raises(SessionNotBookable, match="same course"):
        move_booking(booking, make_session())


def test_waiting_list_offer_holds_the_place_then_passes_on(programme, make_session, make_nqsw):
    session = make_session(capacity=1)
    holder, first, second = make_nqsw(), make_nqsw(name="First"), make_nqsw(name="Second")
    booking = book_place(holder, session)
    with pytest.raises(BookingError, match="still has places"):
        join_waitlist(first, make_session(capacity=5))
    entry1 = join_waitlist(first, session)
    entry2 = join_waitlist(second, session)

    now = datetime.now(UTC)
    cancel_booking(booking, now=now)
    assert entry1.status is WaitStatus.OFFERED
    assert entry1.offer_expires_at == now + timedelta(hours=48)
    assert session.taken == 1  # held for the offer, not given to a passer-by
    with pytest.raises(SessionFull):
        book_place(make_nqsw(), session)

    assert expire_offers(now + timedelta(hours=47)) == 0
    assert expire_offers(now + timedelta(hours=48, seconds=1)) == 1
    assert entry1.status is WaitStatus.EXPIRED
    assert entry2.status is WaitStatus.OFFERED
    assert _kinds().count("waitlist_offer") == 2 and "waitlist_expired" in _kinds()

    accepted = accept_offer(entry2, now=now + timedelta(hours=49))
    assert accepted.nqsw_id == second.id and session.taken == 1
    assert entry2.status is WaitStatus.ACCEPTED


def test_declined_offer_goes_to_the_next_person(make_session, make_nqsw):
    session = make_session(capacity=1)
    booking = book_place(make_nqsw(), session)
    first, second = join_waitlist(make_nqsw(), session), join_waitlist(make_nqsw(), session)
    cancel_booking(booking)
    leave_waitlist(first)
    assert second.status is WaitStatus.OFFERED and session.taken == 1


def test_freed_place_with_nobody_waiting_is_released(make_session, make_nqsw):
    session = make_session(capacity=1)
    cancel_booking(book_place(make_nqsw(), session))
    assert session.taken == 0
    assert book_place(make_nqsw(), session).status is BookingStatus.BOOKED


def test_accepting_an_offer_moves_an_existing_booking(make_course, make_session, make_nqsw):
    course = make_course()
    wanted = make_session(course, day=MONDAY, capacity=1)
    other = make_session(course, day=MONDAY + timedelta(weeks=20))
    holder, mover = make_nqsw(), make_nqsw()
    held = book_place(holder, wanted)
    fallback = book_place(mover, other)
    entry = join_waitlist(mover, wanted)
    cancel_booking(held)
    new = accept_offer(entry)
    assert new.session_id == wanted.id and fallback.status is BookingStatus.MOVED
    assert (wanted.taken, other.taken) == (1, 0)


def test_host_cancellation_tells_bookings_and_waiting_list(make_course, make_session, make_nqsw):
    course = make_course()
    session = make_session(course, capacity=1)
    make_session(course, day=MONDAY + timedelta(weeks=20))
    booked = book_place(make_nqsw(), session)
    waiting = join_waitlist(make_nqsw(), session)
    told = cancel_session(session, reason="Facilitator unwell")
    assert told == 2
    assert booked.status is BookingStatus.CANCELLED and not booked.late_cancellation
    assert waiting.status is WaitStatus.CLOSED
    assert session.sequence == 1 and session.taken == 0
    notices = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "session_cancelled")
    ).all()
    assert len(notices) == 2 and all("Facilitator unwell" in m.text_body for m in notices)
    assert all("Other dates for this course" in m.text_body for m in notices)


def test_training_plan_shows_what_is_left_to_book(programme, make_course, make_session, make_nqsw):
    booked_course, open_course = make_course(title="Booked"), make_course(title="Open")
    optional = make_course(title="Workshop", optional=True, length=CourseLength.HALF_DAY)
    session = make_session(booked_course, day=MONDAY)
    make_session(open_course, day=MONDAY + timedelta(weeks=6))
    make_session(optional, day=MONDAY + timedelta(weeks=8))
    nqsw = make_nqsw()
    book_place(nqsw, session)
    plan = training_plan(nqsw)
    assert [c.course.title for c in plan.to_book] == ["Open"]
    assert plan.days_booked == 1.0 and plan.cap_days == 2.0


def test_refusals_name_the_nqsw_when_someone_else_books(
    make_course, make_session, make_nqsw, coordinator
):
    nqsw = make_nqsw(name="Amara Okafor")
    first = make_session(make_course(), day=MONDAY)
    book_place(nqsw, first, by=coordinator)
    with pytest.raises(AlreadyBooked, match=r"^Amara Okafor is already booked on this session"):
        book_place(nqsw, first, by=coordinator)
    with pytest.raises(AlreadyBooked, match=r"^You are already booked"):
        book_place(nqsw, first, by=nqsw.user)
    book_place(nqsw, make_session(make_course(), day=MONDAY + timedelta(days=1)), by=coordinator)
    with pytest.raises(ProtectedTimeExceeded, match="their protected time allows 2 days"):
        book_place(
            nqsw, make_session(make_course(), day=MONDAY + timedelta(days=2)), by=coordinator
        )
