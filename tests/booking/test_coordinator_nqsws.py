"""A coordinator manages any NQSW's details and bookings on their behalf."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from booking.bookings import book_place
from booking.extensions import db
from booking.models import Booking, BookingSource, BookingStatus, OutboxMessage

from ..conftest import FUTURE, sign_in
from .coordinator_support import field_error


def test_nqsw_page_shows_details_and_training_plan(
    client, coordinator, make_course, make_session, make_nqsw
):
    booked_course = make_course(title="Care Act")
    open_course = make_course(title="Mental Health Act")
    booked = make_session(booked_course)
    make_session(open_course)
    nqsw = make_nqsw(name="Nia Social-Worker", fte=0.6)
    book_place(nqsw, booked)
    sign_in(client, coordinator)

    page = client.get(f"/coordinator/nqsws/{nqsw.id}").get_data(as_text=True)

    assert "Nia Social-Worker" in page and nqsw.swe_number in page
    assert "0.6 FTE" in page
    assert "Booked on" in page and "Move to another date" in page
    assert "Book Mental Health Act on" in page


def test_book_from_the_nqsw_page(client, coordinator, make_session, make_nqsw):
    session = make_session()
    nqsw = make_nqsw()
    sign_in(client, coordinator)
    response = client.post(f"/coordinator/nqsws/{nqsw.id}/sessions/{session.id}/book")
    assert response.status_code == 302
    booking = db.session.scalar(select(Booking))
    assert booking.nqsw_id == nqsw.id and booking.source is BookingSource.COORDINATOR


def test_a_refused_booking_from_the_nqsw_page_is_flashed(
    client, coordinator, make_session, make_nqsw
):
    session = make_session(capacity=0)
    nqsw = make_nqsw()
    sign_in(client, coordinator)
    response = client.post(
        f"/coordinator/nqsws/{nqsw.id}/sessions/{session.id}/book",
        headers={"Referer": f"/coordinator/nqsws/{nqsw.id}"},
        follow_redirects=True,
    )
    assert "is full" in response.get_data(as_text=True)
    assert db.session.scalars(select(Booking)).all() == []


def test_move_a_booking_to_the_courses_other_date(
    client, coordinator, make_course, make_session, make_nqsw
):
    course = make_course()
    first = make_session(course, day=FUTURE)
    second = make_session(course, day=FUTURE + timedelta(days=21))
    nqsw = make_nqsw()
    booking = book_place(nqsw, first)
    sign_in(client, coordinator)
    page = client.get(f"/coordinator/bookings/{booking.id}/move").get_data(as_text=True)
    assert second.local_start.strftime("%A %-d %B %Y") in page

    response = client.post(
        f"/coordinator/bookings/{booking.id}/move", data={"session_id": second.id}
    )

    assert response.status_code == 302
    db.session.expire_all()
    assert booking.status is BookingStatus.MOVED
    new = db.session.get(Booking, booking.moved_to_id)
    assert new.session_id == second.id and new.source is BookingSource.COORDINATOR
    assert first.taken == 0 and second.taken == 1


def test_move_without_a_choice_is_refused(
    client, coordinator, make_course, make_session, make_nqsw
):
    course = make_course()
    first = make_session(course, day=FUTURE)
    make_session(course, day=FUTURE + timedelta(days=21))
    booking = book_place(make_nqsw(), first)
    sign_in(client, coordinator)
    response = client.post(f"/coordinator/bookings/{booking.id}/move", data={})
    assert response.status_code == 400
    assert field_error(response, "session_id") == "Choose a date"
    db.session.refresh(booking)
    assert booking.status is BookingStatus.BOOKED


def test_cancel_a_booking_on_their_behalf(client, coordinator, make_session, make_nqsw):
    session = make_session()
    nqsw = make_nqsw()
    booking = book_place(nqsw, session)
    sign_in(client, coordinator)
    assert client.get(f"/coordinator/bookings/{booking.id}/cancel").status_code == 200
    response = client.post(f"/coordinator/bookings/{booking.id}/cancel")
    assert response.status_code == 302
    db.session.expire_all()
    assert booking.status is BookingStatus.CANCELLED and session.taken == 0
    kinds = db.session.scalars(
        select(OutboxMessage.kind).where(OutboxMessage.recipients == nqsw.email)
    ).all()
    assert "booking_cancelled" in kinds


def test_edit_an_nqsws_details(client, coordinator, make_nqsw):
    nqsw = make_nqsw()
    sign_in(client, coordinator)
    response = client.post(
        f"/coordinator/nqsws/{nqsw.id}/edit",
        data={
            "asye_start": "2026-10-01",
            "fte": "0.8",
            "assessor_email": "New.Assessor@example.org",
            "line_manager_email": "",
        },
    )
    assert response.status_code == 302
    db.session.refresh(nqsw)
    assert nqsw.asye_start == date(2026, 10, 1) and nqsw.fte == 0.8
    assert nqsw.assessor_email == "new.assessor@example.org"
    assert nqsw.line_manager_email == ""


def test_edit_an_nqsw_with_a_bad_fte_changes_nothing(client, coordinator, make_nqsw):
    nqsw = make_nqsw(fte=1.0)
    sign_in(client, coordinator)
    response = client.post(
        f"/coordinator/nqsws/{nqsw.id}/edit",
        data={"asye_start": "2026-10-01", "fte": "1.5", "assessor_email": "x@example.org"},
    )
    assert response.status_code == 400
    assert field_error(response, "fte") == "FTE must be more than 0 and at most 1"
    db.session.refresh(nqsw)
    assert nqsw.fte == 1.0 and nqsw.assessor_email == "assessor@example.org"


def test_withdraw_an_nqsw_cancels_future_bookings(client, coordinator, make_session, make_nqsw):
    session = make_session()
    nqsw = make_nqsw()
    booking = book_place(nqsw, session)
    sign_in(client, coordinator)
    assert client.get(f"/coordinator/nqsws/{nqsw.id}/withdraw").status_code == 200
    response = client.post(f"/coordinator/nqsws/{nqsw.id}/withdraw")
    assert response.status_code == 302
    db.session.expire_all()
    assert nqsw.withdrawn_at is not None
    assert booking.status is BookingStatus.CANCELLED
    page = client.get(f"/coordinator/nqsws/{nqsw.id}").get_data(as_text=True)
    assert "Withdrawn" in page
    # A withdrawn NQSW is no longer offered on a session's booking form.
    session_page = client.get(f"/coordinator/sessions/{session.id}").get_data(as_text=True)
    assert f'value="{nqsw.id}"' not in session_page


def test_withdrawing_twice_is_refused(client, coordinator, make_nqsw):
    nqsw = make_nqsw()
    sign_in(client, coordinator)
    client.post(f"/coordinator/nqsws/{nqsw.id}/withdraw")
    db.session.refresh(nqsw)
    first = nqsw.withdrawn_at
    page = client.post(
        f"/coordinator/nqsws/{nqsw.id}/withdraw",
        headers={"Referer": f"/coordinator/nqsws/{nqsw.id}"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "has already been withdrawn" in page
    db.session.refresh(nqsw)
    assert nqsw.withdrawn_at == first
