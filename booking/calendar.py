"""iCalendar (RFC 5545) feeds and mailed invitations.

Feeds use each session's own stable UID, its SEQUENCE and a DTSTAMP from its last
change, with UTC times, so subscribed calendars update events in place. A cancelled
session (or a place the subscriber gave up) stays as ``STATUS:CANCELLED`` for
``CALENDAR_KEEP_CANCELLED_DAYS`` before it leaves the feed.

Mailed invitations use a different UID: one per NQSW and course (``InvitationThread``),
because an NQSW's place on a course is one event in their mailbox whichever date it is
on. Booking, moving and host changes send ``METHOD:REQUEST`` and cancellations
``METHOD:CANCEL``, each with a higher SEQUENCE on that UID.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr

from flask import current_app
from icalendar import Calendar, Event, vCalAddress, vText
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from .extensions import db
from .models import (
    NQSW,
    Booking,
    Course,
    Employer,
    FeedToken,
    InvitationThread,
    Programme,
    Role,
    Session,
    User,
    utcnow,
)
from .tokens import hash_token, new_token

PRODID = "-//ASYE training//Booking service//EN"
REFRESH = "PT1H"  # how often clients should fetch again; feeds change a few times a week


@dataclass(frozen=True)
class FeedEvent:
    """One session as a particular feed shows it."""

    session: Session
    cancelled: bool
    sequence: int
    stamp: datetime
    personal: bool = False  # joining details are only for people booked on it
    people: tuple[str, ...] = ()  # the employer's NQSWs on it, for a manager's feed


@dataclass(frozen=True)
class Feed:
    """A calendar: its name, description and events."""

    name: str
    description: str
    events: list[FeedEvent] = field(default_factory=list)
    changed_at: datetime | None = None

    @property
    def last_modified(self) -> datetime | None:
        stamps = [e.stamp for e in self.events]
        if self.changed_at is not None:
            stamps.append(self.changed_at)
        return max(stamps, default=None)


def _keep_cancelled() -> timedelta:
    return timedelta(days=int(current_app.config.get("CALENDAR_KEEP_CANCELLED_DAYS", 30)))


def _base_url() -> str:
    return str(current_app.config["BASE_URL"]).rstrip("/")


def public_events(sessions: Iterable[Session], now: datetime) -> list[FeedEvent]:
    """Return the catalogue view of sessions: cancelled ones only while recently cancelled."""
    keep = now - _keep_cancelled()
    return [
        FeedEvent(s, s.is_cancelled, s.sequence, s.updated_at)
        for s in sessions
        if not s.is_cancelled or s.updated_at >= keep
    ]


def booked_events(
    bookings: Iterable[Booking], now: datetime, *, with_names: bool = False
) -> list[FeedEvent]:
    """Return one event per session from some people's bookings (live or recently ended)."""
    by_session: dict[int, list[Booking]] = {}
    for booking in bookings:
        by_session.setdefault(booking.session_id, []).append(booking)
    keep = now - _keep_cancelled()
    events = []
    for group in by_session.values():
        session = group[0].session
        live = [b for b in group if b.is_live]
        ended = [b for b in group if not b.is_live]
        # Each booking made after the first, and each that ended, is a change the
        # subscriber saw, so the sequence rises with them and never goes back.
        sequence = session.sequence + len(ended) + len(group) - 1
        stamps = [session.updated_at, *(b.created_at for b in group)]
        stamps += [b.cancelled_at for b in ended if b.cancelled_at is not None]
        stamp = max(stamps)
        cancelled = session.is_cancelled or not live
        if cancelled and stamp < keep:
            continue
        names = tuple(sorted(b.nqsw.name for b in live)) if with_names else ()
        events.append(FeedEvent(session, cancelled, sequence, stamp, personal=True, people=names))
    return sorted(events, key=lambda e: e.session.starts_at)


def programme_feed(programme: Programme, now: datetime | None = None) -> Feed:
    """Return the whole programme's public calendar."""
    sessions = [s for course in programme.courses for s in course.sessions]
    return Feed(
        name=programme.name,
        description=f"All training sessions of {programme.name}, run by {programme.host_name}.",
        events=sorted(public_events(sessions, now or utcnow()), key=lambda e: e.session.starts_at),
        changed_at=programme.updated_at,
    )


def course_feed(course: Course, now: datetime | None = None) -> Feed:
    """Return one course's public calendar."""
    return Feed(
        name=f"{course.title} ({course.programme.name})",
        description=f"Dates of {course.title} in {course.programme.name}.",
        events=public_events(course.sessions, now or utcnow()),
        changed_at=course.programme.updated_at,
    )


def nqsw_feed(nqsw: NQSW, now: datetime | None = None) -> Feed:
    """Return an NQSW's own calendar: their booked sessions with joining links."""
    return Feed(
        name=f"My ASYE training ({nqsw.programme.name})",
        description=f"Training sessions {nqsw.name} is booked on, with joining links.",
        events=booked_events(nqsw.bookings, now or utcnow()),
        changed_at=nqsw.enrolled_at,
    )


def employer_feed(employer: Employer, now: datetime | None = None) -> Feed:
    """Return a manager's calendar: the sessions their employer's NQSWs are booked on."""
    bookings = db.session.scalars(
        select(Booking).join(NQSW).where(NQSW.employer_id == employer.id)
    ).all()
    return Feed(
        name=f"ASYE training: {employer.name}",
        description=f"Training sessions that {employer.name}'s NQSWs are booked on.",
        events=booked_events(bookings, now or utcnow(), with_names=True),
        changed_at=employer.created_at,
    )


def _event_description(event: FeedEvent) -> str:
    session = event.session
    lines = []
    if session.is_cancelled and session.cancelled_reason:
        lines.append(f"Cancelled: {session.cancelled_reason}")
    elif event.cancelled:
        lines.append("This place is no longer booked.")
    if session.course.description:
        lines.append(session.course.description)
    lines.append(f"How it runs: {session.mode}")
    if session.facilitator:
        lines.append(f"Facilitator: {session.facilitator}")
    if event.people:
        lines.append("Your NQSWs booked: " + ", ".join(event.people))
    if event.personal and not event.cancelled:
        if session.joining_url:
            lines.append(f"Joining link: {session.joining_url}")
        if session.materials_url:
            lines.append(f"Materials: {session.materials_url}")
    return "\n\n".join(lines)


def _course_url(course: Course) -> str:
    return f"{_base_url()}/programmes/{course.programme.slug}/courses/{course.code}"


def _vevent(event: FeedEvent) -> Event:
    session = event.session
    title = session.course.title
    if event.people:
        count = len(event.people)
        title += f" ({count} NQSW{'' if count == 1 else 's'})"
    vevent = Event()
    vevent.add("uid", session.uid)
    vevent.add("dtstamp", event.stamp)
    vevent.add("last-modified", event.stamp)
    vevent.add("sequence", event.sequence)
    vevent.add("dtstart", session.starts_at)
    vevent.add("dtend", session.ends_at)
    vevent.add("summary", f"Cancelled: {title}" if event.cancelled else title)
    vevent.add("description", _event_description(event))
    joining = event.personal and not event.cancelled and session.joining_url
    vevent.add("location", session.joining_url if joining else session.mode)
    vevent.add("url", session.joining_url if joining else _course_url(session.course))
    vevent.add("status", "CANCELLED" if event.cancelled else "CONFIRMED")
    vevent.add("transp", "TRANSPARENT" if event.cancelled else "OPAQUE")
    return vevent


def render_feed(feed: Feed) -> bytes:
    """Return the feed as an iCalendar file."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("name", feed.name)
    calendar.add("x-wr-calname", feed.name)
    calendar.add("description", feed.description)
    calendar.add("x-wr-caldesc", feed.description)
    calendar.add("x-wr-timezone", "UTC")
    calendar.add("refresh-interval", timedelta(hours=1), parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", vText(REFRESH))
    for event in feed.events:
        calendar.add_component(_vevent(event))
    return calendar.to_ical()


# Secret feed links


def issue_feed_token(user: User, *, now: datetime | None = None) -> str:
    """Create a secret feed link for ``user`` and return the raw token (shown once)."""
    if user.role not in (Role.NQSW, Role.EMPLOYER_CONTACT):
        raise ValueError("only NQSWs and employer contacts have personal feeds")
    token = new_token()
    db.session.add(FeedToken(user=user, token_hash=hash_token(token), created_at=now or utcnow()))
    db.session.commit()
    return token


def reset_feed_tokens(user: User, *, now: datetime | None = None) -> int:
    """Stop every feed link ``user`` has; return how many were stopped."""
    result = db.session.execute(
        update(FeedToken)
        .where(FeedToken.user_id == user.id, FeedToken.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
    )
    db.session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]


def active_feed_tokens(user: User) -> int:
    """Return how many feed links of ``user`` still work."""
    return len(
        db.session.scalars(
            select(FeedToken.id).where(FeedToken.user_id == user.id, FeedToken.revoked_at.is_(None))
        ).all()
    )


def user_for_feed_token(token: str, role: Role) -> User | None:
    """Return the active user a live feed token belongs to, if it is for ``role``."""
    user = db.session.scalar(
        select(User)
        .join(FeedToken, FeedToken.user_id == User.id)
        .where(FeedToken.token_hash == hash_token(token), FeedToken.revoked_at.is_(None))
    )
    if user is None or not user.active or user.role is not role:
        return None
    return user


# Invitations by mail


def _organizer(programme: Programme) -> vCalAddress:
    name, address = parseaddr(str(current_app.config["MAIL_DEFAULT_SENDER"]))
    organizer = vCalAddress(f"mailto:{programme.host_email or address}")
    organizer.params["CN"] = vText(programme.host_name or name)
    return organizer


def _next_in_thread(nqsw: NQSW, course: Course, now: datetime) -> InvitationThread:
    """Return the NQSW's invitation thread for a course, its sequence raised for a new message."""

    def find() -> InvitationThread | None:
        return db.session.scalar(
            select(InvitationThread).where(
                InvitationThread.nqsw_id == nqsw.id, InvitationThread.course_id == course.id
            )
        )

    thread = find()
    if thread is None:
        try:
            with db.session.begin_nested():
                thread = InvitationThread(
                    nqsw_id=nqsw.id, course_id=course.id, sequence=0, updated_at=now
                )
                db.session.add(thread)
            return thread
        except IntegrityError:
            thread = find()
            assert thread is not None
    # An UPDATE, not a read-modify-write, so concurrent changes never reuse a sequence.
    db.session.execute(
        update(InvitationThread)
        .where(InvitationThread.id == thread.id)
        .values(sequence=InvitationThread.sequence + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(thread)
    return thread


def invitation(nqsw: NQSW, session: Session, *, method: str, now: datetime | None = None) -> str:
    """Return an iTIP invitation (REQUEST) or cancellation (CANCEL) of the NQSW's place."""
    if method not in ("REQUEST", "CANCEL"):
        raise ValueError(f"unsupported iTIP method {method}")
    now = now or utcnow()
    course = session.course
    thread = _next_in_thread(nqsw, course, now)
    cancelling = method == "CANCEL"
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)
    event = Event()
    event.add("uid", thread.uid)
    event.add("sequence", thread.sequence)
    event.add("dtstamp", now)
    event.add("dtstart", session.starts_at)
    event.add("dtend", session.ends_at)
    event.add("summary", f"Cancelled: {course.title}" if cancelling else course.title)
    personal = FeedEvent(session, cancelling, thread.sequence, now, personal=True)
    event.add("description", _event_description(personal))
    event.add("location", session.joining_url or session.mode)
    event.add("url", session.joining_url or _course_url(course))
    event.add("status", "CANCELLED" if cancelling else "CONFIRMED")
    event.add("transp", "OPAQUE")
    event.add("organizer", _organizer(course.programme))
    attendee = vCalAddress(f"mailto:{nqsw.email}")
    attendee.params["CN"] = vText(nqsw.name)
    attendee.params["ROLE"] = vText("REQ-PARTICIPANT")
    attendee.params["CUTYPE"] = vText("INDIVIDUAL")
    if not cancelling:
        attendee.params["PARTSTAT"] = vText("NEEDS-ACTION")
        attendee.params["RSVP"] = vText("TRUE")
    event.add("attendee", attendee)
    calendar.add_component(event)
    return calendar.to_ical().decode("utf-8")
