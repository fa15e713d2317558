"""Issue 14 item 1: a booking on a session that has run shows what happened, with no actions.

Also item 11: after the programme cancels a session, the NQSW's page says so.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from booking.attendance import MarkChange, record_marks
from booking.bookings import book_place, cancel_session
from booking.extensions import db
from booking.models import AttendanceMark, Booking, BookingSource

from ..conftest import sign_in

PAST = date.today() - timedelta(days=7)


@pytest.fixture
def past_booking(make_course, make_session, make_nqsw):
    """An NQSW booked on a half-day session that ran a week ago."""

    def make(mark: AttendanceMark | None, *, by=None):
        course = make_course(code="care-act", title="Care Act")
        session = make_session(course, day=PAST)
        make_session(course)  # the course's other, future date
        nqsw = make_nqsw(name="Amara Okafor")
        db.session.add(
            Booking(
                session=session,
                nqsw=nqsw,
                course_id=course.id,
                source=BookingSource.COORDINATOR,
                created_at=session.starts_at - timedelta(weeks=3),
            )
        )
        session.taken = 1
        db.session.commit()
        if mark is not None:
            record_marks(session, [MarkChange(nqsw.id, mark, None, None)], by=by)
        return nqsw, db.session.query(Booking).one()

    return make


def _card(html: str, code: str) -> str:
    found = re.search(rf'id="course-{code}">(.*?)</div>\s*</div>', html, re.S)
    assert found, f"no card for {code}"
    return found.group(1)


@pytest.mark.parametrize(
    ("mark", "shown"),
    [
        (AttendanceMark.PRESENT, "Attended"),
        (AttendanceMark.ABSENT, "Missed"),
        (None, "Awaiting the register"),
    ],
)
def test_my_training_shows_a_past_booking_without_actions(
    client, coordinator, past_booking, mark, shown
):
    nqsw, booking = past_booking(mark, by=coordinator)
    sign_in(client, nqsw.user)

    card = _card(client.get("/my/training").text, "care-act")

    assert shown in card
    assert "You were booked on" in card
    assert "Move to another date" not in card
    assert f"/my/bookings/{booking.id}/cancel" not in card
    assert f"/my/bookings/{booking.id}/move" not in card


def test_coordinator_nqsw_page_shows_a_past_booking_without_actions(
    client, coordinator, past_booking
):
    nqsw, booking = past_booking(AttendanceMark.PRESENT, by=coordinator)
    sign_in(client, coordinator)

    card = _card(client.get(f"/coordinator/nqsws/{nqsw.id}").text, "care-act")

    assert "Attended" in card
    assert f"/coordinator/bookings/{booking.id}/cancel" not in card
    assert f"/coordinator/bookings/{booking.id}/move" not in card
    assert f"/attendance/sessions/{booking.session_id}" in card


@pytest.mark.parametrize("action", ["cancel", "move"])
def test_cancel_and_move_pages_of_a_past_booking_send_the_nqsw_back(
    client, coordinator, past_booking, action
):
    nqsw, booking = past_booking(AttendanceMark.PRESENT, by=coordinator)
    sign_in(client, nqsw.user)

    page = client.get(f"/my/bookings/{booking.id}/{action}", follow_redirects=True).text

    assert "late cancellation" not in page
    assert "has already started, so your place can no longer be cancelled or moved" in page
    assert db.session.get(Booking, booking.id).is_live


@pytest.mark.parametrize("action", ["cancel", "move"])
def test_coordinator_cancel_and_move_pages_of_a_past_booking_refuse(
    client, coordinator, past_booking, action
):
    nqsw, booking = past_booking(None)
    sign_in(client, coordinator)

    response = client.get(f"/coordinator/bookings/{booking.id}/{action}")

    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/coordinator/nqsws/{nqsw.id}")
    follow = client.get(response.headers["Location"]).text
    assert "can no longer be cancelled or moved" in follow
    assert "Late cancellation" not in follow


def test_my_training_tells_the_nqsw_the_programme_cancelled_their_session(
    client, coordinator, make_course, make_session, make_nqsw
):
    course = make_course(code="mha", title="Mental Health Act")
    session = make_session(course)
    make_session(course, day=session.local_date + timedelta(days=35))
    nqsw = make_nqsw()
    book_place(nqsw, session)
    cancel_session(session, reason="The trainer is ill <b>today</b>", by=coordinator)
    sign_in(client, nqsw.user)

    card = _card(client.get("/my/training").text, "mha")

    assert "was cancelled because the programme cancelled the session" in card
    assert "The trainer is ill &lt;b&gt;today&lt;/b&gt;" in card
    assert "To book" in card

    # Once they book the other date, the notice has done its job.
    other = next(s for s in course.sessions if s.id != session.id)
    book_place(nqsw, other)
    assert "cancelled the session" not in _card(client.get("/my/training").text, "mha")
