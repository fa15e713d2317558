"""Coordinators change, cancel and book sessions; the people affected are told."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from booking.bookings import book_place, join_waitlist
from booking.extensions import db
from booking.models import (
    Booking,
    BookingSource,
    BookingStatus,
    OutboxMessage,
    SessionStatus,
    WaitlistEntry,
    WaitStatus,
)

from ..conftest import FUTURE, sign_in
from .coordinator_support import field_error
from .test_coordinator_forms import SESSION


def _messages(kind: str) -> list[OutboxMessage]:
    return list(
        db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == kind).order_by(OutboxMessage.id)
        )
    )


def test_cancelling_a_session_tells_bookings_and_the_waiting_list(
    client, coordinator, make_session, make_nqsw
):
    session = make_session(capacity=1)
    booked, waiting = make_nqsw(name="Bea Booked"), make_nqsw(name="Wil Waiting")
    book_place(booked, session)
    join_waitlist(waiting, session)
    sign_in(client, coordinator)

    response = client.post(
        f"/coordinator/sessions/{session.id}/cancel", data={"reason": "The trainer is ill."}
    )

    assert response.status_code == 302
    db.session.expire_all()
    assert session.status is SessionStatus.CANCELLED and session.taken == 0
    assert session.sequence == 1
    told = _messages("session_cancelled")
    assert sorted(m.recipients for m in told) == sorted([booked.email, waiting.email])
    assert all("The trainer is ill." in m.text_body for m in told)
    assert db.session.scalar(select(Booking.status)) is BookingStatus.CANCELLED
    assert db.session.scalar(select(WaitlistEntry.status)) is WaitStatus.CLOSED
    page = client.get(f"/coordinator/sessions/{session.id}").get_data(as_text=True)
    assert "The trainer is ill." in page and "Book an NQSW" not in page


def test_changing_a_session_time_raises_its_sequence_and_mails_attendees(
    client, coordinator, make_session, make_nqsw
):
    session = make_session()
    nqsw = make_nqsw()
    book_place(nqsw, session)
    sign_in(client, coordinator)
    day = session.local_date.isoformat()

    response = client.post(
        f"/coordinator/sessions/{session.id}/edit",
        data={**SESSION, "date": day, "start_time": "10:00", "end_time": "16:30"},
    )

    assert response.status_code == 302
    db.session.refresh(session)
    assert session.sequence == 1
    assert session.local_start.strftime("%H:%M") == "10:00"
    changed = _messages("session_changed")
    assert [m.recipients for m in changed] == [nqsw.email]
    assert "10:00" in changed[0].text_body


def test_saving_a_session_unchanged_tells_nobody(client, coordinator, make_session, make_nqsw):
    session = make_session(mode="Online (MS Teams)", joining_url="https://teams.example/meet/1")
    book_place(make_nqsw(), session)
    sign_in(client, coordinator)
    data = {
        **SESSION,
        "date": session.local_date.isoformat(),
        "start_time": session.local_start.strftime("%H:%M"),
        "end_time": session.local_end.strftime("%H:%M"),
        "capacity": "30",
        "facilitator": "",
    }
    assert client.post(f"/coordinator/sessions/{session.id}/edit", data=data).status_code == 302
    db.session.refresh(session)
    assert session.sequence == 0
    assert _messages("session_changed") == []


def test_book_an_nqsw_onto_a_session_on_their_behalf(client, coordinator, make_session, make_nqsw):
    session = make_session()
    nqsw = make_nqsw(name="Nia Social-Worker")
    sign_in(client, coordinator)
    page = client.get(f"/coordinator/sessions/{session.id}").get_data(as_text=True)
    assert "Nia Social-Worker" in page

    response = client.post(f"/coordinator/sessions/{session.id}/book", data={"nqsw_id": nqsw.id})

    assert response.status_code == 302
    booking = db.session.scalar(select(Booking))
    assert booking.nqsw_id == nqsw.id and booking.source is BookingSource.COORDINATOR
    assert booking.booked_by_id == coordinator.id
    assert [m.recipients for m in _messages("booking_confirmed")] == [nqsw.email]


def test_booking_on_behalf_onto_a_full_session_says_so_by_the_field(
    client, coordinator, make_session, make_nqsw
):
    session = make_session(capacity=1)
    book_place(make_nqsw(), session)
    late = make_nqsw(name="Lee Late")
    sign_in(client, coordinator)

    response = client.post(f"/coordinator/sessions/{session.id}/book", data={"nqsw_id": late.id})

    assert response.status_code == 400
    # Shown by the exception's reason, the field that lets the coordinator book anyway.
    assert "is full" in field_error(response, "override_reason")
    assert db.session.scalars(select(Booking).where(Booking.nqsw_id == late.id)).all() == []
    db.session.refresh(session)
    assert session.taken == 1


def test_booking_on_behalf_respects_protected_time(
    client, coordinator, make_course, make_session, make_nqsw
):
    # 0.5 days a week over 4 weeks allows 2 days; three full days in one week is one too many.
    first, second, third = (
        make_session(make_course(title=f"Course {n}"), day=FUTURE + timedelta(days=n))
        for n in range(3)
    )
    nqsw = make_nqsw()
    book_place(nqsw, first)
    book_place(nqsw, second)
    sign_in(client, coordinator)

    response = client.post(f"/coordinator/sessions/{third.id}/book", data={"nqsw_id": nqsw.id})

    assert response.status_code == 400
    message = field_error(response, "override_reason")
    assert "protected time allows 2 days" in message
    assert "Course 0" in message and "Course 1" in message
    assert db.session.scalars(select(Booking).where(Booking.session_id == third.id)).all() == []


def test_booking_on_behalf_requires_a_choice(client, coordinator, make_session, make_nqsw):
    session = make_session()
    make_nqsw()
    sign_in(client, coordinator)
    response = client.post(f"/coordinator/sessions/{session.id}/book", data={"nqsw_id": "0"})
    assert response.status_code == 400
    assert field_error(response, "nqsw_id") == "Choose an NQSW"
    assert db.session.scalars(select(Booking)).all() == []


def test_nqsw_already_on_the_course_is_not_offered(client, coordinator, make_session, make_nqsw):
    session = make_session()
    other_date = make_session(session.course, day=FUTURE + timedelta(days=30))
    nqsw = make_nqsw(name="Ada Already")
    book_place(nqsw, other_date)
    sign_in(client, coordinator)
    page = client.get(f"/coordinator/sessions/{session.id}").get_data(as_text=True)
    assert "Ada Already" not in page


def test_publish_and_unpublish_change_the_public_catalogue(
    app, client, coordinator, make_programme
):
    programme = make_programme(published=False, slug="next-year")
    public = app.test_client()
    assert public.get("/programmes/next-year/").status_code == 404
    sign_in(client, coordinator)

    client.post(f"/coordinator/programmes/{programme.id}/publish")
    db.session.refresh(programme)
    assert programme.published
    assert public.get("/programmes/next-year/").status_code == 200

    client.post(f"/coordinator/programmes/{programme.id}/unpublish")
    db.session.refresh(programme)
    assert not programme.published
    assert public.get("/programmes/next-year/").status_code == 404


def test_unpublished_programme_page_offers_the_pack_courses(client, coordinator, make_programme):
    programme = make_programme(published=False)
    sign_in(client, coordinator)
    page = client.get(f"/coordinator/programmes/{programme.id}").get_data(as_text=True)
    assert "Add the programme pack&#39;s courses" in page or "Add the programme pack's" in page
    assert "Publish the catalogue" in page


def test_session_page_shows_offer_expiry(client, coordinator, make_session, make_nqsw):
    session = make_session(capacity=1)
    first, waiting = make_nqsw(), make_nqsw(name="Olu Offered")
    booking = book_place(first, session)
    join_waitlist(waiting, session)
    from booking.bookings import cancel_booking

    cancel_booking(booking, now=datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    sign_in(client, coordinator)
    page = client.get(f"/coordinator/sessions/{session.id}").get_data(as_text=True)
    assert "Offered a place until 09:00 on 7 Jan 2026" in page
