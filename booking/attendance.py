"""Attendance: registers, Teams report imports, the 75% threshold and at-risk alerts.

The threshold arithmetic is one pure function, ``attendance_status``; everything else
gathers rows for it or changes registers. Counting rules (see docs/attendance.md):

- A session counts once it has ended, if the NQSW was expected at it: a live booking
  on a session the host did not cancel, a register mark, or a late cancellation
  (when the programme counts those as missed). Moved bookings count once, at the
  new date. Host-cancelled sessions and cancellations before the cut-off do not count.
- Core (non-optional) courses the NQSW has not booked are still expected: each counts
  as one session still to come while a date in their ASYE year lies ahead, and as
  missed once every such date has passed.
- Rate = attended / expected sessions that have ended; best reachable = (attended +
  still possible) / (expected so far + late-cancelled ahead + still possible).
"""

from __future__ import annotations

import codecs
import csv
import enum
import io
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from .errors import BookingError, ImportRejected, InvalidInput
from .extensions import db
from .models import (
    LONDON,
    NQSW,
    AttendanceAlert,
    AttendanceChange,
    AttendanceMark,
    AttendanceRecord,
    AttendanceSettings,
    AttendanceStatus,
    Booking,
    BookingStatus,
    Course,
    Employer,
    MarkSource,
    MessageStatus,
    OutboxMessage,
    Programme,
    Session,
    SessionStatus,
    UnmatchedAttendee,
    User,
    london_today,
    utcnow,
)
from .notifications import queue_message, resend

REGISTER_OPENS_BEFORE = timedelta(minutes=15)
ALERT_KIND = "attendance_status_changed"


class AttendanceError(BookingError):
    """A register or import request the attendance rules refuse."""


class RegisterNotOpen(AttendanceError):
    """The register cannot be taken yet, or not at all for this session."""


class RegisterConflict(AttendanceError):
    """Someone else changed a mark since the page was loaded."""


# --- The threshold: one pure function ------------------------------------------------


class Outcome(enum.Enum):
    ATTENDED = "attended"
    MISSED = "missed"
    EXCUSED = "excused"  # absent with apology, when the programme excuses it
    UPCOMING = "upcoming"
    UNRECORDED = "unrecorded"  # ended, but the register has no mark yet
    FORFEITED = "forfeited"  # cancelled late; the session is still ahead
    NOT_COUNTED = "not_counted"  # cancelled by the host, or cancelled in good time
    TO_BOOK = "to_book"  # a core course not booked, with a date still ahead

    @property
    def label(self) -> str:
        return {
            Outcome.ATTENDED: "Attended",
            Outcome.MISSED: "Missed",
            Outcome.EXCUSED: "Excused",
            Outcome.UPCOMING: "Upcoming",
            Outcome.UNRECORDED: "Register not taken yet",
            Outcome.FORFEITED: "Late cancellation (counts as missed)",
            Outcome.NOT_COUNTED: "Not counted",
            Outcome.TO_BOOK: "Not booked yet",
        }[self]


_STILL_POSSIBLE = {Outcome.UPCOMING, Outcome.UNRECORDED, Outcome.TO_BOOK}


@dataclass(frozen=True)
class AttendanceSummary:
    """An NQSW's attendance against the threshold."""

    attended: int
    expected_so_far: int
    still_possible: int
    forfeited: int
    threshold_percent: int
    status: AttendanceStatus

    @property
    def rate(self) -> float | None:
        """Return the percentage attended so far, or None before anything counts."""
        if self.expected_so_far == 0:
            return None
        return 100 * self.attended / self.expected_so_far

    @property
    def best_reachable(self) -> float | None:
        """Return the percentage reached by attending everything still possible."""
        total = self.expected_so_far + self.forfeited + self.still_possible
        if total == 0:
            return None
        return 100 * (self.attended + self.still_possible) / total


def attendance_status(
    outcomes: Iterable[Outcome], *, threshold_percent: int, remaining: int = 0
) -> AttendanceSummary:
    """Compute rate, best reachable rate and status from session outcomes.

    ``remaining`` adds sessions still expected that are not among ``outcomes``
    (core courses not booked yet). Integer arithmetic keeps 75% exactly 75%.
    """
    counts = Counter(outcomes)
    attended = counts[Outcome.ATTENDED]
    expected = attended + counts[Outcome.MISSED]
    forfeited = counts[Outcome.FORFEITED]
    possible = sum(counts[o] for o in _STILL_POSSIBLE) + remaining
    total = expected + forfeited + possible
    if (attended + possible) * 100 < threshold_percent * total:
        status = AttendanceStatus.CANNOT_REACH
    elif attended * 100 < threshold_percent * expected:
        status = AttendanceStatus.AT_RISK
    else:
        status = AttendanceStatus.ON_TRACK
    return AttendanceSummary(attended, expected, possible, forfeited, threshold_percent, status)


# --- Gathering rows for the computation ----------------------------------------------


def settings_for(programme: Programme) -> AttendanceSettings:
    """Return the programme's counting rules, with defaults if never saved."""
    found = db.session.get(AttendanceSettings, programme.id)
    if found is not None:
        return found
    return AttendanceSettings(
        programme_id=programme.id,
        late_counts_as_attended=True,
        apology_excuses=False,
        late_cancellation_counts_as_missed=True,
    )


def session_minutes(session: Session) -> int:
    """Return the session's scheduled length in whole minutes."""
    return int((session.ends_at - session.starts_at).total_seconds() // 60)


def _share_met(minutes: int, session: Session, min_share_percent: int) -> bool:
    return minutes * 100 >= min_share_percent * session_minutes(session)


def mark_outcome(
    record: AttendanceRecord, settings: AttendanceSettings, min_share_percent: int
) -> Outcome:
    """Turn a register mark into attended, missed or excused under the programme's rules."""
    minutes = record.minutes_attended
    session = record.session
    match record.mark:
        case AttendanceMark.PRESENT:
            return Outcome.ATTENDED
        case AttendanceMark.LATE:
            if not settings.late_counts_as_attended:
                return Outcome.MISSED
            if minutes is not None and not _share_met(minutes, session, min_share_percent):
                return Outcome.MISSED
            return Outcome.ATTENDED
        case AttendanceMark.LEFT_EARLY:
            if minutes is not None and _share_met(minutes, session, min_share_percent):
                return Outcome.ATTENDED
            return Outcome.MISSED
        case AttendanceMark.ABSENT:
            return Outcome.MISSED
        case AttendanceMark.ABSENT_APOLOGY:
            return Outcome.EXCUSED if settings.apology_excuses else Outcome.MISSED


@dataclass(frozen=True)
class SessionLine:
    """One expected (or formerly expected) session on an NQSW's attendance record."""

    course: Course
    session: Session | None
    outcome: Outcome
    record: AttendanceRecord | None = None
    note: str = ""

    @property
    def starts_at(self) -> datetime | None:
        return self.session.starts_at if self.session else None


@dataclass(frozen=True)
class NQSWAttendance:
    """An NQSW's session lines and their summary."""

    nqsw: NQSW
    lines: list[SessionLine]
    summary: AttendanceSummary

    @property
    def status(self) -> AttendanceStatus:
        return self.summary.status


def _lines_for(
    nqsw: NQSW,
    records: dict[int, AttendanceRecord],
    settings: AttendanceSettings,
    now: datetime,
) -> list[SessionLine]:
    programme = nqsw.programme
    share = programme.attendance_min_share_percent
    lines: list[SessionLine] = []
    covered: set[int] = set()
    used: set[int] = set()

    def from_record(record: AttendanceRecord, note: str = "") -> SessionLine:
        used.add(record.session_id)
        covered.add(record.session.course_id)
        outcome = mark_outcome(record, settings, share)
        return SessionLine(record.session.course, record.session, outcome, record, note)

    bookings = sorted(nqsw.bookings, key=lambda b: (b.session.starts_at, b.id))
    live = {b.session_id for b in bookings if b.status is BookingStatus.BOOKED}
    for booking in bookings:
        session = booking.session
        if (
            session.course.programme_id != programme.id
            or booking.status is BookingStatus.MOVED  # a transfer counts once, at the new date
            or session.id in used
            or (booking.status is BookingStatus.CANCELLED and session.id in live)  # rebooked
        ):
            continue
        if session.status is SessionStatus.CANCELLED:
            used.add(session.id)
            lines.append(
                SessionLine(session.course, session, Outcome.NOT_COUNTED, None, "Cancelled by host")
            )
            continue
        record = records.get(session.id)
        if record is not None:
            lines.append(from_record(record))
            continue
        used.add(session.id)
        if booking.status is BookingStatus.CANCELLED:
            if booking.late_cancellation and settings.late_cancellation_counts_as_missed:
                covered.add(session.course_id)
                outcome = Outcome.MISSED if session.starts_at <= now else Outcome.FORFEITED
                lines.append(
                    SessionLine(session.course, session, outcome, None, "Late cancellation")
                )
            else:
                lines.append(
                    SessionLine(
                        session.course, session, Outcome.NOT_COUNTED, None, "Cancelled in time"
                    )
                )
            continue
        covered.add(session.course_id)
        outcome = Outcome.UNRECORDED if session.ends_at <= now else Outcome.UPCOMING
        lines.append(SessionLine(session.course, session, outcome))
    for session_id, record in records.items():
        if session_id not in used and record.session.status is SessionStatus.SCHEDULED:
            lines.append(from_record(record, "On the register without a booking"))
    for course in programme.courses:
        if course.optional or course.id in covered:
            continue
        dates = [
            s
            for s in course.sessions
            if s.status is SessionStatus.SCHEDULED
            and nqsw.asye_start <= s.local_date <= nqsw.asye_end
        ]
        if any(s.starts_at > now for s in dates):
            lines.append(SessionLine(course, None, Outcome.TO_BOOK, None, "Core course"))
        elif dates:
            lines.append(
                SessionLine(
                    course, None, Outcome.MISSED, None, "Core course; every date has passed"
                )
            )
    lines.sort(key=lambda line: (line.session is None, line.starts_at or now))
    return lines


def _summarise(
    nqsw: NQSW, records: dict[int, AttendanceRecord], settings: AttendanceSettings, now: datetime
) -> NQSWAttendance:
    lines = _lines_for(nqsw, records, settings, now)
    summary = attendance_status(
        (line.outcome for line in lines),
        threshold_percent=nqsw.programme.attendance_threshold_percent,
    )
    return NQSWAttendance(nqsw, lines, summary)


def _records_by_nqsw(nqsw_ids: Sequence[int]) -> dict[int, dict[int, AttendanceRecord]]:
    found: dict[int, dict[int, AttendanceRecord]] = {i: {} for i in nqsw_ids}
    if not nqsw_ids:
        return found
    for record in db.session.scalars(
        select(AttendanceRecord)
        .where(AttendanceRecord.nqsw_id.in_(nqsw_ids))
        .options(selectinload(AttendanceRecord.session).selectinload(Session.course))
    ):
        found[record.nqsw_id][record.session_id] = record
    return found


def nqsw_attendance(nqsw: NQSW, *, now: datetime | None = None) -> NQSWAttendance:
    """Return one NQSW's attendance, session by session, with their status."""
    now = now or utcnow()
    records = _records_by_nqsw([nqsw.id])[nqsw.id]
    return _summarise(nqsw, records, settings_for(nqsw.programme), now)


def started_outcomes(
    bookings: Sequence[Booking], *, now: datetime | None = None
) -> dict[int, Outcome]:
    """Return, by booking id, what happened at each booked session that has started.

    Attended, missed or excused once the register has a mark; unrecorded until then.
    Bookings on sessions still ahead are left out.
    """
    now = now or utcnow()
    started = [b for b in bookings if b.session.starts_at <= now]
    if not started:
        return {}
    records = {
        (r.session_id, r.nqsw_id): r
        for r in db.session.scalars(
            select(AttendanceRecord).where(
                AttendanceRecord.session_id.in_({b.session_id for b in started}),
                AttendanceRecord.nqsw_id.in_({b.nqsw_id for b in started}),
            )
        )
    }
    found: dict[int, Outcome] = {}
    for booking in started:
        record = records.get((booking.session_id, booking.nqsw_id))
        programme = booking.session.course.programme
        found[booking.id] = (
            mark_outcome(record, settings_for(programme), programme.attendance_min_share_percent)
            if record is not None
            else Outcome.UNRECORDED
        )
    return found


SORT_KEYS: dict[str, Callable[[NQSWAttendance], tuple[object, ...]]] = {
    "name": lambda a: (a.nqsw.name.lower(),),
    "employer": lambda a: (a.nqsw.employer.name.lower(), a.nqsw.name.lower()),
    "rate": lambda a: (a.summary.rate is None, a.summary.rate or 0, a.nqsw.name.lower()),
    "best": lambda a: (
        a.summary.best_reachable is None,
        a.summary.best_reachable or 0,
        a.nqsw.name.lower(),
    ),
    "status": lambda a: (-a.status.severity, a.nqsw.name.lower()),
}


def programme_attendance(
    programme: Programme,
    *,
    employer: Employer | None = None,
    status: AttendanceStatus | None = None,
    course: Course | None = None,
    sort: str = "name",
    descending: bool = False,
    now: datetime | None = None,
) -> list[NQSWAttendance]:
    """Return the programme's active NQSWs' attendance, filtered and sorted."""
    now = now or utcnow()
    query = (
        select(NQSW)
        .where(NQSW.programme_id == programme.id, NQSW.withdrawn_at.is_(None))
        .options(
            selectinload(NQSW.user),
            selectinload(NQSW.employer),
            selectinload(NQSW.bookings).selectinload(Booking.session).selectinload(Session.course),
        )
    )
    if employer is not None:
        query = query.where(NQSW.employer_id == employer.id)
    nqsws = db.session.scalars(query).all()
    records = _records_by_nqsw([n.id for n in nqsws])
    settings = settings_for(programme)
    items = [_summarise(n, records[n.id], settings, now) for n in nqsws]
    if status is not None:
        items = [i for i in items if i.status is status]
    if course is not None:
        items = [i for i in items if any(line.course.id == course.id for line in i.lines)]
    items.sort(key=SORT_KEYS.get(sort, SORT_KEYS["name"]), reverse=descending)
    return items


@dataclass(frozen=True)
class Bar:
    """One bar of an attendance chart: attended out of expected."""

    label: str
    attended: int
    expected: int

    @property
    def percent(self) -> int:
        return round(100 * self.attended / self.expected) if self.expected else 0


def chart_by_session(items: Sequence[NQSWAttendance], course: Course | None = None) -> list[Bar]:
    """Return attended/expected per session that has taken place, in date order."""
    tally: dict[int, tuple[Session, int, int]] = {}
    for item in items:
        for line in item.lines:
            if line.session is None or line.outcome not in (Outcome.ATTENDED, Outcome.MISSED):
                continue
            if course is not None and line.course.id != course.id:
                continue
            session, attended, expected = tally.get(line.session.id, (line.session, 0, 0))
            tally[line.session.id] = (
                session,
                attended + (line.outcome is Outcome.ATTENDED),
                expected + 1,
            )
    ordered = sorted(tally.values(), key=lambda t: t[0].starts_at)
    return [
        Bar(f"{s.course.title}, {s.local_start:%-d %b %Y}", attended, expected)
        for s, attended, expected in ordered
    ]


def chart_by_employer(items: Sequence[NQSWAttendance]) -> list[Bar]:
    """Return attended/expected so far per employer, by name."""
    tally: dict[str, tuple[int, int]] = {}
    for item in items:
        attended, expected = tally.get(item.nqsw.employer.name, (0, 0))
        tally[item.nqsw.employer.name] = (
            attended + item.summary.attended,
            expected + item.summary.expected_so_far,
        )
    return [Bar(name, a, e) for name, (a, e) in sorted(tally.items())]


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


def rates_csv(items: Sequence[NQSWAttendance]) -> str:
    """Return the NQSWs' rates and statuses as CSV."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "name",
            "email",
            "employer",
            "attended",
            "expected_so_far",
            "still_possible",
            "rate_percent",
            "best_reachable_percent",
            "threshold_percent",
            "status",
        ]
    )
    for item in items:
        s = item.summary
        writer.writerow(
            [
                item.nqsw.name,
                item.nqsw.email,
                item.nqsw.employer.name,
                s.attended,
                s.expected_so_far,
                s.still_possible,
                _pct(s.rate),
                _pct(s.best_reachable),
                s.threshold_percent,
                s.status.value,
            ]
        )
    return out.getvalue()


def report_table(programme: Programme, items: Sequence[NQSWAttendance]) -> str:
    """Return the rates table as aligned plain text for the command line."""
    header = ("NQSW", "Employer", "Attended", "Rate %", "Best %", "Status")
    rows = [
        (
            i.nqsw.name,
            i.nqsw.employer.name,
            f"{i.summary.attended}/{i.summary.expected_so_far}",
            _pct(i.summary.rate) or "-",
            _pct(i.summary.best_reachable) or "-",
            i.status.label,
        )
        for i in items
    ]
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    lines = [
        f"{programme.name}: threshold {programme.attendance_threshold_percent}%",
        "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.append(f"{len(rows)} NQSW(s).")
    return "\n".join(line.rstrip() for line in lines)


def registers_csv(programme: Programme) -> str:
    """Return every register mark in the programme as CSV, by session."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "session_id",
            "course",
            "starts_at_london",
            "name",
            "email",
            "employer",
            "mark",
            "minutes_attended",
            "source",
            "updated_at",
            "updated_by",
        ]
    )
    records = db.session.scalars(
        select(AttendanceRecord)
        .join(Session)
        .join(Course)
        .where(Course.programme_id == programme.id)
        .order_by(Session.starts_at, AttendanceRecord.id)
    )
    for r in records:
        writer.writerow(
            [
                r.session_id,
                r.session.course.title,
                f"{r.session.local_start:%Y-%m-%d %H:%M}",
                r.nqsw.name,
                r.nqsw.email,
                r.nqsw.employer.name,
                r.mark.value,
                "" if r.minutes_attended is None else r.minutes_attended,
                r.source.value,
                f"{r.updated_at.astimezone(LONDON):%Y-%m-%d %H:%M}",
                r.updated_by.email if r.updated_by else "",
            ]
        )
    return out.getvalue()


def update_settings(
    programme: Programme,
    *,
    threshold_percent: int,
    min_share_percent: int,
    late_counts_as_attended: bool,
    apology_excuses: bool,
    late_cancellation_counts_as_missed: bool,
) -> AttendanceSettings:
    """Change the programme's threshold and counting rules."""
    for value, name in ((threshold_percent, "threshold"), (min_share_percent, "min_share")):
        if not 1 <= value <= 100:
            raise InvalidInput("Enter a percentage from 1 to 100.", field=name)
    programme.attendance_threshold_percent = threshold_percent
    programme.attendance_min_share_percent = min_share_percent
    settings = db.session.get(AttendanceSettings, programme.id)
    if settings is None:
        settings = AttendanceSettings(programme_id=programme.id)
        db.session.add(settings)
    settings.late_counts_as_attended = late_counts_as_attended
    settings.apology_excuses = apology_excuses
    settings.late_cancellation_counts_as_missed = late_cancellation_counts_as_missed
    db.session.commit()
    return settings


# --- Registers -----------------------------------------------------------------------


@dataclass(frozen=True)
class RegisterRow:
    """One person on a session's register."""

    nqsw: NQSW
    record: AttendanceRecord | None


@dataclass(frozen=True)
class MarkChange:
    """A coordinator's change to one mark; ``version`` is the one they saw (None: no mark)."""

    nqsw_id: int
    mark: AttendanceMark
    minutes: int | None
    version: int | None


def programme_sessions(programme: Programme) -> list[Session]:
    """Return the programme's sessions in date order, for the list of registers."""
    return list(
        db.session.scalars(
            select(Session)
            .join(Course)
            .where(Course.programme_id == programme.id)
            .order_by(Session.starts_at)
        )
    )


def programme_employers(programme: Programme) -> list[Employer]:
    """Return the employers with NQSWs on the programme, by name."""
    return list(
        db.session.scalars(
            select(Employer)
            .where(
                Employer.id.in_(select(NQSW.employer_id).where(NQSW.programme_id == programme.id))
            )
            .order_by(Employer.name)
        )
    )


def programme_nqsws(programme_id: int) -> list[NQSW]:
    """Return the programme's NQSWs by name, to match Teams attendees against."""
    nqsws = db.session.scalars(
        select(NQSW).where(NQSW.programme_id == programme_id).options(selectinload(NQSW.user))
    ).all()
    return sorted(nqsws, key=lambda n: (n.name.lower(), n.id))


def register_opens_at(session: Session) -> datetime:
    """Return when the session's register can first be taken."""
    return session.starts_at - REGISTER_OPENS_BEFORE


def check_register_open(session: Session, now: datetime | None = None) -> None:
    """Refuse a register for a cancelled session or one more than 15 minutes away."""
    now = now or utcnow()
    if session.status is SessionStatus.CANCELLED:
        raise RegisterNotOpen("This session was cancelled, so it has no register.")
    opens = register_opens_at(session)
    if now < opens:
        raise RegisterNotOpen(
            f"The register opens at {opens.astimezone(LONDON):%H:%M on %A %-d %B %Y}, "
            "15 minutes before the session starts."
        )


def register_rows(session: Session) -> list[RegisterRow]:
    """Return everyone booked on the session or already on its register, by name."""
    records = {
        r.nqsw_id: r
        for r in db.session.scalars(
            select(AttendanceRecord).where(AttendanceRecord.session_id == session.id)
        )
    }
    people = {
        b.nqsw_id: b.nqsw
        for b in db.session.scalars(
            select(Booking).where(
                Booking.session_id == session.id, Booking.status == BookingStatus.BOOKED
            )
        )
    }
    for record in records.values():
        people.setdefault(record.nqsw_id, record.nqsw)
    rows = [RegisterRow(n, records.get(n.id)) for n in people.values()]
    return sorted(rows, key=lambda r: (r.nqsw.name.lower(), r.nqsw.id))


def register_history(session: Session) -> list[AttendanceChange]:
    """Return the register's audit trail, newest first."""
    return list(
        db.session.scalars(
            select(AttendanceChange)
            .join(AttendanceRecord)
            .where(AttendanceRecord.session_id == session.id)
            .order_by(AttendanceChange.changed_at.desc(), AttendanceChange.id.desc())
        )
    )


def _check_minutes(session: Session, nqsw: NQSW, mark: AttendanceMark, minutes: int | None) -> None:
    if mark is AttendanceMark.LEFT_EARLY and minutes is None:
        raise InvalidInput(f"Enter the minutes {nqsw.name} attended before leaving early.")
    if minutes is not None and not 0 <= minutes <= session_minutes(session):
        raise InvalidInput(
            f"Minutes for {nqsw.name} must be between 0 and {session_minutes(session)}."
        )


def _write_mark(
    session: Session,
    nqsw: NQSW,
    mark: AttendanceMark,
    minutes: int | None,
    *,
    seen_version: int | None,
    source: MarkSource,
    by: User | None,
    now: datetime,
) -> bool:
    """Insert or update one mark if nobody changed it since ``seen_version``; audit it.

    Return False on a conflict. The guarded UPDATE (version = seen) and the unique
    (session, NQSW) constraint make the check hold under concurrent requests.
    """
    record = db.session.scalar(
        select(AttendanceRecord).where(
            AttendanceRecord.session_id == session.id, AttendanceRecord.nqsw_id == nqsw.id
        )
    )
    if record is None:
        if seen_version is not None:
            return False
        record = AttendanceRecord(
            session_id=session.id,
            nqsw_id=nqsw.id,
            mark=mark,
            minutes_attended=minutes,
            source=source,
            version=1,
            updated_at=now,
            updated_by_id=by.id if by else None,
        )
        try:
            with db.session.begin_nested():
                db.session.add(record)
        except IntegrityError:
            return False
        old_mark, old_minutes = None, None
    else:
        if (record.mark, record.minutes_attended) == (mark, minutes):
            return True
        if seen_version != record.version:
            return False
        old_mark, old_minutes = record.mark, record.minutes_attended
        result = db.session.execute(
            update(AttendanceRecord)
            .where(AttendanceRecord.id == record.id, AttendanceRecord.version == seen_version)
            .values(
                mark=mark,
                minutes_attended=minutes,
                source=source,
                version=AttendanceRecord.version + 1,
                updated_at=now,
                updated_by_id=by.id if by else None,
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return False
        db.session.expire(record)
    db.session.add(
        AttendanceChange(
            record_id=record.id,
            changed_by_id=by.id if by else None,
            changed_at=now,
            source=source,
            old_mark=old_mark,
            new_mark=mark,
            old_minutes=old_minutes,
            new_minutes=minutes,
        )
    )
    return True


def mark_problems(session: Session, changes: Sequence[MarkChange]) -> dict[int, str]:
    """Return, by NQSW id, why each change the rules refuse is refused (empty when all are fine)."""
    nqsws = {r.nqsw.id: r.nqsw for r in register_rows(session)}
    problems: dict[int, str] = {}
    for change in changes:
        nqsw = nqsws.get(change.nqsw_id)
        if nqsw is None:
            problems[change.nqsw_id] = "That person is not on this session's register."
            continue
        try:
            _check_minutes(session, nqsw, change.mark, change.minutes)
        except InvalidInput as error:
            problems[change.nqsw_id] = error.message
    return problems


def record_marks(
    session: Session,
    changes: Sequence[MarkChange],
    *,
    by: User,
    now: datetime | None = None,
) -> int:
    """Save a coordinator's register changes, all or none; return how many were saved."""
    now = now or utcnow()
    check_register_open(session, now)
    nqsws = {r.nqsw.id: r.nqsw for r in register_rows(session)}
    for change in changes:
        if change.nqsw_id not in nqsws:
            raise InvalidInput("That person is not on this session's register.")
        _check_minutes(session, nqsws[change.nqsw_id], change.mark, change.minutes)
    conflicts = [
        nqsws[c.nqsw_id].name
        for c in changes
        if not _write_mark(
            session,
            nqsws[c.nqsw_id],
            c.mark,
            c.minutes,
            seen_version=c.version,
            source=MarkSource.MANUAL,
            by=by,
            now=now,
        )
    ]
    if conflicts:
        db.session.rollback()
        raise RegisterConflict(
            f"Someone else changed the mark for {', '.join(conflicts)} while you were editing. "
            "Nothing was saved: check the register as it is now and make your changes again."
        )
    db.session.commit()
    return len(changes)


# --- Microsoft Teams attendance reports ----------------------------------------------


@dataclass
class TeamsAttendee:
    """A person in a Teams report, their visits summed."""

    name: str
    email: str
    seconds: int = 0
    lines: list[int] = field(default_factory=list)
    role: str = ""

    @property
    def key(self) -> str:
        return attendee_key(self.email, self.name)

    @property
    def organises(self) -> bool:
        return self.role.replace("-", "").replace("organiser", "organizer") in _ORGANISER_ROLES

    @property
    def minutes(self) -> int:
        return self.seconds // 60


def attendee_key(email: str, name: str) -> str:
    """Return how one person in a Teams report is recognised again in the next report."""
    return email.strip().lower() or f"name:{name.strip().lower()}"


# The meeting's organiser (often the trainer or the coordinator) is not an attendee.
_ORGANISER_ROLES = {"organizer", "coorganizer"}
_ROLE_COLUMNS = ("role",)
_NAME_COLUMNS = ("name", "full name", "participant")
_EMAIL_COLUMNS = ("email", "email address", "participant id (upn)", "upn")
_DURATION_COLUMNS = ("duration", "in-meeting duration", "attendance duration")
_JOIN_COLUMNS = ("join time", "first join", "joined")
_LEAVE_COLUMNS = ("leave time", "last leave", "left")
_TIME_FORMATS = (
    "%m/%d/%y, %I:%M:%S %p",
    "%m/%d/%Y, %I:%M:%S %p",
    "%d/%m/%Y, %H:%M:%S",
    "%d/%m/%y, %H:%M:%S",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
)
_HMS = re.compile(r"^\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m(?:in)?)?\s*(?:(\d+)\s*s)?\s*$", re.I)
_CLOCK = re.compile(r"^\s*(\d+):(\d{1,2}):(\d{1,2})\s*$")


def _decode(data: bytes) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8) :].decode("utf-8")
    if len(data) > 1 and data[1:200:2].count(0) > len(data[1:200:2]) // 2:
        return data.decode("utf-16-le")  # UTF-16 without its byte-order mark
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ImportRejected([(line, "the file is not UTF-8 or UTF-16 text")]) from error


def parse_duration(text: str) -> int | None:
    """Return seconds from a Teams duration such as '1h 2m 3s' or '01:02:03'."""
    text = text.strip()
    if not text:
        return None
    if clock := _CLOCK.match(text):
        h, m, s = (int(g) for g in clock.groups())
        return h * 3600 + m * 60 + s
    hms = _HMS.match(text)
    if hms and any(hms.groups()):
        h, m, s = (int(g or 0) for g in hms.groups())
        return h * 3600 + m * 60 + s
    return None


def _parse_time(text: str) -> datetime | None:
    text = text.strip()
    for fmt in _TIME_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def _find(header: list[str], names: Sequence[str]) -> int | None:
    for name in names:
        if name in header:
            return header.index(name)
    return None


@dataclass
class _Table:
    header: list[str]
    rows: list[tuple[int, list[str]]] = field(default_factory=list)


def _is_header(cells: list[str]) -> bool:
    return (
        _find(cells, _NAME_COLUMNS) is not None
        and _find(cells, _EMAIL_COLUMNS) is not None
        and (_find(cells, _DURATION_COLUMNS) is not None or _find(cells, _JOIN_COLUMNS) is not None)
    )


def _tables(text: str) -> list[_Table]:
    tables: list[_Table] = []
    current: _Table | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            current = None
            continue
        delimiter = "\t" if "\t" in raw else ","
        cells = next(csv.reader([raw], delimiter=delimiter))
        lowered = [c.strip().lower() for c in cells]
        if _is_header(lowered):
            current = _Table(lowered)
            tables.append(current)
        elif current is not None:
            if len([c for c in cells if c.strip()]) <= 1 and len(cells) < len(current.header):
                current = None  # a section heading such as "3. In-Meeting Activities"
            else:
                current.rows.append((number, cells))
    return tables


SUPPORTED_LAYOUTS = (
    "the attendance report downloaded from a Teams meeting's Attendance tab: a Participants "
    "section with the columns Name, Email and Duration (or Join time and Leave time), saved "
    "as UTF-16 tab-separated text (as Teams gives it) or as UTF-8 comma-separated text"
)


def _unsupported_layout(text: str) -> tuple[int, str]:
    """Say which layouts can be read, naming the old one that cannot when that is what came."""
    for number, raw in enumerate(text.splitlines(), start=1):
        cells = {c.strip().lower() for c in raw.split("\t" if "\t" in raw else ",")}
        if {"full name", "user action", "timestamp"} <= cells:
            return (
                number,
                "this is the older Teams attendance list (Full Name, User Action, Timestamp), "
                "which has no email addresses, so nobody can be matched. Download the "
                f"attendance report instead. This service reads {SUPPORTED_LAYOUTS}.",
            )
    return 1, f"no participants table found. This service reads {SUPPORTED_LAYOUTS}."


def parse_teams_report(data: bytes) -> list[TeamsAttendee]:
    """Read a Teams attendance report (UTF-16 TSV or UTF-8 CSV) into people with summed time.

    Raise ImportRejected naming each bad line; nothing is returned partly read.
    """
    text = _decode(data)
    tables = _tables(text)
    if not tables:
        raise ImportRejected([_unsupported_layout(text)])
    # Per-visit tables ("Join Time") list rejoins separately; prefer them to summaries.
    per_visit = [t for t in tables if "join time" in t.header]
    table = per_visit[-1] if per_visit else tables[-1]
    h = table.header
    name_i, email_i = _find(h, _NAME_COLUMNS), _find(h, _EMAIL_COLUMNS)
    upn_i = _find(h, ("participant id (upn)", "upn"))
    duration_i = _find(h, _DURATION_COLUMNS)
    join_i, leave_i = _find(h, _JOIN_COLUMNS), _find(h, _LEAVE_COLUMNS)
    role_i = _find(h, _ROLE_COLUMNS)
    problems: list[tuple[int, str]] = []
    people: dict[str, TeamsAttendee] = {}

    def cell(cells: list[str], index: int | None) -> str:
        return cells[index].strip() if index is not None and index < len(cells) else ""

    for number, cells in table.rows:
        name = cell(cells, name_i)
        email = (cell(cells, email_i) or cell(cells, upn_i)).lower()
        if not name and not email:
            problems.append((number, "no name or email"))
            continue
        if email and "@" not in email:
            problems.append((number, f"'{email}' is not an email address"))
            continue
        raw_duration = cell(cells, duration_i)
        seconds = parse_duration(raw_duration)
        if raw_duration and seconds is None:
            problems.append((number, f"cannot read the duration '{raw_duration}'"))
            continue
        if seconds is None:
            joined, left = _parse_time(cell(cells, join_i)), _parse_time(cell(cells, leave_i))
            if joined is None or left is None or left < joined:
                problems.append((number, "no duration, and cannot read the join and leave times"))
                continue
            seconds = int((left - joined).total_seconds())
        key = attendee_key(email, name)
        person = people.setdefault(
            key, TeamsAttendee(name=name, email=email, role=cell(cells, role_i).lower())
        )
        person.seconds += seconds
        person.lines.append(number)
    if problems:
        raise ImportRejected(problems)
    if not people:
        raise ImportRejected([(1, "the participants table has no rows")])
    return list(people.values())


@dataclass
class ImportResult:
    """What a Teams import did to a register."""

    marked: list[tuple[NQSW, AttendanceMark, int]] = field(default_factory=list)
    kept_manual: list[tuple[NQSW, AttendanceMark, int]] = field(default_factory=list)
    absent: list[NQSW] = field(default_factory=list)
    unmatched: list[UnmatchedAttendee] = field(default_factory=list)


def _teams_mark(session: Session, minutes: int) -> tuple[AttendanceMark, int]:
    minutes = min(minutes, session_minutes(session))
    share = session.course.programme.attendance_min_share_percent
    if minutes == 0:
        return AttendanceMark.ABSENT, 0
    if _share_met(minutes, session, share):
        return AttendanceMark.PRESENT, minutes
    return AttendanceMark.LEFT_EARLY, minutes


_NOT_THERE = {AttendanceMark.ABSENT, AttendanceMark.ABSENT_APOLOGY}


def _agrees(manual: AttendanceMark, teams: AttendanceMark) -> bool:
    """Return True when a manual mark says what Teams says (an apology is still absence)."""
    return manual is teams or (manual in _NOT_THERE and teams in _NOT_THERE)


def _apply_teams_mark(
    session: Session,
    nqsw: NQSW,
    minutes: int,
    result: ImportResult,
    by: User | None,
    now: datetime,
    *,
    add: bool = False,
) -> None:
    record = db.session.scalar(
        select(AttendanceRecord).where(
            AttendanceRecord.session_id == session.id, AttendanceRecord.nqsw_id == nqsw.id
        )
    )
    if add and record is not None:
        minutes += record.teams_minutes or 0  # the same person under a second account
    mark, minutes = _teams_mark(session, minutes)
    if record is not None and record.source is MarkSource.MANUAL:
        if not _agrees(record.mark, mark):
            result.kept_manual.append((nqsw, record.mark, minutes))
            if record.teams_minutes != minutes:
                # The report is part of the register's story even when the manual mark wins.
                db.session.add(
                    AttendanceChange(
                        record_id=record.id,
                        changed_by_id=by.id if by else None,
                        changed_at=now,
                        source=MarkSource.TEAMS,
                        old_mark=record.mark,
                        new_mark=record.mark,
                        old_minutes=record.minutes_attended,
                        new_minutes=record.minutes_attended,
                        note=f"Teams shows {minutes} minutes; the manual mark was kept",
                    )
                )
        record.teams_minutes = minutes
        return
    seen = record.version if record else None
    if not _write_mark(
        session, nqsw, mark, minutes, seen_version=seen, source=MarkSource.TEAMS, by=by, now=now
    ):
        db.session.rollback()
        raise RegisterConflict(
            f"Someone else changed the mark for {nqsw.name} during the import. "
            "Nothing was imported: try again."
        )
    db.session.execute(
        update(AttendanceRecord)
        .where(AttendanceRecord.session_id == session.id, AttendanceRecord.nqsw_id == nqsw.id)
        .values(teams_minutes=minutes)
        .execution_options(synchronize_session=False)
    )
    if mark is AttendanceMark.ABSENT:
        result.absent.append(nqsw)
    else:
        result.marked.append((nqsw, mark, minutes))


def import_teams_report(
    session: Session, data: bytes, *, by: User | None, now: datetime | None = None
) -> ImportResult:
    """Fill the register from a Teams report: match by email, keep manual marks, list strangers.

    Booked NQSWs missing from the report are marked absent (unless marked by hand).
    """
    now = now or utcnow()
    check_register_open(session, now)
    attendees = parse_teams_report(data)
    programme_nqsws = {
        n.email.lower(): n
        for n in db.session.scalars(
            select(NQSW)
            .where(NQSW.programme_id == session.course.programme_id)
            .options(selectinload(NQSW.user))
        )
    }
    # People the coordinator already dealt with on an earlier import of this session.
    dismissed: set[str] = set()
    matched_by_hand: dict[str, int] = {}
    for earlier in db.session.scalars(
        select(UnmatchedAttendee).where(
            UnmatchedAttendee.session_id == session.id, UnmatchedAttendee.resolved_at.is_not(None)
        )
    ):
        key = attendee_key(earlier.email, earlier.name)
        if earlier.resolved_nqsw_id is None:
            dismissed.add(key)
        else:
            matched_by_hand[key] = earlier.resolved_nqsw_id
    result = ImportResult()
    seconds: dict[int, int] = {}
    found: dict[int, NQSW] = {}
    strangers: list[TeamsAttendee] = []
    for person in attendees:
        nqsw = programme_nqsws.get(person.email) if person.email else None
        if nqsw is None and person.key in matched_by_hand:
            nqsw = db.session.get(NQSW, matched_by_hand[person.key])
        if nqsw is None:
            if person.key not in dismissed and not person.organises:
                strangers.append(person)
            continue
        found[nqsw.id] = nqsw
        seconds[nqsw.id] = seconds.get(nqsw.id, 0) + person.seconds
    for nqsw_id, nqsw in found.items():
        _apply_teams_mark(session, nqsw, seconds[nqsw_id] // 60, result, by, now)
    for row in register_rows(session):
        if row.nqsw.id not in found:
            _apply_teams_mark(session, row.nqsw, 0, result, by, now)
    for old in db.session.scalars(
        select(UnmatchedAttendee).where(
            UnmatchedAttendee.session_id == session.id, UnmatchedAttendee.resolved_at.is_(None)
        )
    ):
        db.session.delete(old)
    for person in strangers:
        stranger = UnmatchedAttendee(
            session_id=session.id,
            name=person.name or person.email,
            email=person.email,
            minutes=person.minutes,
            imported_at=now,
        )
        db.session.add(stranger)
        result.unmatched.append(stranger)
    db.session.commit()
    return result


def kept_manual_marks(session: Session) -> list[tuple[NQSW, AttendanceMark, int]]:
    """Return the manual marks that disagree with the last Teams report, with its minutes."""
    kept = []
    for record in db.session.scalars(
        select(AttendanceRecord).where(
            AttendanceRecord.session_id == session.id,
            AttendanceRecord.source == MarkSource.MANUAL,
            AttendanceRecord.teams_minutes.is_not(None),
        )
    ):
        assert record.teams_minutes is not None
        if not _agrees(record.mark, _teams_mark(session, record.teams_minutes)[0]):
            kept.append((record.nqsw, record.mark, record.teams_minutes))
    return sorted(kept, key=lambda k: (k[0].name.lower(), k[0].id))


def unmatched_attendees(session: Session) -> list[UnmatchedAttendee]:
    """Return the session's unresolved Teams attendees."""
    return list(
        db.session.scalars(
            select(UnmatchedAttendee)
            .where(
                UnmatchedAttendee.session_id == session.id, UnmatchedAttendee.resolved_at.is_(None)
            )
            .order_by(UnmatchedAttendee.name)
        )
    )


def resolve_unmatched(
    entry: UnmatchedAttendee, nqsw: NQSW | None, *, by: User, now: datetime | None = None
) -> ImportResult:
    """Match a Teams attendee to an NQSW, adding their time, or dismiss them if ``nqsw`` is None."""
    now = now or utcnow()
    if entry.resolved_at is not None:
        raise AttendanceError("This person has already been dealt with.")
    result = ImportResult()
    if nqsw is not None:
        if nqsw.programme_id != entry.session.course.programme_id:
            raise InvalidInput("Choose an NQSW on this programme.")
        _apply_teams_mark(entry.session, nqsw, entry.minutes, result, by, now, add=True)
    entry.resolved_at = now
    entry.resolved_nqsw_id = nqsw.id if nqsw else None
    db.session.commit()
    return result


# --- Alerts --------------------------------------------------------------------------


def send_status_alerts(*, now: datetime | None = None) -> int:
    """Mail each NQSW, assessor and line manager once when the NQSW's status worsens.

    The last status is stored per NQSW, so a nightly run mails only on a change;
    improvements are stored silently. Return the number of alerts queued.
    """
    now = now or utcnow()
    today = london_today(now)
    queued = 0
    for programme in db.session.scalars(select(Programme)).all():
        for item in programme_attendance(programme, now=now):
            if item.nqsw.asye_end < today:
                continue  # their ASYE year is over: nothing left to act on
            alert = db.session.get(AttendanceAlert, item.nqsw.id)
            previous = alert.status if alert else AttendanceStatus.ON_TRACK
            if item.status is previous:
                continue
            if alert is None:
                alert = AttendanceAlert(nqsw_id=item.nqsw.id, status=previous, changes=0)
                db.session.add(alert)
            alert.status = item.status
            alert.changes += 1
            alert.changed_at = now
            if item.status.severity <= previous.severity:
                continue
            nqsw = item.nqsw
            message = queue_message(
                ALERT_KIND,
                [nqsw.email, nqsw.assessor_email, nqsw.line_manager_email],
                f"ASYE attendance for {nqsw.name}: {item.status.label.lower()}",
                template=ALERT_KIND,
                dedupe_key=f"attendance-status:{nqsw.id}:{alert.changes}",
                nqsw=nqsw,
                programme=programme,
                summary=item.summary,
                previous=previous,
                status=item.status,
            )
            queued += message is not None
    db.session.commit()
    return queued


def alert_messages(programme: Programme) -> list[tuple[OutboxMessage, NQSW]]:
    """Return the attendance alerts queued for the programme's NQSWs, newest first."""
    nqsws = {
        n.id: n for n in db.session.scalars(select(NQSW).where(NQSW.programme_id == programme.id))
    }
    found = []
    for message in db.session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.kind == ALERT_KIND)
        .order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
    ):
        nqsw_id = int((message.dedupe_key or "::").split(":")[1] or 0)
        if nqsw_id in nqsws:
            found.append((message, nqsws[nqsw_id]))
    return found


def resend_alert(message: OutboxMessage) -> None:
    """Queue an attendance alert again."""
    if message.kind != ALERT_KIND:
        raise AttendanceError("Only attendance alerts can be resent here.")
    if message.status is MessageStatus.PENDING:
        raise AttendanceError("This alert is still waiting to be sent.")
    resend(message)
