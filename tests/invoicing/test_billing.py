"""Billing runs, numbering, VAT, credit notes, voids, payments, reminders and the ledger."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Integer, func, select

from booking.extensions import db
from booking.models import NQSW, Booking, Employer, EmployerOption, OutboxMessage, Programme
from invoicing import invariants, reports, services
from invoicing.models import (
    BilledEnrolment,
    GatewayState,
    Invoice,
    InvoiceCounter,
    InvoiceStatus,
    Payment,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _invoices(employer: Employer) -> list[Invoice]:
    return list(
        db.session.scalars(
            select(Invoice).where(Invoice.employer_id == employer.id).order_by(Invoice.id)
        )
    )


def assert_ledger_adds_up() -> None:
    """Sum invoices, credits, payments and refunds per employer from the rows; run the checks."""
    db.session.expire_all()
    for row in reports.ledger():
        invoices = db.session.scalars(
            select(Invoice).where(Invoice.employer_id == row.employer_id)
        ).all()
        live = [i for i in invoices if i.status is not InvoiceStatus.VOID]
        invoiced = sum(i.total_pence for i in live)
        credited = sum(n.total_pence for i in live for n in i.credit_notes if n.voided_at is None)
        paid = sum(p.amount_pence for i in live for p in i.payments)
        refunded = sum(r.amount_pence for i in live for r in i.refunds if r.failed_at is None)
        assert (row.invoiced_pence, row.credited_pence, row.paid_pence, row.refunded_pence) == (
            invoiced,
            credited,
            paid,
            refunded,
        )
        assert row.balance_pence == sum(i.balance_pence for i in invoices)
        assert all(isinstance(v, int) for v in (invoiced, credited, paid, row.balance_pence))
    problems = [
        *invariants.nqsw_invoiced_once(),
        *invariants.invoice_totals(),
        *invariants.invoice_settlement(),
    ]
    assert problems == [], problems


def test_billing_run_invoices_option2_employers_once_per_nqsw(
    programme: Programme,
    option2_employer: Callable[..., Employer],
    make_employer: Callable[..., Employer],
    make_nqsw: Callable[..., NQSW],
) -> None:
    trust = option2_employer(3)
    council = option2_employer(1, name="A Borough Council", po_number="")
    option1 = make_employer(option=EmployerOption.FULL_ACCESS)
    make_nqsw(option1)

    report = services.run_billing(programme, now=NOW)

    assert len(report.invoice_ids) == 2
    (trust_invoice,) = _invoices(trust)
    assert [i.number for i in _invoices(council)] == ["ASYE-2026-0002"]
    assert trust_invoice.number == "ASYE-2026-0001"
    assert trust_invoice.subtotal_pence == 3 * 35000
    assert trust_invoice.vat_pence == 0
    assert trust_invoice.total_pence == 105000
    assert trust_invoice.due_on == date(2026, 12, 23)
    assert trust_invoice.po_number == "PO-4471"
    assert trust_invoice.billing_address == "1 High Street\nLondon E1 1AA"
    assert trust_invoice.gateway_state is GatewayState.LOCAL
    assert _invoices(option1) == []
    mail = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "invoice_issued")
    ).all()
    assert sorted(m.recipients for m in mail) == ["ap@trust.example", "ap@trust.example"]
    assert "£1,050.00" in next(m.text_body for m in mail if "ASYE-2026-0001" in m.subject)

    # A second run bills only the NQSW enrolled since.
    again = services.run_billing(programme, now=NOW)
    assert again.invoice_ids == []
    make_nqsw(trust)
    third = services.run_billing(programme, now=NOW)
    (new_invoice,) = [db.session.get(Invoice, i) for i in third.invoice_ids]
    assert new_invoice.number == "ASYE-2026-0003"
    assert len(new_invoice.lines) == 1
    billed = db.session.scalar(select(func.count()).select_from(BilledEnrolment))
    assert billed == 5
    assert_ledger_adds_up()


def test_copies_billing_details_so_later_changes_do_not_rewrite_an_invoice(
    programme: Programme, option2_employer: Callable[..., Employer]
) -> None:
    trust = option2_employer(1)
    services.run_billing(programme, now=NOW)
    trust.billing_name = "Renamed"
    trust.po_number = "PO-NEW"
    db.session.commit()
    (invoice,) = _invoices(trust)
    assert (invoice.billing_name, invoice.po_number) == ("Finance, Example NHS Trust", "PO-4471")


def test_vat_is_a_setting_and_is_rounded_in_integer_pence(
    make_programme: Callable[..., Programme],
    option2_employer: Callable[..., Employer],
    make_nqsw: Callable[..., NQSW],
) -> None:
    priced = make_programme(price_per_nqsw_pence=33333, vat_rate_basis_points=2000)
    employer = option2_employer(0)
    make_nqsw(employer, programme=priced)
    services.run_billing(priced, now=NOW)
    (invoice,) = _invoices(employer)
    assert (invoice.subtotal_pence, invoice.vat_pence, invoice.total_pence) == (33333, 6667, 40000)
    assert services.vat_for(5, 1000) == 1  # 0.5p rounds half up
    assert services.format_pence(123456) == "£1,234.56"


def test_po_number_required_skips_that_employer_only(
    programme: Programme, option2_employer: Callable[..., Employer], runner
) -> None:
    needs_po = option2_employer(1, po_required=True, po_number="")
    fine = option2_employer(1)
    report = services.run_billing(programme, now=NOW)
    assert _invoices(needs_po) == []
    assert len(_invoices(fine)) == 1
    assert "purchase order" in report.skipped[0]

    result = runner.invoke(args=["invoicing", "run"])
    assert result.exit_code == 1
    assert "1 employer(s) skipped" in result.output

    needs_po.po_number = "PO-1"
    db.session.commit()
    result = runner.invoke(args=["invoicing", "run", "--programme", programme.slug])
    assert result.exit_code == 0, result.output
    assert "1 invoice(s) issued" in result.output
    assert _invoices(needs_po)[0].po_number == "PO-1"


def test_void_keeps_the_number_and_lets_its_nqsws_be_billed_again(
    programme: Programme, option2_employer: Callable[..., Employer]
) -> None:
    employer = option2_employer(2)
    services.run_billing(programme, now=NOW)
    (first,) = _invoices(employer)
    with pytest.raises(services.InvalidInput):
        services.void_invoice(first, "  ")
    db.session.rollback()
    services.void_invoice(first, "Wrong PO number")
    assert first.status is InvoiceStatus.VOID
    assert first.balance_pence == 0
    with pytest.raises(services.InvoiceClosed):
        services.record_payment(first, amount_pence=100, reference="x", paid_on=NOW.date())
    db.session.rollback()

    services.run_billing(programme, now=NOW)
    first_again, second = _invoices(employer)
    assert first_again.number == "ASYE-2026-0001"  # never reused, never deleted
    assert second.number == "ASYE-2026-0002"
    assert second.total_pence == 70000
    assert_ledger_adds_up()


def test_bank_transfer_payments_settle_an_invoice(
    programme: Programme, option2_employer: Callable[..., Employer]
) -> None:
    employer = option2_employer(2)
    services.run_billing(programme, now=NOW)
    (invoice,) = _invoices(employer)
    with pytest.raises(services.InvalidInput):
        services.record_payment(invoice, amount_pence=70001, reference="BACS1", paid_on=NOW.date())
    db.session.rollback()
    services.record_payment(invoice, amount_pence=30000, reference="BACS1", paid_on=NOW.date())
    assert invoice.status is InvoiceStatus.ISSUED
    assert invoice.balance_pence == 40000
    services.record_payment(invoice, amount_pence=40000, reference="BACS2", paid_on=NOW.date())
    assert invoice.status is InvoiceStatus.PAID
    assert invoice.paid_pence == 70000
    assert (
        db.session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.kind == "invoice_paid")
        )
        == 1
    )
    with pytest.raises(services.InvoiceClosed):
        services.void_invoice(invoice, "too late")
    db.session.rollback()
    assert_ledger_adds_up()


def test_credit_notes_are_numbered_cannot_double_credit_and_follow_the_withdrawal_policy(
    app,
    programme: Programme,
    option2_employer: Callable[..., Employer],
    make_session,
) -> None:
    employer = option2_employer(3)
    services.run_billing(programme, now=NOW)
    (invoice,) = _invoices(employer)
    first_line, second_line, third_line = invoice.lines

    note = services.credit_invoice(invoice, [first_line.id], "Duplicate enrolment", now=NOW)
    assert note.number == "ASYE-CN-2026-0001"
    assert note.total_pence == 35000
    assert invoice.balance_pence == 70000
    with pytest.raises(services.InvoiceError):
        services.credit_invoice(invoice, [first_line.id], "again", now=NOW)
    db.session.rollback()

    # Withdrawn before any session: credited by the next billing run, per the policy.
    second_line.nqsw.withdrawn_at = NOW
    # Withdrawn after attending a session: still owed.
    session = make_session(
        starts_at=NOW - timedelta(days=10), ends_at=NOW - timedelta(days=10, hours=-3)
    )
    db.session.add(Booking(session=session, nqsw=third_line.nqsw, course_id=session.course_id))
    third_line.nqsw.withdrawn_at = NOW
    db.session.commit()
    report = services.run_billing(programme, now=NOW)
    assert len(report.credit_note_ids) == 1
    assert report.invoice_ids == []
    (policy_note,) = [n for n in invoice.credit_notes if n.id in report.credit_note_ids]
    assert policy_note.number == "ASYE-CN-2026-0002"
    assert [line.invoice_line_id for line in policy_note.lines] == [second_line.id]
    assert invoice.balance_pence == 35000
    # Nothing further on a repeat run.
    assert services.run_billing(programme, now=NOW).credit_note_ids == []

    services.record_payment(invoice, amount_pence=35000, reference="BACS9", paid_on=NOW.date())
    assert invoice.status is InvoiceStatus.PAID
    assert_ledger_adds_up()


def test_withdrawal_policy_can_be_turned_off(
    app, programme: Programme, option2_employer: Callable[..., Employer]
) -> None:
    app.config["INVOICE_CREDIT_WITHDRAWN_BEFORE_FIRST_SESSION"] = False
    employer = option2_employer(1)
    services.run_billing(programme, now=NOW)
    employer.nqsws[0].withdrawn_at = NOW
    db.session.commit()
    assert services.run_billing(programme, now=NOW).credit_note_ids == []


def test_fully_credited_invoice_reads_as_credited(
    programme: Programme, option2_employer: Callable[..., Employer]
) -> None:
    employer = option2_employer(1)
    services.run_billing(programme, now=NOW)
    (invoice,) = _invoices(employer)
    services.credit_invoice(invoice, [invoice.lines[0].id], "Left before starting", now=NOW)
    assert invoice.status is InvoiceStatus.PAID
    assert invoice.state_label == "Credited"
    assert invoice.balance_pence == 0
    assert_ledger_adds_up()


def test_reminders_go_once_per_interval_for_overdue_invoices(
    programme: Programme, option2_employer: Callable[..., Employer], runner
) -> None:
    employer = option2_employer(1)
    paid_up = option2_employer(1)
    services.run_billing(programme, now=NOW)
    (overdue,) = _invoices(employer)
    (paid,) = _invoices(paid_up)
    services.record_payment(paid, amount_pence=35000, reference="B1", paid_on=NOW.date())

    assert services.send_reminders(now=NOW + timedelta(days=10)) == 0  # not yet due
    later = NOW + timedelta(days=31)
    assert services.send_reminders(now=later) == 1
    assert services.send_reminders(now=later + timedelta(days=1)) == 0
    assert services.send_reminders(now=later + timedelta(days=7)) == 1
    reminders = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "invoice_overdue")
    ).all()
    assert len(reminders) == 2
    assert overdue.number in reminders[0].subject
    assert "£350.00" in reminders[0].text_body
    result = runner.invoke(args=["invoicing", "remind"])
    assert result.exit_code == 0


def test_csv_export_lists_invoices_and_credit_notes_in_pence(
    programme: Programme, option2_employer: Callable[..., Employer]
) -> None:
    employer = option2_employer(2)
    services.run_billing(programme, now=NOW)
    (invoice,) = _invoices(employer)
    services.credit_invoice(invoice, [invoice.lines[0].id], "Withdrawn", now=NOW)
    rows = list(csv.DictReader(io.StringIO(reports.export_csv())))
    assert [(r["document"], r["number"], r["total_pence"], r["total_gbp"]) for r in rows] == [
        ("invoice", "ASYE-2026-0001", "70000", "700.00"),
        ("credit_note", "ASYE-CN-2026-0001", "-35000", "-350.00"),
    ]
    assert rows[0]["balance_pence"] == "35000"
    assert rows[0]["po_number"] == "PO-4471"


def test_counter_holds_the_last_number(
    programme: Programme, option2_employer: Callable[..., Employer]
) -> None:
    option2_employer(1)
    option2_employer(1)
    services.run_billing(programme, now=NOW)
    counter = db.session.scalar(select(InvoiceCounter).where(InvoiceCounter.key == "ASYE-2026"))
    assert counter is not None and counter.last_value == 2
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 0


def test_money_columns_are_integers() -> None:
    money = [
        column
        for table in db.metadata.sorted_tables
        for column in table.columns
        if column.name.endswith("_pence")
    ]
    assert {c.table.name for c in money} >= {"invoice", "invoice_line", "credit_note", "payment"}
    assert all(isinstance(c.type, Integer) for c in money), [
        (c.table.name, c.name, c.type) for c in money if not isinstance(c.type, Integer)
    ]


def test_employer_without_po_and_nothing_to_bill_is_not_reported(
    programme: Programme, option2_employer: Callable[..., Employer]
) -> None:
    employer = option2_employer(1)
    services.run_billing(programme, now=NOW)
    employer.po_required = True
    employer.po_number = ""
    db.session.commit()
    assert services.run_billing(programme, now=NOW).skipped == []
