"""Mail composition and the outbox: the only module that sends mail.

Services call ``queue_message`` inside their transaction, so a message exists if and
only if the change that caused it was committed. ``send_due`` delivers later.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app, render_template
from flask_mail import Attachment, Message
from sqlalchemy import or_, select, update

from .extensions import db, mail
from .models import MessageStatus, OutboxMessage, utcnow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
CLAIM_SECONDS = 300


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


@dataclass
class SendReport:
    sent: int = 0
    failed: int = 0
    dead: int = 0


def _claim(limit: int, now: datetime) -> list[int]:
    """Claim due messages so that a second sender running at once skips them."""
    candidates = db.session.scalars(
        select(OutboxMessage.id)
        .where(
            OutboxMessage.status == MessageStatus.PENDING,
            OutboxMessage.next_attempt_at <= now,
            or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now),
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
    ).all()
    db.session.rollback()
    claimed: list[int] = []
    for message_id in candidates:
        result = db.session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == message_id,
                OutboxMessage.status == MessageStatus.PENDING,
                or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now),
            )
            .values(claimed_until=now + timedelta(seconds=CLAIM_SECONDS))
        )
        db.session.commit()
        if result.rowcount == 1:  # type: ignore[attr-defined]
            claimed.append(message_id)
    return claimed


def _as_mail(message: OutboxMessage) -> Message:
    recipients: list[str | tuple[str, str]] = [*message.recipient_list]
    mail_message = Message(
        subject=message.subject,
        recipients=recipients,
        body=message.text_body,
        html=message.html_body or None,
    )
    if message.ics:
        method = message.ics_method or "PUBLISH"
        # Outlook and Gmail show an invitation only for text/calendar with a method.
        mail_message.attachments.append(
            Attachment(
                filename="invite.ics",
                content_type=f"text/calendar; charset=utf-8; method={method}",
                data=message.ics.encode("utf-8"),
                disposition="attachment",
            )
        )
    return mail_message


def backoff(attempts: int) -> timedelta:
    """Return the wait before the next try: 1, 2, 4, 8 ... minutes, at most a day."""
    return timedelta(minutes=min(2 ** max(attempts - 1, 0), 24 * 60))


def send_due(limit: int = 100, now: datetime | None = None) -> SendReport:
    """Deliver due outbox messages through Flask-Mail, retrying failures with back-off."""
    report = SendReport()
    if not current_app.config.get("MAIL_DELIVER"):
        return report
    now = now or utcnow()
    for message_id in _claim(limit, now):
        message = db.session.get(OutboxMessage, message_id)
        if message is None:
            continue
        try:
            mail.send(_as_mail(message))
        except (smtplib.SMTPException, OSError) as error:
            message.attempts += 1
            message.last_error = f"{type(error).__name__}: {error}"[:500]
            message.claimed_until = None
            if message.attempts >= MAX_ATTEMPTS:
                message.status = MessageStatus.DEAD
                report.dead += 1
            else:
                message.next_attempt_at = utcnow() + backoff(message.attempts)
                report.failed += 1
            log.warning("outbox message %s failed (attempt %s)", message.id, message.attempts)
        else:
            message.attempts += 1
            message.status = MessageStatus.SENT
            message.sent_at = utcnow()
            message.claimed_until = None
            report.sent += 1
        db.session.commit()
    return report


def resend(message: OutboxMessage) -> None:
    """Put a dead or sent message back in the queue."""
    message.status = MessageStatus.PENDING
    message.attempts = 0
    message.next_attempt_at = utcnow()
    message.claimed_until = None
    db.session.commit()
