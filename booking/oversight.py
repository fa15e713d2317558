"""Read-only queries behind the coordinator's pages: counts, registers and the outbox."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from .extensions import db
from .models import (
    NQSW,
    Booking,
    BookingStatus,
    Course,
    Employer,
    MessageStatus,
    OutboxMessage,
    Programme,
    Session,
    SessionStatus,
    User,
    WaitlistEntry,
    WaitStatus,
    utcnow,
)


@dataclass(frozen=True)
class ProgrammeCounts:
    """The figures a coordinator glances at for one programme year."""

    nqsws: int
    bookings: int
    full_sessions: int
    open_offers: int


def programme_counts(programme: Programme) -> ProgrammeCounts:
    """Return enrolled NQSWs, live bookings, full upcoming sessions and open offers."""
    in_programme = Course.programme_id == programme.id
    nqsws = db.session.scalar(
        select(func.count(NQSW.id)).where(
            NQSW.programme_id == programme.id, NQSW.withdrawn_at.is_(None)
        )
    )
    bookings = db.session.scalar(
        select(func.count(Booking.id))
        .join(Course, Booking.course_id == Course.id)
        .where(in_programme, Booking.status == BookingStatus.BOOKED)
    )
    full = db.session.scalar(
        select(func.count(Session.id))
        .join(Course)
        .where(
            in_programme,
            Session.status == SessionStatus.SCHEDULED,
            Session.starts_at > utcnow(),
            Session.taken >= Session.capacity,
        )
    )
    offers = db.session.scalar(
        select(func.count(WaitlistEntry.id))
        .join(Session)
        .join(Course)
        .where(in_programme, WaitlistEntry.status == WaitStatus.OFFERED)
    )
    return ProgrammeCounts(nqsws or 0, bookings or 0, full or 0, offers or 0)


def outbox_counts() -> dict[str, int]:
    """Return how many outbox messages are in each status, keyed by the status's value."""
    rows = db.session.execute(
        select(OutboxMessage.status, func.count(OutboxMessage.id)).group_by(OutboxMessage.status)
    ).all()
    counts = dict.fromkeys((s.value for s in MessageStatus), 0)
    counts.update({status.value: count for status, count in rows})
    return counts


@dataclass(frozen=True)
class OutboxPage:
    """One page of outbox messages and where it sits among all that match."""

    messages: Sequence[OutboxMessage]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def first(self) -> int:
        return (self.page - 1) * self.per_page + 1 if self.total else 0

    @property
    def last(self) -> int:
        return min(self.page * self.per_page, self.total)


def _like(text: str) -> str:
    # What a person types is matched literally: % and _ are not wildcards here.
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def outbox_page(
    *,
    status: MessageStatus | None = None,
    kind: str = "",
    recipient: str = "",
    page: int = 1,
    per_page: int = 50,
) -> OutboxPage:
    """Return one page of outbox messages, newest first, filtered and counted by the database."""
    filters = []
    if status is not None:
        filters.append(OutboxMessage.status == status)
    if kind:
        filters.append(OutboxMessage.kind == kind)
    if recipient.strip():
        filters.append(
            func.lower(OutboxMessage.recipients).like(_like(recipient.strip().lower()), escape="\\")
        )
    total = db.session.scalar(select(func.count(OutboxMessage.id)).where(*filters)) or 0
    pages = max(1, -(-total // per_page))
    page = min(max(page, 1), pages)
    messages = db.session.scalars(
        select(OutboxMessage)
        .where(*filters)
        .order_by(OutboxMessage.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return OutboxPage(messages, total, page, per_page)


def outbox_kinds() -> list[str]:
    """Return the kinds of message the outbox holds, for the filter."""
    return list(
        db.session.scalars(select(OutboxMessage.kind).distinct().order_by(OutboxMessage.kind))
    )


def employers() -> Sequence[Employer]:
    """Return every employer by name, with contacts and NQSWs loaded."""
    return db.session.scalars(
        select(Employer)
        .options(selectinload(Employer.contacts), selectinload(Employer.nqsws))
        .order_by(Employer.name)
    ).all()


def employer_nqsws(employer: Employer) -> Sequence[NQSW]:
    """Return an employer's NQSWs on any programme, by name."""
    return db.session.scalars(
        select(NQSW)
        .join(User, NQSW.user_id == User.id)
        .where(NQSW.employer_id == employer.id)
        .options(selectinload(NQSW.programme))
        .order_by(User.name, NQSW.id)
    ).all()


def programme_nqsws(programme: Programme, *, employer_id: int | None = None) -> Sequence[NQSW]:
    """Return a programme's NQSWs by name, optionally for one employer."""
    query = (
        select(NQSW)
        .join(User, NQSW.user_id == User.id)
        .where(NQSW.programme_id == programme.id)
        .options(selectinload(NQSW.employer), selectinload(NQSW.user))
        .order_by(User.name, NQSW.id)
    )
    if employer_id is not None:
        query = query.where(NQSW.employer_id == employer_id)
    return db.session.scalars(query).all()


def session_bookings(session: Session) -> Sequence[Booking]:
    """Return a session's live bookings in the order they were made."""
    return db.session.scalars(
        select(Booking)
        .where(Booking.session_id == session.id, Booking.status == BookingStatus.BOOKED)
        .options(selectinload(Booking.nqsw).selectinload(NQSW.employer))
        .order_by(Booking.created_at, Booking.id)
    ).all()


def session_waitlist(session: Session) -> Sequence[WaitlistEntry]:
    """Return a session's open waiting list in queue order."""
    return db.session.scalars(
        select(WaitlistEntry)
        .where(
            WaitlistEntry.session_id == session.id,
            WaitlistEntry.status.in_([WaitStatus.WAITING, WaitStatus.OFFERED]),
        )
        .order_by(WaitlistEntry.created_at, WaitlistEntry.id)
    ).all()


def bookable_nqsws(session: Session) -> list[NQSW]:
    """Return active NQSWs who could take a place on the session: in year, not yet on its course."""
    booked = select(Booking.nqsw_id).where(
        Booking.course_id == session.course_id, Booking.status == BookingStatus.BOOKED
    )
    candidates = db.session.scalars(
        select(NQSW)
        .join(User, NQSW.user_id == User.id)
        .where(
            NQSW.programme_id == session.course.programme_id,
            NQSW.withdrawn_at.is_(None),
            NQSW.id.not_in(booked),
        )
        .options(selectinload(NQSW.employer), selectinload(NQSW.user))
        .order_by(User.name, NQSW.id)
    ).all()
    day = session.local_date
    return [n for n in candidates if n.asye_start <= day <= n.asye_end]
