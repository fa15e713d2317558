"""Mail composition and the outbox: the only module that sends mail.

Services call ``queue_message`` inside their transaction, so a message exists if and
only if the change that caused it was committed. ``send_due`` delivers later.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.mime.base import MIMEBase
from typing import Any

from flask import current_app, render_template
from flask_mail import Attachment, Connection, Message
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError

from .calendar import invitation
from .errors import BookingError
from .extensions import db
from .models import (
    NQSW,
    Booking,
    BookingStatus,
    MessageStatus,
    OutboxMessage,
    Programme,
    Session,
    SessionStatus,
    london_today,
    utcnow,
)

log = logging.getLogger(__name__)

# About eight and a half hours of tries (1 + 2 + ... + 256 minutes) before a message is dead.
MAX_ATTEMPTS = 10
# A claim outlives any one delivery: connecting, then each SMTP step, time out sooner.
CLAIM_SECONDS = 600
SMTP_TIMEOUT = 60
# No day-before reminder within this time of the joining details.
REMINDER_GAP = timedelta(hours=20)


def queue_message(
    kind: str,
    to: str | Iterable[str],
    subject: str,
    *,
    template: str | None = None,
    ics: str | None = None,
    ics_method: str | None = None,
    dedupe_key: str | None = None,
    send_after: datetime | None = None,
    **context: Any,
) -> OutboxMessage | None:
    """Add a message to the outbox in the caller's transaction; return None if deduplicated."""
    recipients = [to] if isinstance(to, str) else [r for r in to if r]
    if not recipients:
        return None
    if dedupe_key is not None:
        seen = db.session.scalar(
            select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe_key)
        )
        if seen is not None:
            return None
    name = template or kind
    context.setdefault("base_url", current_app.config["BASE_URL"].rstrip("/"))
    context.setdefault("subject", subject)
    message = OutboxMessage(
        kind=kind,
        recipients=",".join(recipients),
        subject=subject,
        text_body=render_template(f"email/{name}.txt", **context),
        html_body=render_template(f"email/{name}.html", **context),
        ics=ics,
        ics_method=ics_method,
        dedupe_key=dedupe_key,
        next_attempt_at=send_after or utcnow(),
    )
    db.session.add(message)
    return message


def queue_invitation(
    kind: str,
    nqsw: NQSW,
    session: Session,
    subject: str,
    *,
    cancel: bool = False,
    **context: Any,
) -> OutboxMessage | None:
    """Queue a booking message to an NQSW with the calendar invitation (or cancellation)."""
    method = "CANCEL" if cancel else "REQUEST"
    return queue_message(
        kind,
        nqsw.email,
        subject,
        ics=invitation(nqsw, session, method=method),
        ics_method=method,
        session=session,
        nqsw=nqsw,
        calendar_method=method,
        **context,
    )


def _day(day: date) -> str:
    return f"{day:%a} {day.day} {day:%b %Y}"


def _queue_once(kind: str, to: str, subject: str, **fields: Any) -> bool:
    """Queue a deduplicated message; return False if it exists, even if written just now."""
    try:
        with db.session.begin_nested():  # another run may write the same key at once
            return queue_message(kind, to, subject, **fields) is not None
    except IntegrityError:
        return False


def _joining_sent_lately(booking: Booking, now: datetime) -> bool:
    # Someone who booked late has just had the joining details: no second mail that day.
    created = db.session.scalar(
        select(OutboxMessage.created_at).where(
            OutboxMessage.dedupe_key == f"joining-info:{booking.id}"
        )
    )
    return created is not None and created > now - REMINDER_GAP


def queue_reminders(now: datetime | None = None) -> int:
    """Queue joining details N days before each booked session and a reminder the day before.

    Each message has a dedupe key, so running this often (the worker runs it every 15 minutes,
    or ``flask mail remind`` nightly) sends each one once. Returns how many were queued.
    """
    now = now or utcnow()
    today = london_today(now)
    # Look as far ahead as the programme that sends joining details earliest.
    days_ahead = db.session.scalar(select(func.max(Programme.joining_info_days_before))) or 0
    rows = db.session.scalars(
        select(Booking)
        .join(Session, Booking.session_id == Session.id)
        .where(
            Booking.status == BookingStatus.BOOKED,
            Session.status == SessionStatus.SCHEDULED,
            Session.starts_at > now,
            Session.starts_at < now + timedelta(days=max(days_ahead, 1) + 2),
        )
        .order_by(Session.starts_at, Booking.id)
    ).all()
    queued = 0
    for booking in rows:
        session, nqsw = booking.session, booking.nqsw
        days_before = session.course.programme.joining_info_days_before
        if session.local_date <= today + timedelta(days=days_before):
            queued += _queue_once(
                "joining_info",
                nqsw.email,
                f"Joining details: {session.course.title}, {_day(session.local_date)}",
                dedupe_key=f"joining-info:{booking.id}",
                session=session,
                nqsw=nqsw,
            )
        if session.local_date == today + timedelta(days=1) and not _joining_sent_lately(
            booking, now
        ):
            queued += _queue_once(
                "session_reminder",
                nqsw.email,
                f"Tomorrow: {session.course.title}",
                dedupe_key=f"reminder:{booking.id}",
                session=session,
                nqsw=nqsw,
            )
    db.session.commit()
    return queued


@dataclass
class SendReport:
    sent: int = 0
    failed: int = 0
    dead: int = 0


def _claim_next(now: datetime) -> int | None:
    """Claim one due message so that no other sender can take it; return its id."""
    claimable = (
        OutboxMessage.status == MessageStatus.PENDING,
        OutboxMessage.next_attempt_at <= now,
        or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now),
    )
    candidates = db.session.scalars(
        select(OutboxMessage.id).where(*claimable).order_by(OutboxMessage.id).limit(10)
    ).all()
    db.session.rollback()
    for message_id in candidates:
        # The guarded UPDATE is the claim: PostgreSQL re-checks the WHERE after waiting
        # for a concurrent claimer's row lock, and SQLite runs writers one at a time,
        # so exactly one sender sees rowcount 1.
        result = db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id, *claimable)
            .values(claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        if result.rowcount == 1:  # type: ignore[attr-defined]
            return message_id
    return None


class _Connection(Connection):
    """A Flask-Mail connection whose socket gives up rather than hang past the claim."""

    def configure_host(self) -> smtplib.SMTP | smtplib.SMTP_SSL:
        host = super().configure_host()
        if host.sock is not None:
            host.sock.settimeout(SMTP_TIMEOUT)
        return host


def _close(connection: _Connection | None) -> None:
    if connection is not None:
        with suppress(Exception):  # the server may already have dropped us
            connection.__exit__(None, None, None)  # type: ignore[arg-type]


class _InvitationMail(Message):
    """A message whose calendar part sits beside the text and HTML parts.

    Outlook and Gmail show an invitation (with accept and decline buttons) for a
    ``text/calendar; method=...`` alternative; the same file is attached as
    ``invite.ics`` for clients that only import attachments. This is the layout
    Google Calendar's own invitations use.
    """

    def __init__(self, *, ics: str, method: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.method = method
        self.alts["calendar"] = ics
        self.attachments.append(
            Attachment(
                filename="invite.ics",
                content_type="application/ics",
                data=ics.encode("utf-8"),
                disposition="attachment",
            )
        )

    def _message(self) -> MIMEBase:
        built = super()._message()
        for part in built.walk():
            if part.get_content_type() == "text/calendar":
                part.set_param("method", self.method)
        return built


def _as_mail(message: OutboxMessage) -> Message:
    recipients: list[str | tuple[str, str]] = [*message.recipient_list]
    fields: dict[str, Any] = {
        "subject": message.subject,
        "recipients": recipients,
        "body": message.text_body,
        "html": message.html_body or None,
        "extra_headers": {"X-ASYE-Message-Id": str(message.id)},
    }
    if message.ics:
        return _InvitationMail(ics=message.ics, method=message.ics_method or "PUBLISH", **fields)
    return Message(**fields)


def backoff(attempts: int) -> timedelta:
    """Return the wait before the next try: 1, 2, 4, 8 ... minutes, at most six hours."""
    return timedelta(minutes=min(2 ** max(attempts - 1, 0), 6 * 60))


def _max_attempts() -> int:
    return int(current_app.config.get("MAIL_MAX_ATTEMPTS", MAX_ATTEMPTS))


def send_due(limit: int = 100, now: datetime | None = None) -> SendReport:
    """Deliver due outbox messages through Flask-Mail, retrying failures with back-off."""
    report = SendReport()
    if not current_app.config.get("MAIL_DELIVER"):
        return report
    now = now or utcnow()
    connection: _Connection | None = None
    try:
        # One claim at a time, so a claim never expires while earlier messages are sent.
        for _ in range(limit):
            message_id = _claim_next(now)
            if message_id is None:
                break
            message = db.session.get(OutboxMessage, message_id)
            assert message is not None
            message.attempts += 1
            message.claimed_until = None
            try:
                if connection is None:
                    connection = _Connection(current_app.extensions["mail"])
                    connection.__enter__()
                connection.send(_as_mail(message))
            except Exception as error:  # a bad message must not stop the queue
                _close(connection)
                connection = None
                message.last_error = f"{type(error).__name__}: {error}"[:500]
                if message.attempts >= _max_attempts():
                    message.status = MessageStatus.DEAD
                    report.dead += 1
                else:
                    message.next_attempt_at = now + backoff(message.attempts)
                    report.failed += 1
                log.warning("outbox message %s failed (attempt %s)", message.id, message.attempts)
            else:
                message.status = MessageStatus.SENT
                message.sent_at = utcnow()
                message.last_error = ""
                report.sent += 1
            db.session.commit()
    finally:
        _close(connection)
    return report


def resend(message: OutboxMessage) -> None:
    """Put a dead or sent message back in the queue."""
    if message.status is MessageStatus.PENDING:
        raise BookingError("This message is already waiting to be sent.")
    message.status = MessageStatus.PENDING
    message.attempts = 0
    message.last_error = ""
    message.next_attempt_at = utcnow()
    message.claimed_until = None
    db.session.commit()
