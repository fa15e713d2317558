"""Every message the service sends arrives once, with a text and an HTML part."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, time, timedelta

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


def test_invoice_templates_render_with_documented_context(
    smtp,
):
    common = {"employer_name": "Northshire Council", "invoice_number": "ASYE-0007"}
    notifications.queue_message(
        "invoice_issued",
        "finance@employer.example",
        "Invoice ASYE-0007",
        amount_pence=123456,
        due_on=date(2027, 2, 1),
        po_number="PO-99",
        invoice_url="http://asye.test/employer/invoices/7",
        **common,
    )
    notifications.queue_message(
        "invoice_paid",
        "finance@employer.example",
        "Paid: ASYE-0007",
        amount_pence=123456,
        paid_on=date(2027, 1, 20),
        **common,
    )
    notifications.queue_message(
        "invoice_overdue",
        "finance@employer.example",
        "Overdue: ASYE-0007",
        amount_pence=35000,
        due_on=date(2027, 2, 1),
        days_overdue=1,
        **common,
    )
    db.session.commit()
    notifications.send_due()

    inbox = _by_subject(smtp.inbox.messages)
    texts = {s: mime_parts(m)["text/plain"].get_content() for s, m in inbox.items()}
    htmls = {s: mime_parts(m)["text/html"].get_content() for s, m in inbox.items()}
    for body in (texts, htmls):
        assert "£1,234.56" in body["Invoice ASYE-0007"]
        assert "1 February 2027" in body["Invoice ASYE-0007"]
        assert "PO-99" in body["Invoice ASYE-0007"]
        assert "20 January 2027" in body["Paid: ASYE-0007"]
        assert "1 day overdue" in body["Overdue: ASYE-0007"]
        assert "£350.00" in body["Overdue: ASYE-0007"]
