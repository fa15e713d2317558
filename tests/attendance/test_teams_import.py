"""Importing Microsoft Teams attendance reports into a register."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from booking import attendance
from booking.attendance import MarkChange
from booking.errors import ImportRejected
from booking.extensions import db
from booking.models import (
    NQSW,
    AttendanceMark,
    AttendanceRecord,
    Booking,
    MarkSource,
    Session,
    UnmatchedAttendee,
    User,
)

from .conftest import FIXTURES

UTF16 = (FIXTURES / "teams_report_utf16.csv").read_bytes()
UTF8 = (FIXTURES / "teams_report_utf8.csv").read_bytes()
BAD = (FIXTURES / "teams_report_bad.csv").read_bytes()


def test_the_utf16_export_is_read_from_its_per_visit_section() -> None:
    assert UTF16.startswith(b"\xff\xfe")
    people = {p.email or p.name: p for p in attendance.parse_teams_report(UTF16)}
    assert people["ben.oneill@council.example"].minutes == 340  # 2h + 3h 40m rejoined
    assert people["ben.oneill@council.example"].lines == [21, 22]
    assert people["amira.khan@council.example"].minutes == 410
    assert people["Jo Guest (Unverified)"].email == ""
    assert len(people) == 5


def test_the_simple_utf8_csv_sums_rejoins() -> None:
    people = {p.email: p.minutes for p in attendance.parse_teams_report(UTF8)}
    assert people == {
        "amira.khan@council.example": 420,
        "ben.oneill@council.example": 360,
        "someone.else@elsewhere.example": 30,
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b\n1,2\n", "no participants table"),
        ("Name,Email,Duration\n", "no rows"),
        ("Name,Email,Duration\n,,1h\n", "line 2: no name or email"),
    ],
)
def test_unreadable_files_are_refused(text: str, message: str) -> None:
    with pytest.raises(ImportRejected, match=message):
        attendance.parse_teams_report(text.encode())


@pytest.fixture
def register(
    make_session: Callable[..., Session],
    nqsw_with_email: Callable[..., NQSW],
    make_booking: Callable[..., Booking],
) -> tuple[Session, dict[str, NQSW]]:
    session = make_session()  # 09:30 to 16:30: 420 minutes
    people = {
        "amira": nqsw_with_email("amira.khan@council.example", "Amira Khan"),
        "ben": nqsw_with_email("ben.oneill@council.example", "Ben O'Neill"),
        "cara": nqsw_with_email("cara.dunn@council.example", "Cara Dunn"),
        "dev": nqsw_with_email("dev.patel@council.example", "Dev Patel"),
    }
    for nqsw in people.values():
        make_booking(nqsw, session)
    return session, people


def _marks(session: Session) -> dict[str, tuple[AttendanceMark, int | None, MarkSource]]:
    db.session.expire_all()
    return {
        r.nqsw.name: (r.mark, r.minutes_attended, r.source)
        for r in db.session.scalars(
            select(AttendanceRecord).where(AttendanceRecord.session_id == session.id)
        )
    }


def test_import_fills_the_register_and_lists_strangers(
    register: tuple[Session, dict[str, NQSW]], coordinator: User
) -> None:
    session, _ = register
    result = attendance.import_teams_report(session, UTF16, by=coordinator, now=session.ends_at)

    teams = MarkSource.TEAMS
    assert _marks(session) == {
        "Amira Khan": (AttendanceMark.PRESENT, 410, teams),
        "Ben O'Neill": (AttendanceMark.PRESENT, 340, teams),  # 81% of the session
        "Cara Dunn": (AttendanceMark.LEFT_EARLY, 180, teams),  # 43%: partial
        "Dev Patel": (AttendanceMark.ABSENT, 0, teams),  # booked, not in the report
    }
    assert [n.name for n in result.absent] == ["Dev Patel"]
    # The organiser (Role "Organizer") is not an attendee, so is not listed as unmatched.
    assert [u.name for u in attendance.unmatched_attendees(session)] == ["Jo Guest (Unverified)"]


def test_min_share_is_a_programme_setting(
    register: tuple[Session, dict[str, NQSW]], coordinator: User
) -> None:
    session, _ = register
    session.course.programme.attendance_min_share_percent = 85
    db.session.commit()
    attendance.import_teams_report(session, UTF16, by=coordinator, now=session.ends_at)
    assert _marks(session)["Ben O'Neill"][0] is AttendanceMark.LEFT_EARLY


def test_manual_marks_are_kept_and_reported(
    register: tuple[Session, dict[str, NQSW]], coordinator: User
) -> None:
    session, people = register
    attendance.record_marks(
        session,
        [
            MarkChange(people["cara"].id, AttendanceMark.ABSENT_APOLOGY, None, None),
            MarkChange(people["dev"].id, AttendanceMark.ABSENT_APOLOGY, None, None),
            MarkChange(people["amira"].id, AttendanceMark.PRESENT, None, None),
        ],
        by=coordinator,
        now=session.starts_at,
    )
    result = attendance.import_teams_report(session, UTF16, by=coordinator, now=session.ends_at)
    manual = MarkSource.MANUAL
    marks = _marks(session)
    assert marks["Cara Dunn"] == (AttendanceMark.ABSENT_APOLOGY, None, manual)
    assert marks["Dev Patel"] == (AttendanceMark.ABSENT_APOLOGY, None, manual)
    assert marks["Amira Khan"] == (AttendanceMark.PRESENT, None, manual)
    # Only the mark Teams contradicts is reported; Dev's apology and Amira's presence agree.
    assert [(n.name, mark, minutes) for n, mark, minutes in result.kept_manual] == [
        ("Cara Dunn", AttendanceMark.ABSENT_APOLOGY, 180)
    ]


def test_a_second_import_replaces_imported_marks_and_strangers(
    register: tuple[Session, dict[str, NQSW]], coordinator: User
) -> None:
    session, _ = register
    attendance.import_teams_report(session, UTF16, by=coordinator, now=session.ends_at)
    attendance.import_teams_report(session, UTF8, by=coordinator, now=session.ends_at)
    marks = _marks(session)
    assert marks["Ben O'Neill"][:2] == (AttendanceMark.PRESENT, 360)
    assert marks["Cara Dunn"][:2] == (AttendanceMark.ABSENT, 0)
    assert [u.name for u in attendance.unmatched_attendees(session)] == ["Someone Else"]


def test_a_bad_file_names_its_lines_and_changes_nothing(
    register: tuple[Session, dict[str, NQSW]], coordinator: User
) -> None:
    session, _ = register
    attendance.import_teams_report(session, UTF16, by=coordinator, now=session.ends_at)
    before = _marks(session)
    with pytest.raises(ImportRejected) as caught:
        attendance.import_teams_report(session, BAD, by=coordinator, now=session.ends_at)
    assert [line for line, _ in caught.value.problems] == [3, 4]
    assert "line 3: cannot read the duration 'about an hour'" in caught.value.message
    assert _marks(session) == before
    assert len(attendance.unmatched_attendees(session)) == 1


def test_strangers_can_be_matched_or_dismissed(
    register: tuple[Session, dict[str, NQSW]],
    coordinator: User,
    nqsw_with_email: Callable[..., NQSW],
) -> None:
    session, _ = register
    attendance.import_teams_report(session, UTF16, by=coordinator, now=session.ends_at)
    [guest] = attendance.unmatched_attendees(session)
    personal = nqsw_with_email("jo.g@home.example", "Jo Green")  # joined from a home account
    attendance.resolve_unmatched(guest, personal, by=coordinator, now=session.ends_at)
    assert _marks(session)["Jo Green"][:2] == (AttendanceMark.LEFT_EARLY, 60)

    attendance.import_teams_report(session, UTF8, by=coordinator, now=session.ends_at)
    [stranger] = attendance.unmatched_attendees(session)
    attendance.resolve_unmatched(stranger, None, by=coordinator, now=session.ends_at)

    assert attendance.unmatched_attendees(session) == []
    assert db.session.scalar(select(func.count(UnmatchedAttendee.id))) == 2


def test_the_2021_meeting_summary_shape_without_a_byte_order_mark() -> None:
    text = "\r\n".join(
        [
            "Meeting Summary",
            "Total Number of Participants\t2",
            "Meeting Title\tASYE session",
            "",
            "Full Name\tJoin Time\tLeave Time\tDuration\tEmail\tRole\tParticipant ID (UPN)",
            "Amira Khan\t3/2/2026, 9:30:00 AM\t3/2/2026, 12:00:00 PM\t2h 30m\t\tAttendee\t"
            "amira.khan@council.example",
            "Amira Khan\t3/2/2026, 1:00:00 PM\t3/2/2026, 4:30:00 PM\t3h 30m\t\tAttendee\t"
            "amira.khan@council.example",
            "Ben O'Neill\t3/2/2026, 9:30:00 AM\t3/2/2026, 10:00:00 AM\t\tben@x.example\tAttendee\t",
        ]
    )
    people = {p.email: p.minutes for p in attendance.parse_teams_report(text.encode("utf-16-le"))}
    assert people == {"amira.khan@council.example": 360, "ben@x.example": 30}
