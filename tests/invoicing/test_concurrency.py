"""Billing runs and webhook deliveries racing each other."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

from flask import Flask
from sqlalchemy import func, select

from booking.extensions import db
from booking.models import Employer, Programme
from invoicing import services
from invoicing.models import BilledEnrolment, Invoice, InvoiceLine, Payment

from .fake_stripe import FakeStripe
from .test_billing import assert_ledger_adds_up

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _race(app: Flask, work: Callable[[], object], runners: int = 3) -> list[object]:
    """Run ``work`` in several threads at once, each with its own app context and session."""
    barrier = threading.Barrier(runners)
    results: list[object] = []
    errors: list[BaseException] = []

    def run() -> None:
        with app.app_context():
            try:
                barrier.wait(timeout=10)
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
        thread.join(timeout=60)
    assert not errors, errors
    return results


def test_billing_runs_at_once_share_no_number_and_bill_no_nqsw_twice(
    app: Flask, programme: Programme, option2_employer: Callable[..., Employer]
) -> None:
    for _ in range(4):
        option2_employer(2)
    programme_id = programme.id

    def bill() -> object:
        return services.run_billing(db.session.get_one(Programme, programme_id), now=NOW)

    reports = _race(app, bill)
    db.session.expire_all()
    issued = sum(len(r.invoice_ids) for r in reports)  # type: ignore[attr-defined]
    numbers = db.session.scalars(select(Invoice.number).order_by(Invoice.number)).all()
    assert issued == 4
    assert numbers == [f"ASYE-2026-{n:04d}" for n in range(1, 5)]
    per_nqsw = db.session.execute(
        select(InvoiceLine.nqsw_id, func.count()).group_by(InvoiceLine.nqsw_id)
    ).all()
    assert len(per_nqsw) == 8 and {count for _, count in per_nqsw} == {1}
    assert db.session.scalar(select(func.count()).select_from(BilledEnrolment)) == 8
    assert_ledger_adds_up()


def test_the_same_webhook_delivered_at_once_records_one_payment(
    app: Flask,
    stripe_on: FakeStripe,
    programme: Programme,
    option2_employer: Callable[..., Employer],
) -> None:
    employer = option2_employer(1)
    services.run_billing(programme, now=NOW)
    invoice = db.session.scalars(select(Invoice).where(Invoice.employer_id == employer.id)).one()
    payload, header = stripe_on.event(
        "invoice.paid", invoice.stripe_invoice_id, status="paid", amount_paid=35000
    )

    def deliver() -> object:
        response = app.test_client().post(
            "/stripe/webhook",
            data=payload,
            headers={"Stripe-Signature": header, "Content-Type": "application/json"},
        )
        return response.status_code, response.get_json()["outcome"]

    outcomes = _race(app, deliver)
    assert sorted(outcomes) == [(200, "duplicate"), (200, "duplicate"), (200, "paid")]  # type: ignore[type-var]
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 1
    assert_ledger_adds_up()
