"""Issue 14 item 6: the organiser, dismissed and hand-matched people, kept manual marks, old layouts."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from booking import attendance
from booking.attendance import MarkChange
from booking.errors import ImportRejected
from booking.extensions import db
from booking.models import (
    NQSW,
    AttendanceChange,
    AttendanceMark,
    AttendanceRecord,
    Booking,
    MarkSource,
    Session,
    User,
)

from ..conftest import sign_in
from .conftest import FIXTURES

UTF16 = (FIXTURES / "teams_report_utf16.csv").read_bytes()
REPORT = "\n".join(
    [
        "Name,Email,Duration,Role",
        "Fran Facilitator,fran.facilitator@trust.example,7h 0m 0s,Organizer",
        "Amira Khan,amira.khan@council.example,7h 0m 0s,Attendee",
        "Jo Guest,jo@home.example,2h 0m 0s,Attendee",
        "Someone Else,someone@elsewhere.example,30m,Attendee",
    ]
).encode()


@pytest.fixture
def register(
    make_session: Callable[..., Session],
    nqsw_with_email: Callable[..., NQSW],
    make_booking: Callable[..., Booking],
) -> tuple[Session, NQSW, NQSW]:
    # 09:30 to 16:30 two days ago (420 minutes), so its register page is open.
    session = make_session(day=date.today() - timedelta(days=2))
    amira = nqsw_with_email("amira.khan@council.example", "Amira Khan")
    jo = nqsw_with_email("jo.green@council.example", "Jo Green")
    for nqsw in (amira, jo):
        make_booking(nqsw, session)
    return session, amira, jo


def _unmatched(session: Session) -> list[str]:
    return sorted(u.name for u in attendance.unmatched_attendees(session))


def test_the_organiser_is_not_listed_as_unmatched(register, coordinator: User) -> None:
    session, _, _ = register
    attendance.import_teams_report(session, REPORT, by=coordinator, now=session.ends_at)
    assert _unmatched(session) == ["Jo Guest", "Someone Else"]


def test_dismissed_and_matched_people_stay_dealt_with_on_a_second_import(
    register, coordinator: User
) -> None:
    session, _, jo = register
    attendance.import_teams_report(session, REPORT, by=coordinator, now=session.ends_at)
    guest, stranger = sorted(attendance.unmatched_attendees(session), key=lambda u: u.name)
    attendance.resolve_unmatched(guest, jo, by=coordinator, now=session.ends_at)
    attendance.resolve_unmatched(stranger, None, by=coordinator, now=session.ends_at)

    attendance.import_teams_report(session, REPORT, by=coordinator, now=session.ends_at)

    assert _unmatched(session) == []
    record = db.session.scalar(select(AttendanceRecord).where(AttendanceRecord.nqsw_id == jo.id))
    db.session.refresh(record)
    # Jo's home account is hers: the second import credits her time again, not twice.
    assert (record.mark, record.minutes_attended, record.source) == (
        AttendanceMark.LEFT_EARLY,
        120,
        MarkSource.TEAMS,
    )


def test_matching_someone_whose_manual_mark_is_kept_lists_it_and_records_it(
    client, register, coordinator: User
) -> None:
    session, _, jo = register
    attendance.record_marks(
        session,
        [MarkChange(jo.id, AttendanceMark.ABSENT, None, None)],
        by=coordinator,
        now=session.starts_at,
    )
    attendance.import_teams_report(session, REPORT, by=coordinator, now=session.ends_at)
    guest = next(u for u in attendance.unmatched_attendees(session) if u.name == "Jo Guest")
    sign_in(client, coordinator)

    resolved = client.post(
        f"/attendance/unmatched/{guest.id}",
        data={f"u{guest.id}-nqsw_id": str(jo.id)},
        follow_redirects=True,
    )

    page = resolved.text
    assert "their manual mark was kept" in page
    kept = page.split('id="kept-manual"', 1)[1].split("</div>", 1)[0]
    assert 'Jo Green: kept "Absent"; Teams shows 120 minutes.' in kept
    notes = [
        c.note
        for c in db.session.scalars(select(AttendanceChange).where(AttendanceChange.note != ""))
    ]
    assert notes == ["Teams shows 120 minutes; the manual mark was kept"]
    history = page.split('id="history"', 1)[1]
    assert "Teams shows 120 minutes; the manual mark was kept" in history
    # The same report again adds no second history row.
    attendance.import_teams_report(session, REPORT, by=coordinator, now=session.ends_at)
    assert (
        db.session.scalars(select(AttendanceChange).where(AttendanceChange.note != ""))
        .all()
        .__len__()
        == 1
    )


def test_the_old_attendance_list_is_named_and_the_supported_layouts_listed() -> None:
    old = "Full Name\tUser Action\tTimestamp\nAmira Khan\tJoined\t3/2/2026, 9:30:00 AM\n"
    with pytest.raises(ImportRejected) as caught:
        attendance.parse_teams_report(old.encode("utf-16"))
    [(line, reason)] = caught.value.problems
    assert line == 1
    assert "older Teams attendance list (Full Name, User Action, Timestamp)" in reason
    assert "no email addresses" in reason
    assert "a Participants section with the columns Name, Email and Duration" in reason

    with pytest.raises(ImportRejected) as other:
        attendance.parse_teams_report(b"a,b\n1,2\n")
    assert (
        "This service reads the attendance report downloaded from a Teams meeting"
        in (other.value.problems[0][1])
    )


def test_the_register_page_lists_the_supported_layouts_on_a_bad_upload(
    client, register, coordinator: User
) -> None:
    session, _, _ = register
    sign_in(client, coordinator)
    response = client.post(
        f"/attendance/sessions/{session.id}/import",
        data={"file": (io.BytesIO(b"Full Name,User Action,Timestamp\nA,Joined,now\n"), "old.csv")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert "older Teams attendance list" in response.text
