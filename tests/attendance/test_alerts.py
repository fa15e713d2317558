"""Alerts when an NQSW's status worsens: once per change, through the outbox."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from booking import attendance
from booking.attendance import AttendanceError
from booking.extensions import db
from booking.models import (
    NQSW,
    AttendanceMark,
    AttendanceRecord,
    Booking,
    Course,
    MessageStatus,
    OutboxMessage,
    Programme,
    Session,
)


def _alerts() -> list[OutboxMessage]:
    return list(
        db.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.kind == "attendance_status_changed")
            .order_by(OutboxMessage.id)
        )
    )


@pytest.fixture
def past_session(
    programme: Programme, make_course: Callable[..., Course], make_session: Callable[..., Session]
) -> Callable[[], Session]:
    """Return sessions on core courses that ended recently."""
    counter = iter(range(1, 100))

    def make() -> Session:
        return make_session(make_course(), day=date.today() - timedelta(days=next(counter)))

    return make


def test_a_worsening_status_mails_three_people_once(
    programme: Programme,
    past_session: Callable[[], Session],
    make_nqsw: Callable[..., NQSW],
    make_booking: Callable[..., Booking],
) -> None:
    nqsw = make_nqsw(name="Amira Khan")
    missed = past_session()
    make_booking(nqsw, missed)
    db.session.add(AttendanceRecord(session=missed, nqsw=nqsw, mark=AttendanceMark.ABSENT))
    db.session.commit()

    assert attendance.send_status_alerts() == 1
    assert attendance.send_status_alerts() == 0  # the nightly run does not repeat itself

    (message,) = _alerts()
    assert message.recipient_list == [
        nqsw.email,
        "assessor@example.org",
        "manager@example.org",
    ]
    assert message.subject == "ASYE attendance for Amira Khan: cannot reach"
    assert "Cannot reach" in message.text_body
    assert "0 of 1 sessions" in message.text_body
    assert "<strong>Cannot reach</strong>" in message.html_body


def test_improving_is_silent_and_worsening_again_mails_again(
    programme: Programme,
    past_session: Callable[[], Session],
    make_nqsw: Callable[..., NQSW],
    make_booking: Callable[..., Booking],
) -> None:
    nqsw = make_nqsw()
    first = past_session()
    make_booking(nqsw, first)
    record = AttendanceRecord(session=first, nqsw=nqsw, mark=AttendanceMark.ABSENT)
    db.session.add(record)
    db.session.commit()
    attendance.send_status_alerts()

    record.mark = AttendanceMark.PRESENT  # corrected register
    db.session.commit()
    assert attendance.send_status_alerts() == 0
    record.mark = AttendanceMark.ABSENT
    db.session.commit()
    assert attendance.send_status_alerts() == 1
    assert len(_alerts()) == 2


def test_sent_alerts_can_be_listed_and_resent(
    programme: Programme,
    past_session: Callable[[], Session],
    make_nqsw: Callable[..., NQSW],
    make_booking: Callable[..., Booking],
) -> None:
    nqsw = make_nqsw()
    session = past_session()
    make_booking(nqsw, session)
    db.session.add(AttendanceRecord(session=session, nqsw=nqsw, mark=AttendanceMark.ABSENT))
    db.session.commit()
    attendance.send_status_alerts()
    ((message, who),) = attendance.alert_messages(programme)
    assert who == nqsw

    with pytest.raises(AttendanceError, match="still waiting"):
        attendance.resend_alert(message)
    message.status = MessageStatus.SENT
    message.attempts = 1
    db.session.commit()
    attendance.resend_alert(message)
    assert (message.status, message.attempts) == (MessageStatus.PENDING, 0)


def test_nobody_is_alerted_after_their_asye_year(
    programme: Programme,
    past_session: Callable[[], Session],
    make_nqsw: Callable[..., NQSW],
    make_booking: Callable[..., Booking],
) -> None:
    nqsw = make_nqsw(asye_start=date.today() - timedelta(days=400))
    session = past_session()
    make_booking(nqsw, session)
    db.session.add(AttendanceRecord(session=session, nqsw=nqsw, mark=AttendanceMark.ABSENT))
    db.session.commit()
    assert attendance.send_status_alerts() == 0
    assert _alerts() == []
