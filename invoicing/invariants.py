"""Invoicing's invariants, registered with ``flask check`` (booking never imports this)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from booking.extensions import db
from booking.invariants import invariant

from .models import CreditNote, Invoice, InvoiceLine, InvoiceStatus


@invariant("nqsw invoiced once")
def nqsw_invoiced_once() -> list[str]:
    """No NQSW is on two live (not void) invoices for the same programme."""
    rows = db.session.execute(
        select(Invoice.programme_id, InvoiceLine.nqsw_id, func.count())
        .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
        .where(Invoice.status != InvoiceStatus.VOID)
        .group_by(Invoice.programme_id, InvoiceLine.nqsw_id)
        .having(func.count() > 1)
    ).all()
    return [
        f"NQSW {nqsw} is on {count} live invoices for programme {programme}"
        for programme, nqsw, count in rows
    ]


@invariant("invoice totals")
def invoice_totals() -> list[str]:
    """Invoice and credit note totals equal their lines (plus VAT)."""
    problems = []
    for invoice in db.session.scalars(select(Invoice).options(selectinload(Invoice.lines))):
        lines = sum(line.amount_pence for line in invoice.lines)
        if invoice.subtotal_pence != lines or invoice.total_pence != lines + invoice.vat_pence:
            problems.append(
                f"invoice {invoice.number}: lines {lines} + VAT {invoice.vat_pence}, "
                f"subtotal {invoice.subtotal_pence}, total {invoice.total_pence}"
            )
    for note in db.session.scalars(select(CreditNote).options(selectinload(CreditNote.lines))):
        if note.total_pence != note.subtotal_pence + note.vat_pence:
            problems.append(f"credit note {note.number}: total is not subtotal + VAT")
        # Notes made in Stripe's Dashboard have no lines of ours.
        lines = sum(line.amount_pence for line in note.lines)
        if note.lines and note.subtotal_pence != lines:
            problems.append(
                f"credit note {note.number}: lines {lines}, subtotal {note.subtotal_pence}"
            )
    return problems


@invariant("invoice settlement")
def invoice_settlement() -> list[str]:
    """Credits never exceed the invoice; money in beyond it is an overpayment, shown as one."""
    problems = []
    invoices = db.session.scalars(
        select(Invoice).options(
            selectinload(Invoice.payments),
            selectinload(Invoice.refunds),
            selectinload(Invoice.credit_notes),
        )
    )
    for invoice in invoices:
        name = f"invoice {invoice.number}"
        if invoice.status is InvoiceStatus.VOID:
            if invoice.payments or invoice.live_credit_notes:
                problems.append(f"{name}: void but has payments or credit notes")
            continue
        if invoice.credited_pence > invoice.total_pence:
            problems.append(
                f"{name}: credited {invoice.credited_pence} of a {invoice.total_pence} invoice"
            )
        if invoice.refunded_pence > invoice.paid_pence:
            problems.append(
                f"{name}: refunded {invoice.refunded_pence} of {invoice.paid_pence} received"
            )
        balance = invoice.balance_pence
        expected = {
            InvoiceStatus.ISSUED: balance > 0,
            InvoiceStatus.UNCOLLECTIBLE: balance > 0,
            InvoiceStatus.PAID: balance == 0,
            InvoiceStatus.OVERPAID: balance < 0,
        }[invoice.status]
        if not expected:
            problems.append(f"{name}: status {invoice.status.value} with balance {balance}")
    return problems
