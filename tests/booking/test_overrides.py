"""Issue 14 item 8: coordinators record reality: walk-ins, one more in the room, protected time.

Each exception needs a reason, which is kept on the booking and in the audit log.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from booking.attendance import register_rows
from booking.audit.models import AuditEvent
from booking.bookings import book_place
from booking.errors import NotAllowed
from booking.extensions import db
from booking.invariants import run_checks
from booking.models import Booking, BookingStatus, utcnow

from ..conftest import FUTURE, sign_in
from .coordinator_support import field_error


def _book(client, session, nqsw, reason=""):
    return client.post(
        f"/coordinator/sessions/{session.id}/book",
        data={"nqsw_id": str(nqsw.id), "override_reason": reason},
    )


def _live(nqsw) -> list[Booking]:
    return list(
        db.session.scalars(
            select(Booking).where(
                Booking.nqsw_id == nqsw.id, Booking.status == BookingStatus.BOOKED
            )
        )
    )


def _overrides() -> list[AuditEvent]:
    return list(
        db.session.scalars(select(AuditEvent).where(AuditEvent.action == "booking.override"))
    )


def test_a_walk_in_needs_a_reason_and_then_goes_on_the_register(
    client, coordinator, make_session, make_nqsw
):
    now = utcnow()
    started = make_session(starts_at=now - timedelta(minutes=40), ends_at=now + timedelta(hours=3))
    nqsw = make_nqsw(name="Walk In")
    sign_in(client, coordinator)

    refused = _book(client, started, nqsw)

    assert refused.status_code == 400
    message = field_error(refused, "override_reason")
    assert "already started" in message and "say why in the reason for an exception" in message
    assert _live(nqsw) == []

    booked = _book(client, started, nqsw, "Came on the day; <script>alert(1)</script>")

    assert booked.status_code == 302
    [booking] = _live(nqsw)
    assert booking.override_reason == "Came on the day; <script>alert(1)</script>"
    assert [row.nqsw.id for row in register_rows(started)] == [nqsw.id]
    [event] = _overrides()
    assert event.actor_id == coordinator.id and event.session_id == started.id
    assert event.reason == booking.override_reason
    assert json.loads(event.after)["overrode"] == "started"
    page = client.get(f"/coordinator/sessions/{started.id}").text
    assert "Exception: Came on the day; &lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_booking_over_capacity_adds_a_place_and_keeps_the_invariants(
    client, coordinator, make_session, make_nqsw
):
    session = make_session(capacity=1)
    book_place(make_nqsw(), session)
    late = make_nqsw(name="One More")
    sign_in(client, coordinator)

    refused = _book(client, session, late)
    assert "is full." in field_error(refused, "override_reason")
    assert "You can join the waiting list" not in field_error(refused, "override_reason")

    _book(client, session, late, "Room has a spare chair")

    db.session.refresh(session)
    assert (session.taken, session.capacity) == (2, 2)
    assert json.loads(_overrides()[0].after) == {
        "status": "booked",
        "overrode": "capacity",
        "capacity": 2,
    }
    assert run_checks() == []


def test_protected_time_can_be_overridden_with_a_reason(
    client, coordinator, make_course, make_session, make_nqsw
):
    nqsw = make_nqsw(name="Busy Person")
    for offset in (0, 7):
        book_place(nqsw, make_session(make_course(), day=FUTURE + timedelta(days=offset)))
    third = make_session(make_course(), day=FUTURE + timedelta(days=14))
    sign_in(client, coordinator)

    refused = _book(client, third, nqsw)
    assert "protected time allows" in field_error(refused, "override_reason")

    _book(client, third, nqsw, "Manager agreed extra study leave")

    assert len(_live(nqsw)) == 3
    assert json.loads(_overrides()[0].after)["overrode"] == "protected_time"


def test_a_reason_with_nothing_to_override_is_an_ordinary_booking(
    client, coordinator, make_session, make_nqsw
):
    session = make_session()
    nqsw = make_nqsw()
    sign_in(client, coordinator)

    _book(client, session, nqsw, "Just in case")

    [booking] = _live(nqsw)
    assert booking.override_reason == ""
    assert _overrides() == []


def test_only_a_coordinator_may_book_as_an_exception(make_session, make_nqsw):
    now = utcnow()
    started = make_session(starts_at=now - timedelta(minutes=5), ends_at=now + timedelta(hours=3))
    nqsw = make_nqsw()
    with pytest.raises(NotAllowed):
        book_place(nqsw, started, by=nqsw.user, override_reason="I was there")
    assert _live(nqsw) == []


def test_the_nqsw_sees_why_their_place_is_an_exception(
    client, coordinator, make_course, make_session, make_nqsw
):
    course = make_course(code="mha", title="Mental Health Act")
    session = make_session(course, capacity=1)
    book_place(make_nqsw(), session)
    nqsw = make_nqsw()
    book_place(nqsw, session, by=coordinator, override_reason="Agreed with the trainer")
    sign_in(client, nqsw.user)

    page = client.get("/my/training").text

    assert "Booked by a coordinator as an exception: Agreed with the trainer" in page
