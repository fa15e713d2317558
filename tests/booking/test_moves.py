"""Issue 14 item 5: move pages offer only dates with places and speak to whoever is moving."""

from __future__ import annotations

from datetime import timedelta

import pytest

from booking.bookings import book_place, move_booking
from booking.errors import SessionFull
from booking.extensions import db
from booking.models import BookingSource, WaitlistEntry

from ..conftest import sign_in


@pytest.fixture
def full_other_date(make_course, make_session, make_nqsw):
    course = make_course(code="mca", title="Mental Capacity Act in Practice")
    mine = make_session(course)
    full = make_session(course, day=mine.local_date + timedelta(days=28), capacity=1)
    nqsw = make_nqsw(name="Amara Okafor")
    booking = book_place(nqsw, mine)
    book_place(make_nqsw(name="Someone Else"), full)
    return nqsw, booking, full


def test_coordinator_move_page_does_not_offer_a_full_date(client, coordinator, full_other_date):
    _nqsw, booking, full = full_other_date
    sign_in(client, coordinator)

    page = client.get(f"/coordinator/bookings/{booking.id}/move").text

    assert f'value="{full.id}"' not in page
    assert f"{full.local_start:%A %-d %B %Y} is full, so Amara Okafor cannot be moved there" in page
    assert "There is no other date" not in page


def test_a_full_date_refuses_a_coordinator_without_nqsw_wording(
    coordinator, full_other_date, make_nqsw
):
    _nqsw, booking, full = full_other_date
    with pytest.raises(SessionFull) as moving:
        move_booking(booking, full, by=coordinator, source=BookingSource.COORDINATOR)
    with pytest.raises(SessionFull) as booking_someone:
        book_place(make_nqsw(), full, by=coordinator, source=BookingSource.COORDINATOR)
    for refusal in (moving.value, booking_someone.value):
        assert refusal.message.endswith("is full.")
        assert "waiting list" not in refusal.message


def test_the_nqsw_still_hears_about_the_waiting_list(full_other_date, make_nqsw):
    _nqsw, _booking, full = full_other_date
    newcomer = make_nqsw()
    with pytest.raises(SessionFull, match="You can join the waiting list"):
        book_place(newcomer, full, by=newcomer.user)


def test_nqsw_whose_other_date_is_full_is_offered_its_waiting_list(client, full_other_date):
    nqsw, booking, full = full_other_date
    sign_in(client, nqsw.user)

    page = client.get(f"/my/bookings/{booking.id}/move").text

    assert "There is no other date you can move to" not in page
    assert f"{full.local_start:%A %-d %B %Y} is full" in page
    assert f'action="/my/sessions/{full.id}/wait"' in page

    client.post(f"/my/sessions/{full.id}/wait")
    entry = db.session.query(WaitlistEntry).one()
    assert (entry.nqsw_id, entry.session_id) == (nqsw.id, full.id)
    again = client.get(f"/my/bookings/{booking.id}/move").text
    assert "You are on its waiting list" in again
    assert f'action="/my/sessions/{full.id}/wait"' not in again
