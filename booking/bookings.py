"""Booking services: book, cancel, move, waiting list and the protected-time check.

Each public service checks the rules, changes state, queues its mail in the same
transaction and commits once. Capacity is taken with a guarded UPDATE so that two
requests for the last place cannot both succeed, whatever the backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from scheduler.rules import Breach, ProtectedTime, TrainingDay, breaches

from .audit.services import record
from .errors import (
    AlreadyBooked,
    BookingError,
    NotAllowed,
    OutsideAsyeYear,
    ProtectedTimeExceeded,
    SessionFull,
    SessionNotBookable,
    SessionStarted,
)
from .extensions import db
from .models import (
    NQSW,
    Booking,
    BookingSource,
    BookingStatus,
    Course,
    Programme,
    Session,
    SessionStatus,
    User,
    WaitlistEntry,
    WaitStatus,
    london_today,
    utcnow,
)
from .notifications import queue_invitation, queue_message


def rules_for(programme: Programme) -> ProtectedTime:
    """Return the programme's protected-time rule as the solver sees it."""
    return ProtectedTime(
        protected_days_per_week=float(programme.protected_days_per_week),
        window_weeks=programme.window_weeks,
    )


def live_bookings(nqsw: NQSW) -> list[Booking]:
    """Return the NQSW's current bookings, soonest first."""
    return list(
        db.session.scalars(
            select(Booking)
            .join(Session)
            .where(Booking.nqsw_id == nqsw.id, Booking.status == BookingStatus.BOOKED)
            .order_by(Session.starts_at)
        )
    )


def _lock_nqsw(nqsw: NQSW) -> None:
    # Serialises one person's bookings so two tabs cannot both pass the protected-time check.
    db.session.execute(select(NQSW.id).where(NQSW.id == nqsw.id).with_for_update())


def _who(nqsw: NQSW, by: User | None) -> tuple[str, str]:
    """Return how a message to ``by`` names the NQSW: ("You are", "your") or by name."""
    if _for_self(nqsw, by):
        return "You are", "your"
    return f"{nqsw.name} is", "their"


def _for_self(nqsw: NQSW, by: User | None) -> bool:
    return by is None or by.id == nqsw.user_id


def _fmt_day(day: date) -> str:
    return f"{day:%a} {day.day} {day:%b %Y}"


def _fmt_days(days: float) -> str:
    return f"{days:g} day" + ("" if days == 1 else "s")


def check_protected_time(
    nqsw: NQSW,
    session: Session,
    *,
    ignoring: Booking | None = None,
    by: User | None = None,
) -> None:
    """Refuse ``session`` if it would break the NQSW's protected-time limit."""
    rules = rules_for(nqsw.programme)
    items: list[TrainingDay[int]] = [
        TrainingDay(b.session_id, b.session.local_date, b.session.course.days)
        for b in live_bookings(nqsw)
        if b is not ignoring and b.session.status is SessionStatus.SCHEDULED
    ]
    items.append(TrainingDay(session.id, session.local_date, session.course.days))
    found = [b for b in breaches(rules, float(nqsw.fte), items) if session.id in b.keys]
    if not found:
        return
    breach = found[0]
    sessions = {
        s.id: s for s in db.session.scalars(select(Session).where(Session.id.in_(breach.keys)))
    }
    using = ", ".join(
        f"{sessions[k].course.title} on {_fmt_day(sessions[k].local_date)}"
        for k in breach.keys
        if k != session.id
    )
    raise ProtectedTimeExceeded(
        f"This would put {_fmt_days(breach.used)} of training in the "
        f"{rules.window_weeks} weeks from {_fmt_day(breach.window_start)} to "
        f"{_fmt_day(breach.window_end)}, but {_who(nqsw, by)[1]} protected time allows "
        f"{_fmt_days(breach.cap)} at {float(nqsw.fte):g} FTE. "
        f"Already in that window: {using}. Choose the course's other date, or move one of those."
    )


def _check_bookable(
    nqsw: NQSW, session: Session, now: datetime, *, allow_started: bool = False
) -> None:
    if nqsw.withdrawn_at is not None:
        raise NotAllowed("This NQSW has been withdrawn from the programme.")
    if session.course.programme_id != nqsw.programme_id:
        raise SessionNotBookable("This session belongs to another programme.")
    if session.status is SessionStatus.CANCELLED:
        raise SessionNotBookable("This session has been cancelled.")
    if session.starts_at <= now and not allow_started:
        raise SessionStarted("This session has already started.")
    day = session.local_date
    if not nqsw.asye_start <= day <= nqsw.asye_end:
        raise OutsideAsyeYear(
            f"{_fmt_day(day)} is outside the ASYE year "
            f"({_fmt_day(nqsw.asye_start)} to {_fmt_day(nqsw.asye_end)})."
        )


def _take_place(session: Session, *, for_self: bool = True) -> None:
    result = db.session.execute(
        update(Session)
        .where(Session.id == session.id, Session.taken < Session.capacity)
        .values(taken=Session.taken + 1)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        db.session.rollback()
        # Only the NQSW can join a waiting list; a coordinator is told plainly.
        hint = " You can join the waiting list." if for_self else ""
        raise SessionFull(
            f"{session.course.title} on {_fmt_day(session.local_date)} is full.{hint}"
        )
    db.session.refresh(session)


def _take_place_over_capacity(session: Session) -> bool:
    """Take a place, adding one to the capacity if the session is full; return True if added.

    Both steps are guarded updates, so a place freed in between is used rather than added.
    """
    for _ in range(3):
        taken = db.session.execute(
            update(Session)
            .where(Session.id == session.id, Session.taken < Session.capacity)
            .values(taken=Session.taken + 1)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount == 1:  # type: ignore[attr-defined]
            db.session.refresh(session)
            return False
        raised = db.session.execute(
            update(Session)
            .where(Session.id == session.id, Session.taken >= Session.capacity)
            .values(taken=Session.taken + 1, capacity=Session.capacity + 1)
            .execution_options(synchronize_session=False)
        )
        if raised.rowcount == 1:  # type: ignore[attr-defined]
            db.session.refresh(session)
            return True
    raise BookingError("The session's places kept changing; try again.")


def _free_place(session: Session, now: datetime) -> None:
    """Give a freed place to the first person waiting, or release it."""
    entry = db.session.scalars(
        select(WaitlistEntry)
        .where(WaitlistEntry.session_id == session.id, WaitlistEntry.status == WaitStatus.WAITING)
        .order_by(WaitlistEntry.created_at, WaitlistEntry.id)
        .limit(1)
    ).first()
    if entry is None:
        db.session.execute(
            update(Session)
            .where(Session.id == session.id, Session.taken > 0)
            .values(taken=Session.taken - 1)
            .execution_options(synchronize_session=False)
        )
        db.session.refresh(session)
        return
    # The place stays taken: it is held for the offer until accepted or expired.
    hours = session.course.programme.waitlist_hold_hours
    entry.status = WaitStatus.OFFERED
    entry.offered_at = now
    entry.offer_expires_at = now + timedelta(hours=hours)
    queue_message(
        "waitlist_offer",
        entry.nqsw.email,
        f"A place is free: {session.course.title}",
        entry=entry,
        session=session,
    )


def _add_booking(nqsw: NQSW, session: Session, by: User | None, source: BookingSource) -> Booking:
    booking = Booking(
        session=session,
        nqsw=nqsw,
        course_id=session.course_id,
        source=source,
        booked_by_id=by.id if by else None,
    )
    db.session.add(booking)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise AlreadyBooked(f"{_who(nqsw, by)[0]} already booked on this course.") from None
    return booking


def _close_waiting(nqsw: NQSW, session: Session, now: datetime) -> None:
    for entry in db.session.scalars(
        select(WaitlistEntry).where(
            WaitlistEntry.nqsw_id == nqsw.id,
            WaitlistEntry.session_id == session.id,
            WaitlistEntry.status == WaitStatus.WAITING,
        )
    ):
        entry.status = WaitStatus.CLOSED
        entry.closed_at = now


def book_place(
    nqsw: NQSW,
    session: Session,
    *,
    by: User | None = None,
    source: BookingSource = BookingSource.SELF,
    now: datetime | None = None,
    override_reason: str = "",
) -> Booking:
    """Book the NQSW onto the session, or raise a BookingError saying why not.

    A coordinator who gives ``override_reason`` books past the started, capacity and
    protected-time rules (a walk-in, one more in the room): the reason is kept on the
    booking and in the audit log, with the rules it overrode.
    """
    now = now or utcnow()
    reason = override_reason.strip()
    if reason and (by is None or not by.is_coordinator):
        raise NotAllowed("Only a coordinator can book a place as an exception.")
    _lock_nqsw(nqsw)
    _check_bookable(nqsw, session, now, allow_started=bool(reason))
    existing = _live_on_course(nqsw, session.course_id)
    if existing is not None:
        if existing.session_id == session.id:
            raise AlreadyBooked(f"{_who(nqsw, by)[0]} already booked on this session.")
        raise AlreadyBooked(
            f"{_who(nqsw, by)[0]} already booked on {session.course.title} on "
            f"{_fmt_day(existing.session.local_date)}. Move that booking instead."
        )
    overrode: list[str] = []
    if not reason:
        check_protected_time(nqsw, session, by=by)
        _take_place(session, for_self=_for_self(nqsw, by))
    else:
        if session.starts_at <= now:
            overrode.append("started")
        try:
            check_protected_time(nqsw, session, by=by)
        except ProtectedTimeExceeded:
            overrode.append("protected_time")
        if _take_place_over_capacity(session):
            overrode.append("capacity")
    booking = _add_booking(nqsw, session, by, source)
    if overrode:
        booking.override_reason = reason
        record(
            "booking.override",
            booking,
            actor=by,
            after={
                "status": booking.status,
                "overrode": ",".join(overrode),
                "capacity": session.capacity,
            },
            nqsw_id=nqsw.id,
            session_id=session.id,
            employer_id=nqsw.employer_id,
            reason=reason,
            at=now,
        )
    _close_waiting(nqsw, session, now)
    queue_invitation(
        "booking_confirmed",
        nqsw,
        session,
        f"Booked: {session.course.title}, {_fmt_day(session.local_date)}",
        booking=booking,
    )
    db.session.commit()
    return booking


def _live_on_course(nqsw: NQSW, course_id: int) -> Booking | None:
    return db.session.scalars(
        select(Booking).where(
            Booking.nqsw_id == nqsw.id,
            Booking.course_id == course_id,
            Booking.status == BookingStatus.BOOKED,
        )
    ).first()


def working_days_between(start: date, end: date) -> int:
    """Return the Monday-to-Friday days after ``start`` up to and including ``end``."""
    if end <= start:
        return 0
    count = 0
    day = start
    while day < end:
        day += timedelta(days=1)
        if day.weekday() < 5:
            count += 1
    return count


def is_late(session: Session, now: datetime) -> bool:
    """Return True when cancelling now falls inside the programme's cut-off."""
    today = london_today(now)
    cutoff = session.course.programme.cancellation_cutoff_working_days
    return working_days_between(today, session.local_date) < cutoff


def cancel_booking(
    booking: Booking, *, by: User | None = None, now: datetime | None = None
) -> Booking:
    """Cancel a booking, recording it as late inside the cut-off, and free the place."""
    release_booking(booking, now=now or utcnow())
    db.session.commit()
    return booking


def release_booking(booking: Booking, *, now: datetime) -> None:
    """Cancel a booking in the caller's transaction (the caller commits)."""
    if booking.status is not BookingStatus.BOOKED:
        raise BookingError("This booking is not active.")
    session = booking.session
    if session.starts_at <= now:
        raise SessionNotBookable("This session has already started; it cannot be cancelled.")
    booking.status = BookingStatus.CANCELLED
    booking.cancelled_at = now
    booking.late_cancellation = is_late(session, now)
    _free_place(session, now)
    queue_invitation(
        "booking_cancelled",
        booking.nqsw,
        session,
        f"Cancelled: {session.course.title}, {_fmt_day(session.local_date)}",
        cancel=True,
        booking=booking,
    )


def move_booking(
    booking: Booking,
    target: Session,
    *,
    by: User | None = None,
    source: BookingSource = BookingSource.SELF,
    now: datetime | None = None,
    holding: WaitlistEntry | None = None,
) -> Booking:
    """Move a booking to another date of the same course; return the new booking."""
    now = now or utcnow()
    if booking.status is not BookingStatus.BOOKED:
        raise BookingError("This booking is not active.")
    if target.course_id != booking.course_id:
        raise SessionNotBookable("You can only move to another date of the same course.")
    if target.id == booking.session_id:
        raise AlreadyBooked(f"{_who(booking.nqsw, by)[0]} already booked on this session.")
    nqsw = booking.nqsw
    _lock_nqsw(nqsw)
    _check_bookable(nqsw, target, now)
    old = booking.session
    if old.starts_at <= now:
        raise SessionNotBookable("Your booked session has already started; it cannot be moved.")
    check_protected_time(nqsw, target, ignoring=booking, by=by)
    if holding is None:
        _take_place(target, for_self=_for_self(nqsw, by))
    booking.status = BookingStatus.MOVED
    booking.cancelled_at = now
    db.session.flush()  # frees the one-live-booking-per-course slot before the new row
    new = _add_booking(nqsw, target, by, source)
    booking.moved_to_id = new.id
    _close_waiting(nqsw, target, now)
    _free_place(old, now)
    queue_invitation(
        "booking_moved",
        nqsw,
        target,
        f"Moved: {target.course.title}, now {_fmt_day(target.local_date)}",
        booking=new,
        old_session=old,
    )
    db.session.commit()
    return new


def join_waitlist(nqsw: NQSW, session: Session, *, now: datetime | None = None) -> WaitlistEntry:
    """Add the NQSW to a full session's waiting list."""
    now = now or utcnow()
    _check_bookable(nqsw, session, now)
    if session.places_left > 0:
        raise BookingError("This session still has places: book one instead.")
    existing = _live_on_course(nqsw, session.course_id)
    if existing is not None and existing.session_id == session.id:
        raise AlreadyBooked("You are already booked on this session.")
    entry = WaitlistEntry(session=session, nqsw=nqsw, created_at=now)
    db.session.add(entry)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise BookingError("You are already on the waiting list for this session.") from None
    queue_message(
        "waitlist_joined",
        nqsw.email,
        f"Waiting list: {session.course.title}, {_fmt_day(session.local_date)}",
        entry=entry,
        session=session,
        position=waitlist_position(entry),
    )
    db.session.commit()
    return entry


def waitlist_position(entry: WaitlistEntry) -> int:
    """Return the 1-based place of a waiting entry in its queue."""
    ahead = db.session.scalars(
        select(WaitlistEntry.id).where(
            WaitlistEntry.session_id == entry.session_id,
            WaitlistEntry.status == WaitStatus.WAITING,
            (WaitlistEntry.created_at < entry.created_at)
            | ((WaitlistEntry.created_at == entry.created_at) & (WaitlistEntry.id < entry.id)),
        )
    ).all()
    return len(ahead) + 1


def leave_waitlist(entry: WaitlistEntry, *, now: datetime | None = None) -> None:
    """Take the NQSW off a waiting list; an open offer passes to the next person."""
    now = now or utcnow()
    if entry.status not in (WaitStatus.WAITING, WaitStatus.OFFERED):
        raise BookingError("You are no longer on this waiting list.")
    was_offered = entry.status is WaitStatus.OFFERED
    entry.status = WaitStatus.WITHDRAWN
    entry.closed_at = now
    if was_offered:
        db.session.flush()
        _free_place(entry.session, now)
    db.session.commit()


def accept_offer(entry: WaitlistEntry, *, now: datetime | None = None) -> Booking:
    """Turn a held waiting-list place into a booking (moving any other date of the course)."""
    now = now or utcnow()
    if entry.status is not WaitStatus.OFFERED:
        raise BookingError("This offer is no longer open.")
    assert entry.offer_expires_at is not None
    if entry.offer_expires_at <= now:
        raise BookingError("This offer has expired.")
    nqsw, session = entry.nqsw, entry.session
    existing = _live_on_course(nqsw, session.course_id)
    entry.status = WaitStatus.ACCEPTED
    entry.closed_at = now
    if existing is not None:
        return move_booking(
            existing, session, source=BookingSource.WAITING_LIST, now=now, holding=entry
        )
    _lock_nqsw(nqsw)
    _check_bookable(nqsw, session, now)
    check_protected_time(nqsw, session)
    booking = _add_booking(nqsw, session, None, BookingSource.WAITING_LIST)
    queue_invitation(
        "booking_confirmed",
        nqsw,
        session,
        f"Booked: {session.course.title}, {_fmt_day(session.local_date)}",
        booking=booking,
    )
    db.session.commit()
    return booking


def expire_offers(now: datetime | None = None) -> int:
    """Pass every expired offer to the next person waiting; return how many expired."""
    now = now or utcnow()
    expired = db.session.scalars(
        select(WaitlistEntry)
        .where(WaitlistEntry.status == WaitStatus.OFFERED, WaitlistEntry.offer_expires_at <= now)
        .order_by(WaitlistEntry.offer_expires_at)
        .with_for_update(skip_locked=True)
    ).all()
    for entry in expired:
        entry.status = WaitStatus.EXPIRED
        entry.closed_at = now
        db.session.flush()
        queue_message(
            "waitlist_expired",
            entry.nqsw.email,
            f"Offer expired: {entry.session.course.title}",
            entry=entry,
            session=entry.session,
        )
        _free_place(entry.session, now)
    db.session.commit()
    return len(expired)


def cancel_session(
    session: Session, *, reason: str, by: User | None = None, now: datetime | None = None
) -> int:
    """Cancel a session for everyone: bookings and waiting list are told; return people told."""
    now = now or utcnow()
    if session.status is SessionStatus.CANCELLED:
        raise BookingError("This session is already cancelled.")
    session.status = SessionStatus.CANCELLED
    session.cancelled_reason = reason
    session.touch()
    told = 0
    for booking in session.bookings:
        if booking.status is BookingStatus.BOOKED:
            booking.status = BookingStatus.CANCELLED
            booking.cancelled_at = now
            queue_invitation(
                "session_cancelled",
                booking.nqsw,
                session,
                f"Cancelled by the programme: {session.course.title}, "
                f"{_fmt_day(session.local_date)}",
                cancel=True,
                reason=reason,
                other_dates=bookable_alternatives(session),
            )
            told += 1
    for entry in db.session.scalars(
        select(WaitlistEntry).where(
            WaitlistEntry.session_id == session.id,
            WaitlistEntry.status.in_([WaitStatus.WAITING, WaitStatus.OFFERED]),
        )
    ):
        entry.status = WaitStatus.CLOSED
        entry.closed_at = now
        queue_message(
            "session_cancelled",
            entry.nqsw.email,
            f"Cancelled by the programme: {session.course.title}, {_fmt_day(session.local_date)}",
            session=session,
            reason=reason,
            other_dates=bookable_alternatives(session),
        )
        told += 1
    session.taken = 0
    db.session.commit()
    return told


def bookable_alternatives(session: Session) -> Sequence[Session]:
    """Return the course's other scheduled future dates."""
    return [
        s
        for s in session.course.sessions
        if s.id != session.id and s.status is SessionStatus.SCHEDULED and s.starts_at > utcnow()
    ]


@dataclass(frozen=True)
class CoursePlan:
    """One course as an NQSW sees it: their place, or the dates they can choose."""

    course: Course
    booking: Booking | None
    waiting: list[WaitlistEntry]
    options: list[Session]


@dataclass(frozen=True)
class TrainingPlan:
    """What an NQSW has booked, still has to book, and the protected time used."""

    courses: list[CoursePlan]
    days_booked: float
    busiest_window: Breach[int] | None
    cap_days: float
    window_weeks: int

    @property
    def to_book(self) -> list[CoursePlan]:
        return [c for c in self.courses if c.booking is None and not c.course.optional]


def training_plan(nqsw: NQSW, *, now: datetime | None = None) -> TrainingPlan:
    """Return the NQSW's plan for their programme year."""
    now = now or utcnow()
    programme = nqsw.programme
    bookings = {b.course_id: b for b in live_bookings(nqsw)}
    waiting: dict[int, list[WaitlistEntry]] = {}
    for entry in db.session.scalars(
        select(WaitlistEntry).where(
            WaitlistEntry.nqsw_id == nqsw.id,
            WaitlistEntry.status.in_([WaitStatus.WAITING, WaitStatus.OFFERED]),
        )
    ):
        waiting.setdefault(entry.session.course_id, []).append(entry)
    plans = []
    for course in programme.courses:
        options = [
            s
            for s in course.sessions
            if s.status is SessionStatus.SCHEDULED
            and s.starts_at > now
            and nqsw.asye_start <= s.local_date <= nqsw.asye_end
        ]
        plans.append(
            CoursePlan(course, bookings.get(course.id), waiting.get(course.id, []), options)
        )
    rules = rules_for(programme)
    items = [
        TrainingDay(b.session_id, b.session.local_date, b.session.course.days)
        for b in bookings.values()
    ]
    # The fullest window, found by asking for breaches against a zero cap.
    windows = breaches(ProtectedTime(0.0, rules.window_weeks), 1.0, items)
    busiest = max(windows, key=lambda w: w.used, default=None)
    return TrainingPlan(
        courses=plans,
        days_booked=sum(i.days for i in items),
        busiest_window=busiest,
        cap_days=rules.cap_days(float(nqsw.fte)),
        window_weeks=rules.window_weeks,
    )


def cancelled_by_programme(nqsw: NQSW) -> dict[int, Booking]:
    """Return, by course id, the NQSW's latest place the programme cancelled with its session.

    Only courses the NQSW holds no live place on: once they rebook, the notice has done its job.
    """
    live = {b.course_id for b in live_bookings(nqsw)}
    found: dict[int, Booking] = {}
    for booking in db.session.scalars(
        select(Booking)
        .join(Session)
        .where(
            Booking.nqsw_id == nqsw.id,
            Booking.status == BookingStatus.CANCELLED,
            Session.status == SessionStatus.CANCELLED,
        )
        .order_by(Booking.cancelled_at, Booking.id)
    ):
        if booking.course_id not in live:
            found[booking.course_id] = booking
    return found
