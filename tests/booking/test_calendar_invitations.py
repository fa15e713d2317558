"""Mailed invitations: REQUEST and CANCEL on one UID per NQSW and course, sequence rising."""

from __future__ import annotations

from datetime import time, timedelta

import vobject
from icalendar import Calendar
from sqlalchemy import select

from booking import bookings, catalogue
from booking.extensions import db
from booking.models import InvitationThread, OutboxMessage

from ..conftest import FUTURE, london


def _invites(nqsw):
    messages = db.session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.recipients == nqsw.email, OutboxMessage.ics.is_not(None))
        .order_by(OutboxMessage.id)
    ).all()
    return [(m, Calendar.from_ical(m.ics)) for m in messages]


def _event(ical):
    [event] = ical.walk("VEVENT")
    return event


def test_booking_move_cancel_and_rebook_are_one_invitation_thread(
    programme, make_course, make_session, make_nqsw
):
    programme.host_email = "asye@host.example"
    course = make_course(title="Care Act")
    first = make_session(course, day=FUTURE, joining_url="https://teams.example/1")
    second = make_session(course, day=FUTURE + timedelta(days=30))
    nqsw = make_nqsw(name="Nia Worker")

    booking = bookings.book_place(nqsw, first)
    moved = bookings.move_booking(booking, second)
    bookings.cancel_booking(moved)
    bookings.book_place(nqsw, first)

    invites = _invites(nqsw)
    assert [m.kind for m, _ in invites] == [
        "booking_confirmed",
        "booking_moved",
        "booking_cancelled",
        "booking_confirmed",
    ]
    assert [m.ics_method for m, _ in invites] == ["REQUEST", "REQUEST", "CANCEL", "REQUEST"]
    assert [str(ical["METHOD"]) for _, ical in invites] == [
        "REQUEST",
        "REQUEST",
        "CANCEL",
        "REQUEST",
    ]
    events = [_event(ical) for _, ical in invites]
    thread = db.session.scalars(select(InvitationThread)).one()
    assert {str(e["UID"]) for e in events} == {thread.uid}
    assert thread.uid not in (first.uid, second.uid)
    assert [e["SEQUENCE"] for e in events] == [0, 1, 2, 3]
    assert [e["DTSTART"].dt for e in events] == [
        first.starts_at,
        second.starts_at,
        second.starts_at,
        first.starts_at,
    ]
    assert str(events[2]["STATUS"]) == "CANCELLED"

    request = events[0]
    assert str(request["ORGANIZER"]) == "mailto:asye@host.example"
    attendee = request["ATTENDEE"]
    assert str(attendee) == f"mailto:{nqsw.email}"
    assert attendee.params["RSVP"] == "TRUE"
    assert attendee.params["CN"] == "Nia Worker"
    assert str(request["LOCATION"]) == "https://teams.example/1"

    # An independent parser reads the same thread.
    parsed = vobject.readOne(invites[1][0].ics)
    assert parsed.method.value == "REQUEST"
    assert parsed.vevent.uid.value == thread.uid
    assert int(parsed.vevent.sequence.value) == 1
    assert parsed.vevent.attendee.params["RSVP"] == ["TRUE"]


def test_host_changes_and_cancellation_update_every_attendee(
    programme, make_course, make_session, make_nqsw
):
    session = make_session(make_course(title="Mental Health Act"), day=FUTURE)
    ada, ben = make_nqsw(name="Ada"), make_nqsw(name="Ben")
    bookings.book_place(ada, session)
    bookings.book_place(ben, session)
    new_start = london(FUTURE + timedelta(days=2), time(10, 0))

    catalogue.update_session(session, starts_at=new_start, ends_at=new_start + timedelta(hours=6))
    bookings.cancel_session(session, reason="Trainer unwell")

    for nqsw in (ada, ben):
        invites = _invites(nqsw)
        assert [m.kind for m, _ in invites] == [
            "booking_confirmed",
            "session_changed",
            "session_cancelled",
        ]
        events = [_event(ical) for _, ical in invites]
        assert len({str(e["UID"]) for e in events}) == 1
        assert [e["SEQUENCE"] for e in events] == [0, 1, 2]
        assert events[1]["DTSTART"].dt == new_start
        assert [str(ical["METHOD"]) for _, ical in invites] == ["REQUEST", "REQUEST", "CANCEL"]
        assert str(events[2]["SUMMARY"]).startswith("Cancelled:")
    assert _event(_invites(ada)[0][1])["UID"] != _event(_invites(ben)[0][1])["UID"]


def test_invitation_mail_says_the_calendar_is_attached(
    programme, make_course, make_session, make_nqsw
):
    nqsw = make_nqsw()
    bookings.book_place(nqsw, make_session(make_course()))
    [(message, _)] = _invites(nqsw)
    assert "attached invitation adds this to your calendar" in message.text_body
    assert "attached invitation adds this to your calendar" in message.html_body
