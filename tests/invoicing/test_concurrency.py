"""Billing runs, invoice changes and webhook deliveries racing each other.

Each race starts its threads at a ``threading.Barrier``; the PostgreSQL run is the
one that matters (SQLite serialises writers at ``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from flask import Flask
from sqlalchemy import func, select

from booking.audit.models import AuditEvent
from booking.extensions import db
from booking.models import Employer, OutboxMessage, Programme, User
from invoicing import services
from invoicing.models import (
    BilledEnrolment,
    CreditNote,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Payment,
    Refund,
)

from .fake_stripe import FakeStripe
from .test_billing import assert_ledger_adds_up

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
RUNNERS = 10


def _race(app: Flask, work: Callable[[], object], runners: int = RUNNERS) -> list[object]:
    """Run ``work`` in several threads at once, each with its own app context and session."""
    barrier = threading.Barrier(runners)
    results: list[object] = []
    errors: list[BaseException] = []

    def run() -> None:
        with app.app_context():
            try:
                barrier.wait(timeout=30)
                results.append(work())
            except BaseException as error:  # re-raised in the test thread below
                errors.append(error)
            finally:
                db.session.remove()

    # End the test's own transaction: on SQLite it would hold the write lock.
    db.session.rollback()
    threads = [threading.Thread(target=run) for _ in range(runners)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    db.session.expire_all()
    return results


def _count(model: type, *where: object) -> int:
    return int(db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_billing_runs_at_once_share_no_number_and_bill_no_nqsw_twice(
    app: Flask, programme: Programme, option2_employer: Callable[..., Employer]
) -> None:
    for _ in range(4):
        option2_employer(2)
    programme_id = programme.id

    def bill() -> object:
        return services.run_billing(db.session.get_one(Programme, programme_id), now=NOW)

    reports = _race(app, bill, runners=3)
    issued = sum(len(r.invoice_ids) for r in reports)  # type: ignore[attr-defined]
    numbers = db.session.scalars(select(Invoice.number).order_by(Invoice.number)).all()
    assert issued == 4
    assert numbers == [f"ASYE-2026-{n:04d}" for n in range(1, 5)]
    per_nqsw = db.session.execute(
        select(InvoiceLine.nqsw_id, func.count()).group_by(InvoiceLine.nqsw_id)
    ).all()
    assert len(per_nqsw) == 8 and {count for _, count in per_nqsw} == {1}
    assert _count(BilledEnrolment) == 8
    assert _count(AuditEvent, AuditEvent.action == "invoice.issue") == 4
    assert_ledger_adds_up()


def _one_invoice(
    programme: Programme, option2_employer: Callable[..., Employer], count: int = 1
) -> int:
    option2_employer(count)
    services.run_billing(programme, now=NOW)
    return db.session.scalars(select(Invoice.id)).one()


def _refused(outcomes: list[object]) -> Counter[str]:
    return Counter("ok" if outcome == "ok" else "refused" for outcome in outcomes)


def _attempt(call: Callable[[], object]) -> object:
    try:
        call()
    except services.InvoiceError:
        db.session.rollback()
        return "refused"
    except services.InvalidInput:
        db.session.rollback()
        return "refused"
    return "ok"


def test_ten_identical_payments_at_once_record_one_and_send_one_thank_you(
    app: Flask, programme: Programme, option2_employer: Callable[..., Employer]
) -> None:
    invoice_id = _one_invoice(programme, option2_employer)

    def pay() -> object:
        invoice = db.session.get_one(Invoice, invoice_id)
        return _attempt(
            lambda: services.record_payment(
                invoice, amount_pence=35000, reference="BACS-1", paid_on=NOW.date(), now=NOW
            )
        )

    assert _refused(_race(app, pay)) == Counter(ok=1, refused=RUNNERS - 1)
    assert _count(Payment) == 1
    assert _count(OutboxMessage, OutboxMessage.kind == "invoice_paid") == 1
    assert _count(AuditEvent, AuditEvent.action == "invoice.payment") == 1
    assert db.session.get_one(Invoice, invoice_id).status is InvoiceStatus.PAID
    assert_ledger_adds_up()


def test_ten_identical_part_payments_at_once_record_one(
    app: Flask, programme: Programme, option2_employer: Callable[..., Employer]
) -> None:
    invoice_id = _one_invoice(programme, option2_employer, 2)

    def pay() -> object:
        invoice = db.session.get_one(Invoice, invoice_id)
        return _attempt(
            lambda: services.record_payment(
                invoice, amount_pence=10000, reference="BACS-part", paid_on=NOW.date(), now=NOW
            )
        )

    assert _refused(_race(app, pay)) == Counter(ok=1, refused=RUNNERS - 1)
    invoice = db.session.get_one(Invoice, invoice_id)
    assert (invoice.paid_pence, invoice.balance_pence) == (10000, 60000)


def test_ten_voids_at_once_void_once(
    app: Flask, programme: Programme, option2_employer: Callable[..., Employer]
) -> None:
    invoice_id = _one_invoice(programme, option2_employer)

    def void() -> object:
        invoice = db.session.get_one(Invoice, invoice_id)
        return _attempt(lambda: services.void_invoice(invoice, "Raised in error"))

    assert _refused(_race(app, void)) == Counter(ok=1, refused=RUNNERS - 1)
    assert _count(AuditEvent, AuditEvent.action == "invoice.void") == 1
    assert _count(BilledEnrolment) == 0


def test_ten_credits_of_the_same_line_at_once_issue_one_note(
    app: Flask, programme: Programme, option2_employer: Callable[..., Employer]
) -> None:
    invoice_id = _one_invoice(programme, option2_employer, 2)
    line_id = db.session.get_one(Invoice, invoice_id).lines[0].id

    def credit() -> object:
        invoice = db.session.get_one(Invoice, invoice_id)
        return _attempt(lambda: services.credit_invoice(invoice, [line_id], "Withdrawn", now=NOW))

    assert _refused(_race(app, credit)) == Counter(ok=1, refused=RUNNERS - 1)
    assert db.session.scalars(select(CreditNote.number)).all() == ["ASYE-CN-2026-0001"]
    assert _count(OutboxMessage, OutboxMessage.kind == "credit_note_issued") == 1
    assert_ledger_adds_up()


def test_ten_refunds_and_write_offs_at_once_happen_once(
    app: Flask, programme: Programme, option2_employer: Callable[..., Employer]
) -> None:
    overpaid_id = _one_invoice(programme, option2_employer)
    services.record_payment(
        db.session.get_one(Invoice, overpaid_id),
        amount_pence=45000,
        reference="BACS-over",
        paid_on=NOW.date(),
        overpayment=True,
        now=NOW,
    )
    option2_employer(1)
    services.run_billing(programme, now=NOW)
    unpaid_id = db.session.scalars(select(Invoice.id).where(Invoice.id != overpaid_id)).one()

    def refund() -> object:
        invoice = db.session.get_one(Invoice, overpaid_id)
        return _attempt(
            lambda: services.record_refund(
                invoice, amount_pence=10000, through_stripe=False, reference="REFUND-1", now=NOW
            )
        )

    def write_off() -> object:
        invoice = db.session.get_one(Invoice, unpaid_id)
        return _attempt(lambda: services.mark_uncollectible(invoice, "Employer closed", now=NOW))

    assert _refused(_race(app, refund)) == Counter(ok=1, refused=RUNNERS - 1)
    assert _refused(_race(app, write_off)) == Counter(ok=1, refused=RUNNERS - 1)
    assert _count(Refund) == 1
    assert db.session.get_one(Invoice, overpaid_id).status is InvoiceStatus.PAID
    assert db.session.get_one(Invoice, unpaid_id).status is InvoiceStatus.UNCOLLECTIBLE
    assert _count(AuditEvent, AuditEvent.action == "invoice.uncollectible") == 1
    assert_ledger_adds_up()


def test_the_same_webhook_delivered_ten_times_at_once_records_one_payment(
    app: Flask,
    stripe_on: FakeStripe,
    programme: Programme,
    option2_employer: Callable[..., Employer],
) -> None:
    invoice_id = _one_invoice(programme, option2_employer)
    sid = db.session.get_one(Invoice, invoice_id).stripe_invoice_id
    stripe_on.pay_hosted(sid)
    payload, header = stripe_on.event("invoice.paid", sid)

    def deliver() -> object:
        response = app.test_client().post(
            "/stripe/webhook",
            data=payload,
            headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        )
        return response.status_code, response.get_json()["outcome"]

    outcomes = Counter(_race(app, deliver))
    assert outcomes == Counter({(200, "paid: £350.00"): 1, (200, "duplicate"): RUNNERS - 1})
    assert _count(Payment) == 1
    assert _count(OutboxMessage, OutboxMessage.kind == "invoice_paid") == 1
    assert _count(AuditEvent, AuditEvent.action == "stripe.invoice.paid") == 1
    assert_ledger_adds_up()


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


def _session_cookie(app: Flask, user: User) -> str:
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    assert serializer is not None
    value = serializer.dumps({"_user_id": str(user.id), "_fresh": True})
    return f"{app.config.get('SESSION_COOKIE_NAME', 'session')}={value}"


def test_ten_identical_form_posts_through_a_threaded_server_record_one_payment(
    app: Flask,
    live_server: str,
    coordinator: User,
    programme: Programme,
    option2_employer: Callable[..., Employer],
) -> None:
    invoice_id = _one_invoice(programme, option2_employer)
    cookie = _session_cookie(app, coordinator)
    body = urllib.parse.urlencode(
        {"amount": "350.00", "reference": "BACS-77", "paid_on": NOW.date().isoformat()}
    ).encode()
    barrier = threading.Barrier(RUNNERS)
    statuses: list[int] = []
    db.session.remove()  # the server's threads need the database to themselves

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)

    def post() -> None:
        request = urllib.request.Request(
            f"{live_server}/coordinator/invoices/{invoice_id}/payments",
            data=body,
            headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"},
        )
        barrier.wait(timeout=30)
        try:
            with opener.open(request, timeout=120) as response:
                statuses.append(response.status)
        except urllib.error.HTTPError as error:
            statuses.append(error.code)

    threads = [threading.Thread(target=post) for _ in range(RUNNERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=150)
    # One redirect after recording; nine forms sent back with the ordinary refusal.
    assert Counter(statuses) == Counter({302: 1, 400: RUNNERS - 1})
    assert _count(Payment) == 1
    assert _count(OutboxMessage, OutboxMessage.kind == "invoice_paid") == 1
    assert db.session.get_one(Invoice, invoice_id).status is InvoiceStatus.PAID
    assert_ledger_adds_up()
