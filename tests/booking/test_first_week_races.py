"""Issue 14's new coordinator actions under ten identical requests at once.

Exceptions past capacity, messages to a session and offers of the next date each do their
work once however many copies of the request arrive together (both backends).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import func, select

from booking import outreach
from booking.bookings import book_place
from booking.errors import BookingError
from booking.extensions import db
from booking.invariants import run_checks
from booking.models import (
    NQSW,
    Course,
    MessageAudience,
    OutboxMessage,
    Session,
    SessionMessage,
    User,
    WaitlistEntry,
)

RACERS = 10


def _race(app, jobs: list[Callable[[], object]]) -> Counter[str]:
    barrier = threading.Barrier(len(jobs))
    outcomes: list[str] = []
    lock = threading.Lock()

    def run(job: Callable[[], object]) -> None:
        with app.app_context():
            barrier.wait()
            try:
                job()
                result = "done"
            except BookingError:
                db.session.rollback()
                result = "refused"
            finally:
                db.session.remove()
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return Counter(outcomes)


def _count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def test_exceptions_past_capacity_all_land_and_keep_the_places_right(
    app, coordinator, make_session, make_nqsw
):
    session = make_session(capacity=1)
    book_place(make_nqsw(), session)
    ids = [make_nqsw().id for _ in range(RACERS)]
    session_id, coordinator_id = session.id, coordinator.id
    db.session.remove()

    def job(nqsw_id: int) -> Callable[[], object]:
        return lambda: book_place(
            db.session.get(NQSW, nqsw_id),
            db.session.get(Session, session_id),
            by=db.session.get(User, coordinator_id),
            override_reason="Extra chairs brought in",
        )

    assert _race(app, [job(i) for i in ids]) == Counter(done=RACERS)
    found = db.session.get(Session, session_id)
    assert (found.taken, found.capacity) == (RACERS + 1, RACERS + 1)
    assert run_checks() == []


def test_ten_copies_of_one_message_send_it_once(app, coordinator, make_session, make_nqsw):
    session = make_session()
    for _ in range(3):
        book_place(make_nqsw(), session)
    session_id, coordinator_id = session.id, coordinator.id
    db.session.remove()

    def job() -> object:
        return outreach.message_session(
            db.session.get(Session, session_id),
            audience=MessageAudience.BOOKED,
            subject="Parking",
            body="Use the rear car park.",
            by=db.session.get(User, coordinator_id),
            form_token="the-same-form",
        )

    assert _race(app, [job for _ in range(RACERS)]) == Counter(done=1, refused=RACERS - 1)
    assert _count(SessionMessage) == 1
    assert _count(OutboxMessage, OutboxMessage.kind == "session_message") == 3


def test_ten_clicks_on_offer_make_one_offer(app, coordinator, make_course, make_session, make_nqsw):
    course = make_course()
    ahead = make_session(course, day=make_session(course).local_date + timedelta(days=30))
    nqsw = make_nqsw()
    ids = (course.id, nqsw.id, coordinator.id, ahead.id)
    db.session.remove()
    course_id, nqsw_id, coordinator_id, ahead_id = ids

    def job() -> object:
        return outreach.offer_next_date(
            db.session.get(Course, course_id),
            db.session.get(NQSW, nqsw_id),
            by=db.session.get(User, coordinator_id),
        )

    assert _race(app, [job for _ in range(RACERS)]) == Counter(done=1, refused=RACERS - 1)
    assert _count(WaitlistEntry) == 1
    assert _count(OutboxMessage, OutboxMessage.kind == "waitlist_offer") == 1
    assert run_checks() == []
    offered = db.session.scalars(select(WaitlistEntry)).one().session
    assert offered.id != ahead_id and offered.taken == 1
    assert db.session.get(Session, ahead_id).taken == 0
