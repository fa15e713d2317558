"""Gathering an NQSW's expected sessions: bookings, cancellations, transfers, core courses."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, time, timedelta

from booking import attendance
from booking.attendance import Outcome
from booking.extensions import db
from booking.models import (
    NQSW,
    AttendanceMark,
    AttendanceRecord,
    AttendanceSettings,
    AttendanceStatus,
    Booking,
    BookingStatus,
    Course,
    CourseLength,
    Programme,
    Session,
    SessionStatus,
)
from tests.conftest import london


def _day(programme: Programme, days: int) -> date:
    return programme.starts_on + timedelta(days=days)


def _mark(nqsw: NQSW, session: Session, mark: AttendanceMark, minutes: int | None = None) -> None:
    db.session.add(
        AttendanceRecord(session=session, nqsw=nqsw, mark=mark, minutes_attended=minutes)
    )
    db.session.commit()


def test_marks_bookings_and_core_courses_make_the_record(
    programme: Programme,
    make_course: Callable[..., Course],
    make_session: Callable[..., Session],
    make_nqsw: Callable[..., NQSW],
    make_booking: Callable[..., Booking],
) -> None:
    nqsw = make_nqsw()
    courses = [make_course(code=f"c{i}", title=f"Course {i}") for i in range(5)]
    past = [make_session(courses[i], day=_day(programme, 10 + i)) for i in range(3)]
    future = make_session(courses[3], day=_day(programme, 200))
    make_session(courses[4], day=_day(programme, 300))  # core course, not booked
    optional = make_course(code="opt", optional=True)
    make_session(optional, day=_day(programme, 250))  # optional and unbooked: not expected
    for session in [*past, future]:
        make_booking(nqsw, session)
    _mark(nqsw, past[0], AttendanceMark.PRESENT)
    _mark(nqsw, past[1], AttendanceMark.LEFT_EARLY, minutes=60)  # under 80% of 420
    # past[2] has no mark yet: the register was not taken

    result = attendance.nqsw_attendance(nqsw, now=london(_day(programme, 100), time(12)))

    outcomes = [line.outcome for line in result.lines]
    assert outcomes == [
        Outcome.ATTENDED,
        Outcome.MISSED,
        Outcome.UNRECORDED,
        Outcome.UPCOMING,
        Outcome.TO_BOOK,
    ]
    assert (result.summary.attended, result.summary.expected_so_far) == (1, 2)
    assert result.summary.best_reachable == 80  # 4 of 5
    assert result.status is AttendanceStatus.AT_RISK


def test_transfers_count_once_at_the_new_date(
    programme: Programme,
    make_course: Callable[..., Course],
    make_session: Callable[..., Session],
    make_nqsw: Callable[..., NQSW],
    make_booking: Callable[..., Booking],
) -> None:
    nqsw = make_nqsw()
    course = make_course()
    first = make_session(course, day=_day(programme, 10))
    second = make_session(course, day=_day(programme, 40))
    new = make_booking(nqsw, second)
    make_booking(nqsw, first, status=BookingStatus.MOVED, moved_to_id=new.id)
    _mark(nqsw, second, AttendanceMark.PRESENT)

    result = attendance.nqsw_attendance(nqsw, now=london(_day(programme, 50), time(12)))

    assert [(line.session, line.outcome) for line in result.lines] == [(second, Outcome.ATTENDED)]
    assert result.summary.rate == 100


def test_cancellations_by_host_and_in_time_do_not_count_but_late_ones_do(
    programme: Programme,
    make_course: Callable[..., Course],
    make_session: Callable[..., Session],
    make_nqsw: Callable[..., NQSW],
    make_booking: Callable[..., Booking],
) -> None:
    nqsw = make_nqsw()
    hosted = make_session(make_course(optional=True), day=_day(programme, 10))
    hosted.status = SessionStatus.CANCELLED
    in_time = make_session(make_course(optional=True), day=_day(programme, 11))
    late = make_session(make_course(optional=True), day=_day(programme, 12))
    late_ahead = make_session(make_course(optional=True), day=_day(programme, 90))
    make_booking(nqsw, hosted)
    make_booking(nqsw, in_time, status=BookingStatus.CANCELLED)
    make_booking(nqsw, late, status=BookingStatus.CANCELLED, late_cancellation=True)
    make_booking(nqsw, late_ahead, status=BookingStatus.CANCELLED, late_cancellation=True)

    result = attendance.nqsw_attendance(nqsw, now=london(_day(programme, 60), time(12)))

    assert [line.outcome for line in result.lines] == [
        Outcome.NOT_COUNTED,
        Outcome.NOT_COUNTED,
        Outcome.MISSED,
        Outcome.FORFEITED,
    ]
    assert result.status is AttendanceStatus.CANNOT_REACH

    db.session.add(
        AttendanceSettings(
            programme_id=programme.id,
            late_counts_as_attended=True,
            apology_excuses=False,
            late_cancellation_counts_as_missed=False,
        )
    )
    db.session.commit()
    relaxed = attendance.nqsw_attendance(nqsw, now=london(_day(programme, 60), time(12)))
    assert relaxed.summary.expected_so_far == 0
    assert relaxed.status is AttendanceStatus.ON_TRACK


def test_part_time_nqsws_keep_core_courses_whose_dates_fall_in_their_longer_year(
    programme: Programme,
    make_course: Callable[..., Course],
    make_session: Callable[..., Session],
    make_nqsw: Callable[..., NQSW],
) -> None:
    course = make_course(length=CourseLength.HALF_DAY)
    make_session(course, day=_day(programme, 420))  # after a full-time year, inside a 0.6 one
    full_time = make_nqsw(fte=1.0)
    part_time = make_nqsw(fte=0.6)
    now = london(_day(programme, 30), time(12))

    assert attendance.nqsw_attendance(full_time, now=now).lines == []
    lines = attendance.nqsw_attendance(part_time, now=now).lines
    assert [line.outcome for line in lines] == [Outcome.TO_BOOK]

    later = london(_day(programme, 430), time(12))
    missed = attendance.nqsw_attendance(part_time, now=later)
    assert [line.outcome for line in missed.lines] == [Outcome.MISSED]
    assert missed.status is AttendanceStatus.CANNOT_REACH


def test_apologies_and_lateness_follow_the_programme_settings(
    programme: Programme,
    make_course: Callable[..., Course],
    make_session: Callable[..., Session],
    make_nqsw: Callable[..., NQSW],
    make_booking: Callable[..., Booking],
) -> None:
    nqsw = make_nqsw()
    apology = make_session(make_course(), day=_day(programme, 10))
    late = make_session(make_course(), day=_day(programme, 11))
    for session in (apology, late):
        make_booking(nqsw, session)
    _mark(nqsw, apology, AttendanceMark.ABSENT_APOLOGY)
    _mark(nqsw, late, AttendanceMark.LATE)
    now = london(_day(programme, 20), time(12))

    before = attendance.nqsw_attendance(nqsw, now=now)
    assert [line.outcome for line in before.lines] == [Outcome.MISSED, Outcome.ATTENDED]

    attendance.update_settings(
        programme,
        threshold_percent=75,
        min_share_percent=80,
        late_counts_as_attended=False,
        apology_excuses=True,
        late_cancellation_counts_as_missed=True,
    )
    after = attendance.nqsw_attendance(nqsw, now=now)
    assert [line.outcome for line in after.lines] == [Outcome.EXCUSED, Outcome.MISSED]


def test_programme_report_filters_and_sorts(
    programme: Programme,
    make_course: Callable[..., Course],
    make_session: Callable[..., Session],
    make_nqsw: Callable[..., NQSW],
    make_booking: Callable[..., Booking],
) -> None:
    course = make_course()
    session = make_session(course, day=_day(programme, 10))
    good, bad = make_nqsw(name="Zara Good"), make_nqsw(name="Adam Bad")
    withdrawn = make_nqsw(name="Will Drawn")
    withdrawn.withdrawn_at = london(_day(programme, 5), time(9))
    for nqsw in (good, bad, withdrawn):
        make_booking(nqsw, session)
    _mark(good, session, AttendanceMark.PRESENT)
    _mark(bad, session, AttendanceMark.ABSENT)
    now = london(_day(programme, 20), time(12))

    items = attendance.programme_attendance(programme, sort="rate", descending=True, now=now)
    assert [i.nqsw.name for i in items] == ["Zara Good", "Adam Bad"]
    only_bad = attendance.programme_attendance(
        programme, status=AttendanceStatus.CANNOT_REACH, now=now
    )
    assert [i.nqsw for i in only_bad] == [bad]
    assert (
        attendance.programme_attendance(programme, employer=good.employer, now=now)[0].nqsw == good
    )
    bars = attendance.chart_by_session(items)
    assert [(b.attended, b.expected, b.percent) for b in bars] == [(1, 2, 50)]


def test_cancelling_and_rebooking_the_same_session_counts_it_once(
    programme: Programme,
    make_course: Callable[..., Course],
    make_session: Callable[..., Session],
    make_nqsw: Callable[..., NQSW],
    make_booking: Callable[..., Booking],
) -> None:
    nqsw = make_nqsw()
    session = make_session(make_course(), day=_day(programme, 90))
    make_booking(nqsw, session, status=BookingStatus.CANCELLED, late_cancellation=True)
    make_booking(nqsw, session)

    result = attendance.nqsw_attendance(nqsw, now=london(_day(programme, 60), time(12)))

    assert [(line.session, line.outcome) for line in result.lines] == [(session, Outcome.UPCOMING)]
