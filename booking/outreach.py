"""What a coordinator does for the people on a session or a course, beyond booking them.

Messages to everyone booked or waiting on a session, the session's documents (a printable
sign-in sheet and an attendee CSV), and the "who still needs this course" list with its
"offer them the next date", which holds a place for the NQSW exactly as a waiting-list
offer does (so accepting, declining and expiry follow the waiting-list rules).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from .attendance import Outcome, mark_outcome, settings_for, started_outcomes
from .audit.services import record
from .errors import BookingError, InvalidInput, NotAllowed, SessionFull, SessionNotBookable
from .extensions import db
from .models import (
    NQSW,
    AttendanceRecord,
    Booking,
    BookingStatus,
    Course,
    MessageAudience,
    Session,
    SessionMessage,
    SessionStatus,
    User,
    WaitlistEntry,
    WaitStatus,
    utcnow,
)
from .notifications import queue_message

# --- Messages to a session -------------------------------------------------------------


def _audience(session: Session, audience: MessageAudience) -> list[NQSW]:
    people: dict[int, NQSW] = {}
    if audience in (MessageAudience.BOOKED, MessageAudience.BOTH):
        for booking in db.session.scalars(
            select(Booking).where(
                Booking.session_id == session.id, Booking.status == BookingStatus.BOOKED
            )
        ):
            people[booking.nqsw_id] = booking.nqsw
    if audience in (MessageAudience.WAITING, MessageAudience.BOTH):
        for entry in db.session.scalars(
            select(WaitlistEntry).where(
                WaitlistEntry.session_id == session.id,
                WaitlistEntry.status.in_([WaitStatus.WAITING, WaitStatus.OFFERED]),
            )
        ):
            people.setdefault(entry.nqsw_id, entry.nqsw)
    return sorted(people.values(), key=lambda n: (n.name.lower(), n.id))


def audience_sizes(session: Session) -> dict[MessageAudience, int]:
    """Return how many people each choice of audience would reach."""
    return {audience: len(_audience(session, audience)) for audience in MessageAudience}


def message_session(
    session: Session,
    *,
    audience: MessageAudience,
    subject: str,
    body: str,
    by: User,
    form_token: str,
) -> SessionMessage:
    """Mail each person booked and/or waiting, with the session's details; keep it on record.

    ``form_token`` is the form's one-time token: sending the same form twice (a double
    click, a resubmitted page) sends nothing the second time.
    """
    subject, body = subject.strip(), body.strip()
    if not subject:
        raise InvalidInput("Enter a subject.", field="subject")
    if not body:
        raise InvalidInput("Enter the message.", field="body")
    if not form_token:
        raise InvalidInput("This form has expired: reload the page and try again.")
    people = _audience(session, audience)
    if not people:
        raise InvalidInput(
            f"Nobody is {_audience_words(audience)} on this session.", field="audience"
        )
    sent = SessionMessage(
        session_id=session.id,
        sent_by_id=by.id,
        audience=audience,
        subject=subject,
        body=body,
        recipients=len(people),
        form_token=form_token,
        created_at=utcnow(),
    )
    db.session.add(sent)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise BookingError("This message has already been sent.") from None
    for nqsw in people:
        # One mail each, so nobody sees who else is on the session.
        queue_message(
            "session_message",
            nqsw.email,
            subject,
            dedupe_key=f"session-message:{sent.id}:{nqsw.id}",
            session=session,
            nqsw=nqsw,
            body=body,
        )
    record(
        "session.message",
        sent,
        actor=by,
        after={"audience": audience, "recipients": len(people)},
        session_id=session.id,
    )
    db.session.commit()
    return sent


def _audience_words(audience: MessageAudience) -> str:
    return {
        MessageAudience.BOOKED: "booked",
        MessageAudience.WAITING: "waiting",
        MessageAudience.BOTH: "booked or waiting",
    }[audience]


def session_messages(session: Session) -> Sequence[SessionMessage]:
    """Return the messages coordinators wrote to the session, newest first."""
    return db.session.scalars(
        select(SessionMessage)
        .where(SessionMessage.session_id == session.id)
        .order_by(SessionMessage.created_at.desc(), SessionMessage.id.desc())
    ).all()


# --- Documents ---------------------------------------------------------------------------


def _cell(value: object) -> str:
    # A spreadsheet runs a cell starting with = + - @ (or a tab or return) as a formula.
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def attendees(session: Session) -> Sequence[Booking]:
    """Return the session's live bookings, by name."""
    found = db.session.scalars(
        select(Booking)
        .where(Booking.session_id == session.id, Booking.status == BookingStatus.BOOKED)
        .options(selectinload(Booking.nqsw).selectinload(NQSW.employer))
    ).all()
    return sorted(found, key=lambda b: (b.nqsw.name.lower(), b.nqsw.id))


def attendee_csv(session: Session) -> str:
    """Return the people booked on a session as CSV, safe to open in a spreadsheet."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["name", "email", "employer", "swe_number", "fte", "booked_at", "how", "exception"]
    )
    for booking in attendees(session):
        nqsw = booking.nqsw
        writer.writerow(
            [
                _cell(v)
                for v in (
                    nqsw.name,
                    nqsw.email,
                    nqsw.employer.name,
                    nqsw.swe_number,
                    f"{float(nqsw.fte):g}",
                    booking.created_at.isoformat(),
                    booking.source.value,
                    booking.override_reason,
                )
            ]
        )
    return out.getvalue()


# --- Who still needs a course ------------------------------------------------------------


@dataclass(frozen=True)
class Need:
    """An NQSW who still needs a course: why, and the date they could be offered."""

    nqsw: NQSW
    why: str
    next_date: Session | None
    offer: WaitlistEntry | None
    past_booking: Booking | None


def _next_date(course: Course, nqsw: NQSW, now: datetime) -> Session | None:
    for session in course.sessions:
        if (
            session.status is SessionStatus.SCHEDULED
            and session.starts_at > now
            and nqsw.asye_start <= session.local_date <= nqsw.asye_end
            and session.places_left > 0
        ):
            return session
    return None


def still_needs(course: Course, *, now: datetime | None = None) -> list[Need]:
    """Return the course's NQSWs who have no place ahead on it and have not attended it."""
    now = now or utcnow()
    nqsws = db.session.scalars(
        select(NQSW)
        .where(NQSW.programme_id == course.programme_id, NQSW.withdrawn_at.is_(None))
        .options(selectinload(NQSW.user), selectinload(NQSW.employer))
    ).all()
    live = {
        b.nqsw_id: b
        for b in db.session.scalars(
            select(Booking).where(
                Booking.course_id == course.id, Booking.status == BookingStatus.BOOKED
            )
        )
    }
    outcomes = started_outcomes(list(live.values()), now=now)
    session_ids = [s.id for s in course.sessions]
    settings = settings_for(course.programme)
    share = course.programme.attendance_min_share_percent
    # Marked as attending a date of the course without a live booking there (a walk-in
    # recorded by hand, or a retaken course's old date): they have had the course.
    attended_elsewhere = {
        r.nqsw_id
        for r in db.session.scalars(
            select(AttendanceRecord).where(AttendanceRecord.session_id.in_(session_ids))
        )
        if r.nqsw_id not in live and mark_outcome(r, settings, share) is Outcome.ATTENDED
    }
    offers = {
        e.nqsw_id: e
        for e in db.session.scalars(
            select(WaitlistEntry).where(
                WaitlistEntry.session_id.in_(session_ids),
                WaitlistEntry.status == WaitStatus.OFFERED,
            )
        )
    }
    needs = []
    for nqsw in nqsws:
        booking = live.get(nqsw.id)
        past: Booking | None = None
        if booking is not None:
            outcome = outcomes.get(booking.id)
            if outcome not in (Outcome.MISSED, Outcome.EXCUSED):
                continue  # booked ahead, attended, or the register is still to be taken
            past = booking
            why = (
                f"Missed {booking.session.local_start:%-d %B}"
                if outcome is Outcome.MISSED
                else f"Absent with apology on {booking.session.local_start:%-d %B}"
            )
        elif nqsw.id in attended_elsewhere:
            continue
        else:
            why = "Not booked"
        needs.append(Need(nqsw, why, _next_date(course, nqsw, now), offers.get(nqsw.id), past))
    return sorted(needs, key=lambda n: (n.nqsw.name.lower(), n.nqsw.id))


def offer_next_date(
    course: Course, nqsw: NQSW, *, by: User, now: datetime | None = None
) -> WaitlistEntry:
    """Hold a place on the course's next date for an NQSW who still needs it, and tell them.

    The place is held as a waiting-list offer for the programme's hold time: the NQSW
    accepts or declines it from the mail, and an unclaimed offer passes on when it expires.
    Someone who missed a past date has that booking closed as retaken (its register mark
    still counts), so the new place can be accepted.
    """
    now = now or utcnow()
    if not by.is_coordinator:
        raise NotAllowed("Only a coordinator can offer places.")
    need = next((n for n in still_needs(course, now=now) if n.nqsw.id == nqsw.id), None)
    if need is None:
        raise BookingError(
            f"{nqsw.name} does not need {course.title}: they are booked or attended."
        )
    if need.offer is not None:
        raise BookingError(f"{nqsw.name} already has an offer open for {course.title}.")
    session = need.next_date
    if session is None:
        raise SessionNotBookable(
            f"{course.title} has no date ahead in {nqsw.name}'s ASYE year with a place free."
        )
    taken = db.session.execute(
        update(Session)
        .where(Session.id == session.id, Session.taken < Session.capacity)
        .values(taken=Session.taken + 1)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        db.session.rollback()
        raise SessionFull(f"{course.title} on {session.local_start:%-d %B} has just filled up.")
    if need.past_booking is not None:
        _close_as_retaken(need.past_booking, now)
    hours = course.programme.waitlist_hold_hours
    entry = db.session.scalar(
        select(WaitlistEntry).where(
            WaitlistEntry.session_id == session.id,
            WaitlistEntry.nqsw_id == nqsw.id,
            WaitlistEntry.status == WaitStatus.WAITING,
        )
    )
    if entry is None:
        entry = WaitlistEntry(session_id=session.id, nqsw_id=nqsw.id, created_at=now)
        db.session.add(entry)
    entry.status = WaitStatus.OFFERED
    entry.offered_at = now
    entry.offer_expires_at = now + timedelta(hours=hours)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise BookingError(f"{nqsw.name} already has an offer open for {course.title}.") from None
    db.session.refresh(session)
    queue_message(
        "waitlist_offer",
        nqsw.email,
        f"A place is free: {course.title}",
        entry=entry,
        session=session,
    )
    record(
        "waitlist.offer",
        entry,
        actor=by,
        after={"status": WaitStatus.OFFERED, "session": session.id, "from": "still_needs"},
        nqsw_id=nqsw.id,
        session_id=session.id,
        employer_id=nqsw.employer_id,
    )
    db.session.commit()
    return entry


def _close_as_retaken(booking: Booking, now: datetime) -> None:
    """Close a missed past booking so the course can be taken again; its mark stays."""
    closed = db.session.execute(
        update(Booking)
        .where(Booking.id == booking.id, Booking.status == BookingStatus.BOOKED)
        .values(status=BookingStatus.MOVED, cancelled_at=now)
        .execution_options(synchronize_session=False)
    )
    if closed.rowcount != 1:  # type: ignore[attr-defined]
        db.session.rollback()
        raise BookingError("That booking changed while you were looking: reload the page.")
    # The past session's place is no longer held by anyone; nobody can be offered it.
    db.session.execute(
        update(Session)
        .where(Session.id == booking.session_id, Session.taken > 0)
        .values(taken=Session.taken - 1)
        .execution_options(synchronize_session=False)
    )
    record(
        "booking.retake",
        booking,
        after={"status": BookingStatus.MOVED},
        before={"status": BookingStatus.BOOKED},
        nqsw_id=booking.nqsw_id,
        session_id=booking.session_id,
        reason="Missed; offered the course's next date",
    )
    db.session.expire(booking)
