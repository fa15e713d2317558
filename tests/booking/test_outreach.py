"""Issue 14, "build these": messages to a session, its sign-in sheet and attendee CSV, and the
"who still needs this course" list with "offer them the next date"."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from booking import attendance
from booking.attendance import MarkChange, record_marks
from booking.audit.models import AuditEvent
from booking.bookings import accept_offer, book_place, join_waitlist
from booking.extensions import db
from booking.invariants import run_checks
from booking.models import (
    AttendanceMark,
    Booking,
    BookingSource,
    BookingStatus,
    OutboxMessage,
    SessionMessage,
    WaitlistEntry,
    WaitStatus,
)

from ..conftest import sign_in
from .coordinator_support import field_error


def _messages(kind: str) -> list[OutboxMessage]:
    return list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind)))


def _audit(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


@pytest.fixture
def full_session(make_session, make_nqsw):
    session = make_session(capacity=2, joining_url="https://teams.example/join/42")
    booked = [make_nqsw(name=n) for n in ("Amara Okafor", "Ben Clarke")]
    for nqsw in booked:
        book_place(nqsw, session)
    waiting = make_nqsw(name="Chloe Nguyen")
    join_waitlist(waiting, session)
    return session, booked, waiting


def _token(client, session) -> str:
    page = client.get(f"/coordinator/sessions/{session.id}/message").text
    return re.search(r'name="form_token" type="hidden" value="([^"]+)"', page).group(1)


def test_a_message_to_everyone_booked_or_waiting(client, coordinator, full_session):
    session, booked, waiting = full_session
    sign_in(client, coordinator)
    form = {
        "audience": "both",
        "subject": "Room change",
        "body": "Please use the new link.\n\nThanks <script>alert(1)</script>",
        "form_token": _token(client, session),
    }

    response = client.post(f"/coordinator/sessions/{session.id}/message", data=form)

    assert response.status_code == 302
    sent = _messages("session_message")
    assert sorted(m.recipients for m in sent) == sorted(
        n.email for n in [*booked, waiting]
    )  # one mail each: nobody sees the others' addresses
    one = sent[0]
    assert one.subject == "Room change"
    assert "Please use the new link." in one.text_body
    assert "https://teams.example/join/42" in one.text_body  # the session's details added
    assert "&lt;script&gt;" in one.html_body and "<script>" not in one.html_body
    [kept] = db.session.scalars(select(SessionMessage)).all()
    assert (kept.recipients, kept.sent_by_id) == (3, coordinator.id)
    [event] = _audit("session.message")
    assert event.session_id == session.id and '"recipients": 3' in event.after
    page = client.get(f"/coordinator/sessions/{session.id}").text
    assert "Room change" in page and "to everyone booked or waiting (3)" in page

    again = client.post(
        f"/coordinator/sessions/{session.id}/message", data=form, follow_redirects=True
    )
    assert "already been sent" in again.text
    assert len(_messages("session_message")) == 3


def test_only_the_chosen_audience_is_mailed(client, coordinator, full_session):
    session, _booked, waiting = full_session
    sign_in(client, coordinator)
    client.post(
        f"/coordinator/sessions/{session.id}/message",
        data={
            "audience": "waiting",
            "subject": "Still waiting",
            "body": "A place may free up.",
            "form_token": _token(client, session),
        },
    )
    assert [m.recipients for m in _messages("session_message")] == [waiting.email]


def test_a_message_to_nobody_is_refused_next_to_the_audience(client, coordinator, make_session):
    session = make_session()
    sign_in(client, coordinator)
    response = client.post(
        f"/coordinator/sessions/{session.id}/message",
        data={
            "audience": "booked",
            "subject": "Hello",
            "body": "Hi",
            "form_token": _token(client, session),
        },
    )
    assert response.status_code == 400
    assert field_error(response, "audience") == "Nobody is booked on this session."
    assert _messages("session_message") == []


def test_sign_in_sheet_and_attendee_csv(client, coordinator, make_session, make_nqsw):
    session = make_session()
    sly = make_nqsw(name='=HYPERLINK("http://evil.example","click")')
    plain = make_nqsw(name="Amara Okafor")
    for nqsw in (sly, plain):
        book_place(nqsw, session)
    sign_in(client, coordinator)

    sheet = client.get(f"/coordinator/sessions/{session.id}/sign-in-sheet").text
    response = client.get(f"/coordinator/sessions/{session.id}/attendees.csv")

    assert "Amara Okafor" in sheet and "Signature" in sheet
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = {r["email"]: r for r in csv.DictReader(io.StringIO(response.text))}
    assert rows[sly.email]["name"] == '\'=HYPERLINK("http://evil.example","click")'
    assert rows[plain.email]["name"] == "Amara Okafor"
    assert rows[plain.email]["how"] == "self"


@pytest.fixture
def course_with_history(make_course, make_session, make_nqsw, coordinator):
    """A course whose first date ran a week ago and whose second is ahead."""
    course = make_course(code="care-act", title="Care Act")
    past = make_session(course, day=date.today() - timedelta(days=7))
    ahead = make_session(course, day=date.today() + timedelta(days=30))
    people = {n: make_nqsw(name=n) for n in ("Attended", "Missed", "Booked Ahead", "Never Booked")}
    for name in ("Attended", "Missed"):
        db.session.add(
            Booking(
                session=past,
                nqsw=people[name],
                course_id=course.id,
                source=BookingSource.COORDINATOR,
                created_at=past.starts_at - timedelta(days=20),
            )
        )
    past.taken = 2
    db.session.commit()
    record_marks(
        past,
        [
            MarkChange(people["Attended"].id, AttendanceMark.PRESENT, None, None),
            MarkChange(people["Missed"].id, AttendanceMark.ABSENT, None, None),
        ],
        by=coordinator,
    )
    book_place(people["Booked Ahead"], ahead)
    return course, past, ahead, people


def test_who_still_needs_the_course(client, coordinator, course_with_history):
    course, _past, ahead, _people = course_with_history
    sign_in(client, coordinator)

    page = client.get(f"/coordinator/courses/{course.id}/needs").text

    table = page.split('id="needs"', 1)[1]
    assert "Missed" in table and "Never Booked" in table
    assert ">Attended<" not in table and "Booked Ahead" not in table
    assert f"{ahead.local_start:%a %-d %b %Y}" in table


def test_offering_the_next_date_holds_a_place_and_the_nqsw_can_take_it(
    client, coordinator, course_with_history
):
    course, _past, ahead, people = course_with_history
    missed = people["Missed"]
    sign_in(client, coordinator)

    client.post(f"/coordinator/courses/{course.id}/needs/{missed.id}/offer")

    entry = db.session.scalars(
        select(WaitlistEntry).where(WaitlistEntry.nqsw_id == missed.id)
    ).one()
    assert (entry.session_id, entry.status) == (ahead.id, WaitStatus.OFFERED)
    db.session.refresh(ahead)
    assert ahead.taken == 2  # Booked Ahead's place and the one held for the offer
    assert [m.recipients for m in _messages("waitlist_offer")] == [missed.email]
    [event] = _audit("waitlist.offer")
    assert event.actor_id == coordinator.id and event.nqsw_id == missed.id
    # The missed date's booking is closed so the course can be retaken; its mark still counts.
    old = db.session.scalars(select(Booking).where(Booking.nqsw_id == missed.id)).one()
    assert old.status is BookingStatus.MOVED
    assert attendance.nqsw_attendance(missed).summary.expected_so_far == 1
    assert run_checks() == []
    listed = client.get(f"/coordinator/courses/{course.id}/needs").text
    assert "held until" in listed

    booking = accept_offer(entry)

    assert booking.session_id == ahead.id and booking.is_live
    assert run_checks() == []
    after = client.get(f"/coordinator/courses/{course.id}/needs").text.split('id="needs"', 1)
    assert len(after) == 1 or "Missed" not in after[1]


def test_offer_everyone_listed(client, coordinator, course_with_history):
    course, _past, ahead, people = course_with_history
    sign_in(client, coordinator)

    response = client.post(
        f"/coordinator/courses/{course.id}/needs/offer-all", follow_redirects=True
    )

    assert "2 offers sent." in response.text
    offered = {
        e.nqsw_id for e in db.session.scalars(select(WaitlistEntry)) if e.session_id == ahead.id
    }
    assert offered == {people["Missed"].id, people["Never Booked"].id}
    again = client.post(f"/coordinator/courses/{course.id}/needs/offer-all", follow_redirects=True)
    assert "0 offers sent." in again.text
    assert len(_messages("waitlist_offer")) == 2
