"""Capacity under concurrent requests: many people race for the last places."""

from __future__ import annotations

import threading
from collections import Counter

from sqlalchemy import func, select

from booking.bookings import book_place, cancel_booking, join_waitlist
from booking.errors import AlreadyBooked, SessionFull
from booking.extensions import db
from booking.models import NQSW, Booking, BookingStatus, Session

RACERS = 16


def _race(app, jobs):
    """Run each job in its own thread and app context, all released at once."""
    barrier = threading.Barrier(len(jobs))
    outcomes: list[str] = []
    lock = threading.Lock()

    def run(job):
        with app.app_context():
            barrier.wait()
            try:
                job()
                result = "booked"
            except SessionFull:
                result = "full"
            except AlreadyBooked:
                result = "already"
            finally:
                db.session.remove()
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a booking thread hung"
    return Counter(outcomes)


def _booker(nqsw_id: int, session_id: int):
    def job():
        book_place(db.session.get(NQSW, nqsw_id), db.session.get(Session, session_id))

    return job


def test_many_simultaneous_bookings_never_overbook(app, make_session, make_nqsw):
    session = make_session(capacity=20, taken=17)  # three places left
    nqsw_ids = [make_nqsw().id for _ in range(RACERS)]
    session_id = session.id
    db.session.commit()
    db.session.remove()

    outcomes = _race(app, [_booker(n, session_id) for n in nqsw_ids])

    assert outcomes == Counter(booked=3, full=RACERS - 3)
    live = db.session.scalar(
        select(func.count())
        .select_from(Booking)
        .where(Booking.session_id == session_id, Booking.status == BookingStatus.BOOKED)
    )
    assert live == 3
    assert db.session.get(Session, session_id).taken == 20


def test_double_submit_by_one_person_books_once(app, make_session, make_nqsw):
    session = make_session(capacity=30)
    nqsw_id, session_id = make_nqsw().id, session.id
    db.session.remove()

    outcomes = _race(app, [_booker(nqsw_id, session_id) for _ in range(6)])

    assert outcomes == Counter(booked=1, already=5)
    assert db.session.get(Session, session_id).taken == 1


def test_cancel_and_book_race_keeps_the_count_right(app, make_session, make_nqsw):
    session = make_session(capacity=2)
    holders = [make_nqsw() for _ in range(2)]
    bookings = [book_place(n, session) for n in holders]
    newcomers = [make_nqsw().id for _ in range(4)]
    booking_ids, session_id = [b.id for b in bookings], session.id
    db.session.remove()

    def canceller(booking_id):
        def job():
            cancel_booking(db.session.get(Booking, booking_id))

        return job

    _race(app, [canceller(b) for b in booking_ids] + [_booker(n, session_id) for n in newcomers])

    live = db.session.scalar(
        select(func.count())
        .select_from(Booking)
        .where(Booking.session_id == session_id, Booking.status == BookingStatus.BOOKED)
    )
    assert live <= 2
    assert db.session.get(Session, session_id).taken == live


def test_waitlist_join_is_unique_under_a_race(app, make_session, make_nqsw):
    session = make_session(capacity=1, taken=1)
    nqsw_id, session_id = make_nqsw().id, session.id
    db.session.remove()
    errors: list[Exception] = []

    def joiner():
        try:
            join_waitlist(db.session.get(NQSW, nqsw_id), db.session.get(Session, session_id))
        except Exception as error:  # collected and checked below
            errors.append(error)

    _race(app, [joiner for _ in range(4)])
    from booking.models import WaitlistEntry

    assert db.session.scalar(select(func.count()).select_from(WaitlistEntry)) == 1
    assert len(errors) == 3
    assert all("already on the waiting list" in str(e) for e in errors)
