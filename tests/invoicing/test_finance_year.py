"""A scripted year of billing, part-payments, credits, refunds and Stripe events.

At the end every view shows the same balance for every invoice, to the penny: the
invoice page, the employer's page, the PDF, the CSV, the finance export and Stripe.
"""

from __future__ import annotations

import csv
import io
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime

import pytest
from flask import Flask
from pypdf import PdfReader
from sqlalchemy import select

from booking.audit.models import AuditEvent
from booking.extensions import db
from booking.models import NQSW, Employer, Programme, Role, User
from invoicing import reports, services
from invoicing.models import Invoice, InvoiceStatus, PaymentMethod

from .fake_stripe import FakeStripe
from .test_billing import assert_ledger_adds_up


def at(day: str) -> datetime:
    return datetime.fromisoformat(f"{day}T11:00:00+00:00").astimezone(UTC)


@pytest.fixture
def stripe_live(app: Flask, stripe_on: FakeStripe) -> Iterator[FakeStripe]:
    """Stripe's events reach the app through a real threaded HTTP server."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stripe_on.webhook_url = f"http://127.0.0.1:{server.server_port}/stripe/webhook"
    yield stripe_on
    server.shutdown()
    thread.join(timeout=5)


def _by_number(number: str) -> Invoice:
    db.session.expire_all()
    return db.session.scalars(select(Invoice).where(Invoice.number == number)).one()


def _on_stripe(fake: FakeStripe, number: str, action: str, *args: object, **kwargs: object) -> None:
    """Do something on Stripe's side to one of our invoices; its events come back by webhook."""
    sid = _by_number(number).stripe_invoice_id
    # The webhook server's threads need the database: end this thread's transaction first.
    db.session.remove()
    getattr(fake, action)(sid, *args, **kwargs)


def _enrol(employer_id: int, programme_id: int, name: str) -> None:
    programme = db.session.get_one(Programme, programme_id)
    user = User(email=f"{uuid.uuid4().hex[:10]}@nqsw.example", name=name, role=Role.NQSW)
    db.session.add(
        NQSW(
            user=user,
            employer_id=employer_id,
            programme_id=programme_id,
            swe_number=f"SW{uuid.uuid4().int % 10**7:07d}",
            asye_start=programme.starts_on,
        )
    )
    db.session.commit()


def _programme(programme_id: int) -> Programme:
    return db.session.get_one(Programme, programme_id)


def _signed_in(app: Flask, user_id: int):
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = str(user_id)
        session["_fresh"] = True
    return client


def test_a_year_of_money_balances_to_the_penny_everywhere(
    app: Flask,
    stripe_live: FakeStripe,
    make_programme: Callable[..., Programme],
    option2_employer: Callable[..., Employer],
    contact_for: Callable[[Employer], User],
    coordinator: User,
    runner,
) -> None:
    fake = stripe_live
    coordinator_id = coordinator.id
    programme = make_programme(
        name="Pan-London ASYE 2025-26",
        starts_on=date(2025, 9, 1),
        ends_on=date(2026, 8, 31),
        vat_rate_basis_points=2000,
    )
    acute = option2_employer(0, name="Acute NHS Trust")
    borough = option2_employer(0, name="Borough Council", po_required=True, po_number="PO-77")
    charity = option2_employer(0, name="Care Charity")
    defunct = option2_employer(0, name="Defunct Agency")
    employers = {e.name: e.id for e in (acute, borough, charity, defunct)}
    contacts = {}
    for employer, count in ((acute, 3), (borough, 2), (charity, 1), (defunct, 1)):
        contacts[employer.id] = contact_for(employer).id
        for n in range(count):
            _enrol(employer.id, programme.id, f"NQSW {n + 1} at {employer.name}")

    # December: the first billing run. £420 per NQSW with VAT.
    programme_id = programme.id
    report = services.run_billing(programme, now=at("2025-12-01"))
    assert len(report.invoice_ids) == 4 and report.stripe_errors == []
    a1, b1, c1, _ = (_by_number(f"ASYE-2025-000{n}") for n in range(1, 5))
    assert (a1.total_pence, b1.total_pence, c1.total_pence) == (126000, 84000, 42000)

    # January: Acute pays £300 by bank transfer, then the rest online.
    services.record_payment(
        a1,
        amount_pence=30000,
        reference="ACUTE-BACS-1",
        paid_on=date(2026, 1, 10),
        now=at("2026-01-10"),
    )
    assert fake.invoices[a1.stripe_invoice_id]["amount_remaining"] == 96000
    _on_stripe(fake, "ASYE-2025-0001", "pay_hosted")
    assert _by_number("ASYE-2025-0001").status is InvoiceStatus.PAID

    # February: Borough pays £200 online, then one of its NQSWs is credited (£420).
    _on_stripe(fake, "ASYE-2025-0002", "pay_hosted", 20000)
    b1 = _by_number("ASYE-2025-0002")
    services.credit_invoice(b1, [b1.lines[0].id], "Withdrew before starting", now=at("2026-02-15"))
    b1 = _by_number("ASYE-2025-0002")
    assert (
        b1.balance_pence
        == 84000 - 42000 - 20000
        == fake.invoices[b1.stripe_invoice_id]["amount_remaining"]
    )

    # March: Borough clears it by bank transfer; a new NQSW joins Acute and is billed.
    services.record_payment(
        b1,
        amount_pence=22000,
        reference="BOROUGH-BACS",
        paid_on=date(2026, 3, 1),
        now=at("2026-03-01"),
    )
    _enrol(employers["Acute NHS Trust"], programme_id, "NQSW 4 at Acute")
    services.run_billing(_programme(programme_id), now=at("2026-03-10"))
    a2 = _by_number("ASYE-2026-0001")

    # April: Acute pays the new invoice online, and by bank transfer as well.
    _on_stripe(fake, "ASYE-2026-0001", "pay_hosted")
    services.record_payment(
        _by_number("ASYE-2026-0001"),
        amount_pence=42000,
        reference="ACUTE-BACS-2",
        paid_on=date(2026, 4, 2),
        now=at("2026-04-02"),
        overpayment=True,
    )
    a2 = _by_number("ASYE-2026-0001")
    assert (a2.status, a2.state_label, a2.balance_pence) == (
        InvoiceStatus.OVERPAID,
        "Refund due",
        -42000,
    )
    # Finance keeps it as credit for Acute's next invoice.
    assert services.carry_forward(a2, now=at("2026-04-03")) == 0
    assert _by_number("ASYE-2026-0001").state_label == "Credit on account"

    # May: another NQSW joins Acute; the credit on account pays the new invoice.
    _enrol(employers["Acute NHS Trust"], programme_id, "NQSW 5 at Acute")
    services.run_billing(_programme(programme_id), now=at("2026-05-01"))
    a3 = _by_number("ASYE-2026-0002")
    assert a3.status is InvoiceStatus.PAID
    assert [(p.method, p.amount_pence) for p in a3.payments] == [
        (PaymentMethod.CARRIED_FORWARD, 42000)
    ]
    assert _by_number("ASYE-2026-0001").status is InvoiceStatus.PAID
    assert fake.invoices[a3.stripe_invoice_id]["status"] == "paid"

    # June: the charity pays online; finance credits £100 in Stripe's Dashboard with a refund.
    _on_stripe(fake, "ASYE-2025-0003", "pay_hosted")
    _on_stripe(
        fake, "ASYE-2025-0003", "dashboard_credit_note", 10000, refund=10000, memo="Room fee"
    )
    c1 = _by_number("ASYE-2025-0003")
    assert (c1.credited_pence, c1.paid_pence, c1.refunded_pence, c1.balance_pence) == (
        10000,
        42000,
        10000,
        0,
    )

    # July: the defunct agency is written off.
    services.mark_uncollectible(_by_number("ASYE-2025-0004"), "Agency closed", now=at("2026-07-01"))
    assert (
        fake.invoices[_by_number("ASYE-2025-0004").stripe_invoice_id]["status"] == "uncollectible"
    )

    # August: a wrong invoice is raised and voided.
    _enrol(employers["Care Charity"], programme_id, "NQSW 2 at Care Charity")
    services.run_billing(_programme(programme_id), now=at("2026-08-01"))
    wrong = _by_number("ASYE-2026-0003")
    services.void_invoice(wrong, "NQSW enrolled in error")
    assert fake.invoices[wrong.stripe_invoice_id]["status"] == "void"

    # September: an Acute NQSW's place is credited after the money was taken online,
    # and the £420 is refunded through Stripe; Stripe's refund event then arrives.
    a1 = _by_number("ASYE-2025-0001")
    services.credit_invoice(
        a1, [a1.lines[2].id], "Place cancelled by agreement", now=at("2026-09-01")
    )
    assert _by_number("ASYE-2025-0001").state_label == "Refund due"
    services.record_refund(
        _by_number("ASYE-2025-0001"), amount_pence=42000, through_stripe=True, now=at("2026-09-02")
    )
    (stripe_refund,) = [r for r in fake.refunds.values() if r["metadata"].get("asye_refund_id")]
    db.session.remove()
    fake.deliver("refund.created", stripe_refund)
    a1 = _by_number("ASYE-2025-0001")
    assert (a1.status, a1.refunded_pence, a1.balance_pence) == (InvoiceStatus.PAID, 42000, 0)

    # November: Borough pays £50 too much by mistake, and it is refunded by bank transfer.
    services.record_payment(
        _by_number("ASYE-2025-0002"),
        amount_pence=5000,
        reference="BOROUGH-DUP",
        paid_on=date(2026, 11, 2),
        now=at("2026-11-02"),
        overpayment=True,
    )
    services.record_refund(
        _by_number("ASYE-2025-0002"),
        amount_pence=5000,
        through_stripe=False,
        reference="REFUND-BOROUGH",
        refunded_on=date(2026, 11, 5),
        now=at("2026-11-05"),
    )

    db.session.expire_all()
    invoices = db.session.scalars(select(Invoice).order_by(Invoice.id)).all()
    expected = {
        "ASYE-2025-0001": 0,
        "ASYE-2025-0002": 0,
        "ASYE-2025-0003": 0,
        "ASYE-2025-0004": 42000,
        "ASYE-2026-0001": 0,
        "ASYE-2026-0002": 0,
        "ASYE-2026-0003": 0,
    }
    assert {i.number: i.balance_pence for i in invoices} == expected

    # Every view shows the same figure.
    coordinator_client = _signed_in(app, coordinator_id)
    csv_rows = {r["number"]: r for r in csv.DictReader(io.StringIO(reports.export_csv()))}
    for invoice in invoices:
        page = coordinator_client.get(f"/coordinator/invoices/{invoice.id}").text
        shown = re.search(r'id="balance">£([\d,.]+)<', page).group(1)
        assert shown == f"{abs(invoice.balance_pence) / 100:,.2f}", invoice.number
        employer_client = _signed_in(app, contacts[invoice.employer_id])
        listing = employer_client.get("/employer/invoices").text
        owed = re.search(rf'data-owed="{invoice.number}">£([\d,.]+)<', listing).group(1)
        assert owed == f"{invoice.owed_pence / 100:,.2f}", invoice.number
        pdf = coordinator_client.get(f"/invoices/{invoice.id}.pdf").data
        text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
        label = (
            "Written off, still owed"
            if invoice.status is InvoiceStatus.UNCOLLECTIBLE
            else "Balance due"
        )
        in_pdf = re.search(rf"{label}\s*£([\d,.]+)", text)
        assert in_pdf and in_pdf.group(1) == f"{invoice.owed_pence / 100:,.2f}", (
            invoice.number,
            text,
        )
        assert int(csv_rows[invoice.number]["balance_pence"]) == invoice.balance_pence
        if invoice.status is not InvoiceStatus.VOID:
            remote = fake.invoices[invoice.stripe_invoice_id]
            assert remote["amount_remaining"] == invoice.owed_pence, invoice.number

    # The finance export reconciles per employer and in total, over any split of the year.
    whole = reports.finance_report()
    by_employer = {row.employer: row for row in whole.rows}
    for name, employer_id in employers.items():
        balances = sum(i.balance_pence for i in invoices if i.employer_id == employer_id)
        assert by_employer[name].closing_pence == balances
        assert by_employer[name].opening_pence == 0
    total = whole.total
    assert total.closing_pence == sum(i.balance_pence for i in invoices) == 42000
    assert total.invoiced_pence == sum(
        i.total_pence for i in invoices if i.status is not InvoiceStatus.VOID
    )
    assert total.credited_pence == 42000 + 42000 + 10000
    assert total.refunded_pence == 42000 + 42000 + 10000 + 5000  # carried, Stripe, Dashboard, bank
    before = reports.finance_report(None, date(2026, 3, 31))
    after = reports.finance_report(date(2026, 4, 1), None)
    for first, second in zip(before.rows, after.rows, strict=True):
        assert first.employer == second.employer
        assert first.closing_pence == second.opening_pence
        assert second.closing_pence == by_employer[second.employer].closing_pence
    exported = list(
        csv.reader(io.StringIO(coordinator_client.get("/coordinator/invoices/finance.csv").text))
    )
    assert exported[0] == reports.FINANCE_COLUMNS
    assert exported[-1] == ["TOTAL", "0", *(str(v) for v in total.cells()[2:])]
    cli = runner.invoke(args=["invoicing", "finance-export", "--from", "2026-04-01"])
    assert cli.exit_code == 0 and cli.output.splitlines()[-1].startswith("TOTAL,")

    # The invariants hold, and every money event left an audit entry.
    assert_ledger_adds_up()
    assert runner.invoke(args=["check"]).exit_code == 0
    actions = set(db.session.scalars(select(AuditEvent.action)))
    assert {
        "billing.run",
        "invoice.issue",
        "invoice.payment",
        "invoice.credit",
        "invoice.refund",
        "invoice.carry_forward",
        "invoice.carry",
        "invoice.uncollectible",
        "invoice.void",
        "stripe.invoice_payment.paid",
        "stripe.credit_note.created",
    } <= actions
    stripe_actors = set(
        db.session.scalars(select(AuditEvent.actor_label).where(AuditEvent.action.like("stripe.%")))
    )
    assert stripe_actors == {"stripe"}
