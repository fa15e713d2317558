"""The booking domain's tables: programmes, courses, sessions, people and bookings."""

from __future__ import annotations

import enum
import math
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from flask_login import UserMixin
from sqlalchemy import (
    CheckConstraint,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from .extensions import Base, db

# mypy cannot see through Flask-SQLAlchemy's dynamic db.Model; both are the same declarative base.
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model

LONDON = ZoneInfo("Europe/London")


def utcnow() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def london_today(now: datetime | None = None) -> date:
    """Return today's date in Europe/London."""
    return (now or utcnow()).astimezone(LONDON).date()


def london_to_utc(day: date, clock: time) -> datetime:
    """Return the UTC instant of a Europe/London wall-clock time."""
    return datetime.combine(day, clock, tzinfo=LONDON).astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Store UTC; always hand back aware datetimes, whatever the backend keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; store aware UTC times only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Store the readable value; a plain VARCHAR + CHECK keeps migrations simple on both backends.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


def add_months(day: date, months: int) -> date:
    """Return ``day`` moved by whole months, clamped to the month's last day."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    next_month = date(year + (month == 12), month % 12 + 1, 1)
    return min(
        day.replace(year=year, month=month, day=1) + timedelta(days=day.day - 1),
        next_month - timedelta(days=1),
    )


class Role(enum.Enum):
    COORDINATOR = "coordinator"
    EMPLOYER_CONTACT = "employer_contact"
    NQSW = "nqsw"


class EmployerOption(enum.Enum):
    FULL_ACCESS = "full_access"  # Option 1: grant funded
    TRAINING_ONLY = "training_only"  # Option 2: invoiced per NQSW

    @property
    def label(self) -> str:
        return {
            EmployerOption.FULL_ACCESS: "Option 1: full access",
            EmployerOption.TRAINING_ONLY: "Option 2: training only",
        }[self]


class CourseLength(enum.Enum):
    HALF_DAY = "half_day"
    FULL_DAY = "full_day"

    @property
    def days(self) -> float:
        return 0.5 if self is CourseLength.HALF_DAY else 1.0

    @property
    def label(self) -> str:
        return "Half day" if self is CourseLength.HALF_DAY else "Full day"


class SessionStatus(enum.Enum):
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"


class BookingStatus(enum.Enum):
    BOOKED = "booked"
    CANCELLED = "cancelled"
    MOVED = "moved"  # replaced by a booking on the course's other date


class BookingSource(enum.Enum):
    SELF = "self"
    COORDINATOR = "coordinator"
    WAITING_LIST = "waiting_list"
    ALLOCATION = "allocation"


class WaitStatus(enum.Enum):
    WAITING = "waiting"
    OFFERED = "offered"
    ACCEPTED = "accepted"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"
    CLOSED = "closed"  # the session was cancelled or the NQSW booked elsewhere


class MessageStatus(enum.Enum):
    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"


class Programme(Model):
    """A programme year run by a host organisation, with its rules."""

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    host_name: Mapped[str] = mapped_column(String(200))
    host_address: Mapped[str] = mapped_column(Text, default="")
    host_email: Mapped[str] = mapped_column(String(254), default="")
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    published: Mapped[bool] = mapped_column(default=False)
    protected_days_per_week: Mapped[float] = mapped_column(
        Numeric(4, 2, asdecimal=False), default=0.5
    )
    window_weeks: Mapped[int] = mapped_column(default=4)
    cancellation_cutoff_working_days: Mapped[int] = mapped_column(default=5)
    waitlist_hold_hours: Mapped[int] = mapped_column(default=48)
    joining_info_days_before: Mapped[int] = mapped_column(default=3)
    attendance_threshold_percent: Mapped[int] = mapped_column(default=75)
    attendance_min_share_percent: Mapped[int] = mapped_column(default=80)
    price_per_nqsw_pence: Mapped[int] = mapped_column(default=35000)
    vat_rate_basis_points: Mapped[int] = mapped_column(default=0)
    invoice_prefix: Mapped[str] = mapped_column(String(20), default="ASYE")
    payment_terms_days: Mapped[int] = mapped_column(default=30)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    courses: Mapped[list[Course]] = relationship(
        back_populates="programme", order_by="Course.position", cascade="all, delete-orphan"
    )

    __table_args__ = (
        CheckConstraint("ends_on > starts_on", name="dates_in_order"),
        CheckConstraint("window_weeks >= 1", name="window_positive"),
        CheckConstraint("protected_days_per_week >= 0", name="protected_time_not_negative"),
        CheckConstraint("price_per_nqsw_pence >= 0", name="price_not_negative"),
    )

    def __repr__(self) -> str:
        return f"<Programme {self.slug}>"


class Course(Model):
    """A course in a programme's catalogue; it runs as (usually two) sessions a year."""

    id: Mapped[int] = mapped_column(primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("programme.id"), index=True)
    code: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    length: Mapped[CourseLength] = mapped_column(_enum(CourseLength, "course_length"))
    optional: Mapped[bool] = mapped_column(default=False)
    position: Mapped[int] = mapped_column(default=0)

    programme: Mapped[Programme] = relationship(back_populates="courses")
    sessions: Mapped[list[Session]] = relationship(
        back_populates="course", order_by="Session.starts_at", cascade="all, delete-orphan"
    )

    __table_args__ = (UniqueConstraint("programme_id", "code"),)

    @property
    def days(self) -> float:
        return self.length.days

    def __repr__(self) -> str:
        return f"<Course {self.code}>"


class Session(Model):
    """One dated run of a course, with its capacity and joining details."""

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id"), index=True)
    # Stable for the session's life so calendar clients update rather than duplicate it.
    uid: Mapped[str] = mapped_column(
        String(64), unique=True, default=lambda: f"{uuid.uuid4()}@asye-training"
    )
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    capacity: Mapped[int] = mapped_column()
    # Places taken by bookings plus places held for a waiting-list offer.
    taken: Mapped[int] = mapped_column(default=0)
    mode: Mapped[str] = mapped_column(String(40), default="Online (MS Teams)")
    region: Mapped[str | None] = mapped_column(String(80), default=None)
    joining_url: Mapped[str] = mapped_column(String(500), default="")
    materials_url: Mapped[str] = mapped_column(String(500), default="")
    facilitator: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[SessionStatus] = mapped_column(
        _enum(SessionStatus, "session_status"), default=SessionStatus.SCHEDULED
    )
    cancelled_reason: Mapped[str] = mapped_column(Text, default="")
    sequence: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    course: Mapped[Course] = relationship(back_populates="sessions")
    bookings: Mapped[list[Booking]] = relationship(back_populates="session")

    __table_args__ = (
        CheckConstraint("capacity >= 0", name="capacity_not_negative"),
        CheckConstraint("taken >= 0 AND taken <= capacity", name="taken_within_capacity"),
        CheckConstraint("ends_at > starts_at", name="times_in_order"),
    )

    @property
    def places_left(self) -> int:
        return max(self.capacity - self.taken, 0)

    @property
    def is_cancelled(self) -> bool:
        return self.status is SessionStatus.CANCELLED

    @property
    def has_started(self) -> bool:
        return self.starts_at <= utcnow()

    @property
    def local_start(self) -> datetime:
        return self.starts_at.astimezone(LONDON)

    @property
    def local_end(self) -> datetime:
        return self.ends_at.astimezone(LONDON)

    @property
    def local_date(self) -> date:
        return self.local_start.date()

    def touch(self) -> None:
        """Mark a change calendars must pick up."""
        self.sequence += 1
        self.updated_at = utcnow()

    def __repr__(self) -> str:
        return f"<Session {self.id} {self.starts_at:%Y-%m-%d}>"


class Employer(Model):
    """An organisation that employs NQSWs and enrols them on a programme."""

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    option: Mapped[EmployerOption] = mapped_column(_enum(EmployerOption, "employer_option"))
    billing_name: Mapped[str] = mapped_column(String(200), default="")
    billing_email: Mapped[str] = mapped_column(String(254), default="")
    billing_address: Mapped[str] = mapped_column(Text, default="")
    po_number: Mapped[str] = mapped_column(String(80), default="")
    po_required: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    nqsws: Mapped[list[NQSW]] = relationship(back_populates="employer")
    contacts: Mapped[list[User]] = relationship(back_populates="employer")

    def __repr__(self) -> str:
        return f"<Employer {self.id}>"


class User(UserMixin, Model):
    """A person who signs in: coordinator, employer contact or NQSW."""

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(_enum(Role, "user_role"))
    employer_id: Mapped[int | None] = mapped_column(ForeignKey("employer.id"), index=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    employer: Mapped[Employer | None] = relationship(back_populates="contacts")
    nqsw: Mapped[NQSW | None] = relationship(back_populates="user", uselist=False)

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return self.active

    @property
    def is_coordinator(self) -> bool:
        return self.role is Role.COORDINATOR

    def __repr__(self) -> str:
        return f"<User {self.id} {self.role.value}>"


class NQSW(Model):
    """A newly qualified social worker enrolled on a programme by their employer."""

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"), unique=True)
    employer_id: Mapped[int] = mapped_column(ForeignKey("employer.id"), index=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("programme.id"), index=True)
    swe_number: Mapped[str] = mapped_column(String(20), unique=True)
    asye_start: Mapped[date] = mapped_column(Date)
    fte: Mapped[float] = mapped_column(Numeric(3, 2, asdecimal=False), default=1.0)
    assessor_email: Mapped[str] = mapped_column(String(254), default="")
    line_manager_email: Mapped[str] = mapped_column(String(254), default="")
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Dates the NQSW cancelled or declined before this are offered by allocation again.
    avoid_cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    user: Mapped[User] = relationship(back_populates="nqsw")
    employer: Mapped[Employer] = relationship(back_populates="nqsws")
    programme: Mapped[Programme] = relationship()
    bookings: Mapped[list[Booking]] = relationship(back_populates="nqsw")

    __table_args__ = (CheckConstraint("fte > 0 AND fte <= 1", name="fte_in_range"),)

    @property
    def name(self) -> str:
        return self.user.name

    @property
    def email(self) -> str:
        return self.user.email

    @property
    def asye_end(self) -> date:
        """Return the last day of the ASYE year, extended pro rata for part-time work."""
        full_year = (add_months(self.asye_start, 12) - self.asye_start).days
        return self.asye_start + timedelta(days=math.ceil(full_year / float(self.fte)) - 1)

    def __repr__(self) -> str:
        return f"<NQSW {self.id}>"


class Booking(Model):
    """An NQSW's place on a session."""

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("session.id"), index=True)
    nqsw_id: Mapped[int] = mapped_column(ForeignKey("nqsw.id"), index=True)
    # Copied from the session so the database can enforce one live booking per course.
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id"))
    status: Mapped[BookingStatus] = mapped_column(
        _enum(BookingStatus, "booking_status"), default=BookingStatus.BOOKED
    )
    source: Mapped[BookingSource] = mapped_column(
        _enum(BookingSource, "booking_source"), default=BookingSource.SELF
    )
    booked_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    late_cancellation: Mapped[bool] = mapped_column(default=False)
    moved_to_id: Mapped[int | None] = mapped_column(ForeignKey("booking.id"), default=None)
    # Set when a coordinator booked past a rule (walk-in, full, protected time): why.
    override_reason: Mapped[str] = mapped_column(Text, default="", server_default="")

    session: Mapped[Session] = relationship(back_populates="bookings")
    nqsw: Mapped[NQSW] = relationship(back_populates="bookings")
    course: Mapped[Course] = relationship()

    __table_args__ = (
        Index(
            "uq_booking_live_per_course",
            "nqsw_id",
            "course_id",
            unique=True,
            sqlite_where=text("status = 'booked'"),
            postgresql_where=text("status = 'booked'"),
        ),
    )

    @property
    def is_live(self) -> bool:
        return self.status is BookingStatus.BOOKED

    def __repr__(self) -> str:
        return f"<Booking {self.id} {self.status.value}>"


class WaitlistEntry(Model):
    """An NQSW waiting for a place on a full session."""

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("session.id"), index=True)
    nqsw_id: Mapped[int] = mapped_column(ForeignKey("nqsw.id"), index=True)
    status: Mapped[WaitStatus] = mapped_column(
        _enum(WaitStatus, "wait_status"), default=WaitStatus.WAITING
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    offered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    offer_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    session: Mapped[Session] = relationship()
    nqsw: Mapped[NQSW] = relationship()

    __table_args__ = (
        Index(
            "uq_waitlist_open_per_session",
            "session_id",
            "nqsw_id",
            unique=True,
            sqlite_where=text("status IN ('waiting', 'offered')"),
            postgresql_where=text("status IN ('waiting', 'offered')"),
        ),
    )


class SignInToken(Model):
    """A single-use sign-in link; only its SHA-256 digest is kept."""

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    user: Mapped[User] = relationship()


class OutboxMessage(Model):
    """A mail message written in the same transaction as the change that causes it."""

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(60), index=True)
    recipients: Mapped[str] = mapped_column(Text)  # comma-separated addresses
    subject: Mapped[str] = mapped_column(String(300))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str] = mapped_column(Text, default="")
    ics: Mapped[str | None] = mapped_column(Text, default=None)
    ics_method: Mapped[str | None] = mapped_column(String(20), default=None)
    # Deduplicates messages a job could write twice (reminders, alerts).
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True, default=None)
    status: Mapped[MessageStatus] = mapped_column(
        _enum(MessageStatus, "message_status"), default=MessageStatus.PENDING, index=True
    )
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    @property
    def recipient_list(self) -> list[str]:
        return [r for r in self.recipients.split(",") if r]


# Calendar feeds


class FeedToken(Model):
    """A secret calendar-feed link for one person; only its SHA-256 digest is kept."""

    id: Mapped[int] = mapped_column(primary_key=True)
    # The feed follows the person's role: an NQSW's bookings or their employer's NQSWs.
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    user: Mapped[User] = relationship()


class InvitationThread(Model):
    """The UID and SEQUENCE of the mailed invitation for one NQSW's place on one course.

    A booking, its moves to other dates and its cancellation are one calendar event in
    the NQSW's mailbox, so each change is a higher SEQUENCE on the same UID.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    nqsw_id: Mapped[int] = mapped_column(ForeignKey("nqsw.id"))
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id"))
    uid: Mapped[str] = mapped_column(
        String(80), unique=True, default=lambda: f"invite-{uuid.uuid4()}@asye-training"
    )
    sequence: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("nqsw_id", "course_id"),)


# Attendance


class AttendanceMark(enum.Enum):
    PRESENT = "present"
    LATE = "late"
    LEFT_EARLY = "left_early"
    ABSENT = "absent"
    ABSENT_APOLOGY = "absent_apology"

    @property
    def label(self) -> str:
        return {
            AttendanceMark.PRESENT: "Present",
            AttendanceMark.LATE: "Late",
            AttendanceMark.LEFT_EARLY: "Left early",
            AttendanceMark.ABSENT: "Absent",
            AttendanceMark.ABSENT_APOLOGY: "Absent with apology",
        }[self]


class MarkSource(enum.Enum):
    MANUAL = "manual"
    TEAMS = "teams"


class AttendanceStatus(enum.Enum):
    ON_TRACK = "on_track"
    AT_RISK = "at_risk"
    CANNOT_REACH = "cannot_reach"

    @property
    def label(self) -> str:
        return {
            AttendanceStatus.ON_TRACK: "On track",
            AttendanceStatus.AT_RISK: "At risk",
            AttendanceStatus.CANNOT_REACH: "Cannot reach",
        }[self]

    @property
    def severity(self) -> int:
        return list(AttendanceStatus).index(self)


class AttendanceSettings(Model):
    """A programme's counting rules; the threshold and minimum share live on Programme."""

    programme_id: Mapped[int] = mapped_column(ForeignKey("programme.id"), primary_key=True)
    late_counts_as_attended: Mapped[bool] = mapped_column(default=True)
    apology_excuses: Mapped[bool] = mapped_column(default=False)
    late_cancellation_counts_as_missed: Mapped[bool] = mapped_column(default=True)


class AttendanceRecord(Model):
    """One NQSW's mark on one session's register."""

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("session.id"), index=True)
    nqsw_id: Mapped[int] = mapped_column(ForeignKey("nqsw.id"), index=True)
    mark: Mapped[AttendanceMark] = mapped_column(_enum(AttendanceMark, "attendance_mark"))
    minutes_attended: Mapped[int | None] = mapped_column(default=None)
    source: Mapped[MarkSource] = mapped_column(
        _enum(MarkSource, "mark_source"), default=MarkSource.MANUAL
    )
    # What the last Teams report said, kept even when a manual mark wins.
    teams_minutes: Mapped[int | None] = mapped_column(default=None)
    # Rises on every change; an update names the version it read (optimistic lock).
    version: Mapped[int] = mapped_column(default=1)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"), default=None)

    session: Mapped[Session] = relationship()
    nqsw: Mapped[NQSW] = relationship()
    updated_by: Mapped[User | None] = relationship()

    __table_args__ = (
        UniqueConstraint("session_id", "nqsw_id"),
        CheckConstraint("minutes_attended IS NULL OR minutes_attended >= 0", name="minutes_ok"),
    )


class AttendanceChange(Model):
    """The audit trail of a register: who changed which mark, when, from what to what."""

    id: Mapped[int] = mapped_column(primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("attendance_record.id"), index=True)
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"), default=None)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    source: Mapped[MarkSource] = mapped_column(_enum(MarkSource, "mark_source"))
    old_mark: Mapped[AttendanceMark | None] = mapped_column(
        _enum(AttendanceMark, "old_mark"), default=None
    )
    new_mark: Mapped[AttendanceMark] = mapped_column(_enum(AttendanceMark, "new_mark"))
    old_minutes: Mapped[int | None] = mapped_column(default=None)
    new_minutes: Mapped[int | None] = mapped_column(default=None)
    note: Mapped[str] = mapped_column(Text, default="", server_default="")

    record: Mapped[AttendanceRecord] = relationship()
    changed_by: Mapped[User | None] = relationship()


class UnmatchedAttendee(Model):
    """A person in a Teams attendance report who matched no NQSW, until resolved."""

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("session.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254), default="")
    minutes: Mapped[int] = mapped_column(default=0)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    resolved_nqsw_id: Mapped[int | None] = mapped_column(ForeignKey("nqsw.id"), default=None)

    session: Mapped[Session] = relationship()


class AttendanceAlert(Model):
    """The last attendance status each NQSW was told about, so alerts go once per change."""

    nqsw_id: Mapped[int] = mapped_column(ForeignKey("nqsw.id"), primary_key=True)
    status: Mapped[AttendanceStatus] = mapped_column(_enum(AttendanceStatus, "attendance_status"))
    changes: Mapped[int] = mapped_column(default=0)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# Allocation proposals


class CourseWish(Model):
    """An optional workshop an NQSW asked to be placed on (or a coordinator asked for them)."""

    nqsw_id: Mapped[int] = mapped_column(ForeignKey("nqsw.id"), primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"), default=None)

    course: Mapped[Course] = relationship()


class ProposalStatus(enum.Enum):
    RUNNING = "running"
    READY = "ready"
    FAILED = "failed"
    COMMITTING = "committing"
    COMMITTED = "committed"


class AllocationProposal(Model):
    """A solver run for a programme: its input's fingerprint, progress and result."""

    id: Mapped[int] = mapped_column(primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("programme.id"), index=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # SHA-256 of the problem and the live bookings it was built from; a commit rechecks it.
    fingerprint: Mapped[str] = mapped_column(String(64))
    allow_moves: Mapped[bool] = mapped_column(default=False)
    include_optional: Mapped[bool] = mapped_column(default=False)
    time_limit_seconds: Mapped[int] = mapped_column(default=30)
    status: Mapped[ProposalStatus] = mapped_column(
        _enum(ProposalStatus, "proposal_status"), default=ProposalStatus.RUNNING
    )
    # Progress, written by the run as it goes so any web worker can report it.
    progress_phase: Mapped[str] = mapped_column(String(20), default="")
    progress_objective: Mapped[float | None] = mapped_column(default=None)
    progress_bound: Mapped[float | None] = mapped_column(default=None)
    progress_seconds: Mapped[float] = mapped_column(default=0.0)
    progress_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # The latest whole-run figures (placements, cost, bounds, greedy's), as JSON.
    progress_json: Mapped[str] = mapped_column(Text, default="{}")
    # JSON documents in the scheduler's formats; ids only, no personal data.
    problem_json: Mapped[str] = mapped_column(Text)
    # The places NQSWs held when the run started ({"n<id>": {course code: "s<id>"}}).
    held_json: Mapped[str] = mapped_column(Text, default="{}")
    result_json: Mapped[str | None] = mapped_column(Text, default=None)
    greedy_json: Mapped[str | None] = mapped_column(Text, default=None)
    error: Mapped[str] = mapped_column(Text, default="")
    committed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    committed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"), default=None)
    commit_report_json: Mapped[str | None] = mapped_column(Text, default=None)

    programme: Mapped[Programme] = relationship()
    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])
    committed_by: Mapped[User | None] = relationship(foreign_keys=[committed_by_id])

    __table_args__ = (CheckConstraint("time_limit_seconds > 0", name="time_limit_positive"),)

    @property
    def local_created_at(self) -> datetime:
        return self.created_at.astimezone(LONDON)

    @property
    def local_committed_at(self) -> datetime | None:
        return self.committed_at.astimezone(LONDON) if self.committed_at else None

    def __repr__(self) -> str:
        return f"<AllocationProposal {self.id} {self.status.value}>"


# Coordinators' messages to a session


class MessageAudience(enum.Enum):
    BOOKED = "booked"
    WAITING = "waiting"
    BOTH = "both"

    @property
    def label(self) -> str:
        return {
            MessageAudience.BOOKED: "Everyone booked",
            MessageAudience.WAITING: "Everyone on the waiting list",
            MessageAudience.BOTH: "Everyone booked or waiting",
        }[self]


class SessionMessage(Model):
    """A message a coordinator wrote to the people on a session; one outbox row per person."""

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("session.id"), index=True)
    sent_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"), default=None)
    audience: Mapped[MessageAudience] = mapped_column(_enum(MessageAudience, "message_audience"))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    recipients: Mapped[int] = mapped_column(default=0)
    # The form's one-time token: a double-click or a resubmitted page sends nothing twice.
    form_token: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    session: Mapped[Session] = relationship()
    sent_by: Mapped[User | None] = relationship()


# Periodic jobs


class JobRun(Model):
    """The last run of one periodic job, and the claim that keeps two workers off it."""

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    claimed_by: Mapped[str] = mapped_column(String(120), default="")
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_ok: Mapped[bool | None] = mapped_column(default=None)
    last_result: Mapped[str] = mapped_column(Text, default="")
    last_error: Mapped[str] = mapped_column(Text, default="")
    last_trigger: Mapped[str] = mapped_column(String(40), default="")
    runs: Mapped[int] = mapped_column(default=0)
    failures: Mapped[int] = mapped_column(default=0)
