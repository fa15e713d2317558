"""Every message the service sends arrives once, with a text and an HTML part."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import time, timedelta

import pytest

from booking import accounts, bookings, catalogue, notifications
from booking.extensions import db

from ..conftest import FUTURE, london
from .mailserver import SMTPServer, mime_parts, running_smtp


@pytest.fixture
def smtp(app) -> Iterator[SMTPServer]:
    with running_smtp(app) as server:
        yield server


def _by_subject(inbox):
    return {m["Subject"]: m for m in inbox}


def test_every_booking_message_arrives_once_with_bothparts(
    smtp,
    programme,
    make_course,
    make_session,
    make_nqsw,
    make_user,
):
    course = make_course(title="Care Act")
    small = make_session(course, day=FUTURE, capacity=1, joining_url="https://teams.example/a")
    other = make_session(course, day=FUTURE + timedelta(days=30))
    ada, ben = make_nqsw(name="Ada"), make_nqsw(name="Ben")
    make_user(email="coord@example.org")

    accounts.request_sign_in("coord@example.org")
    db.session.commit()
    booking = bookings.book_place(ada, small)
    entry = bookings.join_waitlist(ben, small)
    bookings.cancel_booking(booking)  # the place is offered to Ben
    bookings.expire_offers(now=entry.session.starts_at - timedelta(hours=1))
    moved_start = london(FUTURE + timedelta(days=31), time(10, 0))
    bookings.book_place(ada, other)
    catalogue.update_session(other, starts_at=moved_start, ends_at=moved_start + timedelta(hours=6))
    bookings.cancel_session(other, reason="Room flooded")

    report = notifications.send_due()

    inbox = smtp.inbox.messages
    assert report.sent == len(inbox)
    kinds = sorted(m["Subject"].split(":")[0] for m in inbox)
    assert kinds == sorted(
        [
            "Your sign-in link for ASYE training",
            "Booked",
            "Waiting list",
            "Cancelled",
            "A place is free",
            "Offer expired",
            "Booked",
            "Changed",
            "Cancelled by the programme",
        ]
    )
    for message in inbox:
        parts = mime_parts(message)
        assert parts["text/plain"].get_content().strip()
        assert "<html" in parts["text/html"].get_content()
    # A second round sends nothing again.
    assert notifications.send_due().sent == 0
