"""What finance reads: invoice lists with totals, the ledger, the CSV and the finance export.

Every figure is the same balance as the invoice page's: invoiced - credited - paid +
refunded, summed from the rows themselves.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from booking.extensions import db
from booking.models import Employer, london_today

from .models import CreditNote, Invoice, InvoiceStatus, Payment, Refund
from .services import pence_as_decimal


@dataclass(frozen=True)
class LedgerRow:
    employer_id: int
    employer_name: str
    invoiced_pence: int
    credited_pence: int
    paid_pence: int
    refunded_pence: int

    @property
    def balance_pence(self) -> int:
        return self.invoiced_pence - self.credited_pence - self.paid_pence + self.refunded_pence


def _invoices(employer_id: int | None = None) -> list[Invoice]:
    query = (
        select(Invoice)
        .options(
            selectinload(Invoice.payments),
            selectinload(Invoice.refunds),
            selectinload(Invoice.credit_notes),
            selectinload(Invoice.employer),
        )
        .order_by(Invoice.issued_at.desc(), Invoice.id.desc())
    )
    if employer_id is not None:
        query = query.where(Invoice.employer_id == employer_id)
    return list(db.session.scalars(query))


def ledger() -> list[LedgerRow]:
    """Return per employer: invoiced (not void), credited, paid, refunded and the balance."""
    rows: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for invoice in _invoices():
        if invoice.status is InvoiceStatus.VOID:
            continue
        names[invoice.employer_id] = invoice.employer.name
        sums = rows.setdefault(invoice.employer_id, [0, 0, 0, 0])
        sums[0] += invoice.total_pence
        sums[1] += invoice.credited_pence
        sums[2] += invoice.paid_pence
        sums[3] += invoice.refunded_pence
    return sorted(
        (LedgerRow(e, names[e], *sums) for e, sums in rows.items()),
        key=lambda row: row.employer_name,
    )


@dataclass(frozen=True)
class Overview:
    invoices: list[Invoice]
    outstanding_pence: int
    overdue_pence: int
    overdue_count: int
    due_back_pence: int
    on_account_pence: int
    uncollectible_pence: int


def invoices_for(employer_id: int | None = None, *, today: date | None = None) -> Overview:
    """Return invoices (one employer's, or all) with what is owed, overdue and due back."""
    today = today or london_today()
    invoices = _invoices(employer_id)
    overdue = [i for i in invoices if i.is_overdue(today)]
    overpaid = [i for i in invoices if i.status is InvoiceStatus.OVERPAID]
    return Overview(
        invoices=invoices,
        outstanding_pence=sum(i.owed_pence for i in invoices),
        overdue_pence=sum(i.owed_pence for i in overdue),
        overdue_count=len(overdue),
        due_back_pence=sum(i.overpaid_pence for i in overpaid if not i.carry_forward),
        on_account_pence=sum(i.overpaid_pence for i in overpaid if i.carry_forward),
        uncollectible_pence=sum(
            i.owed_pence for i in invoices if i.status is InvoiceStatus.UNCOLLECTIBLE
        ),
    )


def _csv(rows: Iterable[Sequence[object]]) -> str:
    # The one place this module writes CSV: the shared neutralising writer replaces it.
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()


CSV_COLUMNS = [
    "document",
    "number",
    "invoice_number",
    "issued_on",
    "due_on",
    "employer",
    "billing_name",
    "po_number",
    "net_pence",
    "vat_pence",
    "total_pence",
    "total_gbp",
    "paid_pence",
    "balance_pence",
    "status",
    "credited_pence",
    "refunded_pence",
]


def export_csv() -> str:
    """Return every invoice and credit note as CSV rows for the finance system."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for invoice in sorted(_invoices(), key=lambda i: i.id):
        writer.writerow(
            [
                "invoice",
                invoice.number,
                invoice.number,
                london_today(invoice.issued_at).isoformat(),
                invoice.due_on.isoformat(),
                invoice.employer.name,
                invoice.billing_name,
                invoice.po_number,
                invoice.subtotal_pence,
                invoice.vat_pence,
                invoice.total_pence,
                pence_as_decimal(invoice.total_pence),
                invoice.paid_pence,
                invoice.balance_pence,
                invoice.status.value,
                invoice.credited_pence,
                invoice.refunded_pence,
            ]
        )
        for note in invoice.credit_notes:
            writer.writerow(
                [
                    "credit_note",
                    note.number,
                    invoice.number,
                    london_today(note.issued_at).isoformat(),
                    "",
                    invoice.employer.name,
                    invoice.billing_name,
                    invoice.po_number,
                    -note.subtotal_pence,
                    -note.vat_pence,
                    -note.total_pence,
                    pence_as_decimal(-note.total_pence),
                    "",
                    "",
                    "void" if note.voided_at else "issued",
                    "",
                    "",
                ]
            )
    return out.getvalue()


# The finance export ---------------------------------------------------------------------

FINANCE_COLUMNS = [
    "employer",
    "opening_balance_pence",
    "invoiced_pence",
    "credited_pence",
    "paid_pence",
    "refunded_pence",
    "closing_balance_pence",
]


@dataclass
class FinanceRow:
    employer: str
    opening_pence: int = 0
    invoiced_pence: int = 0
    credited_pence: int = 0
    paid_pence: int = 0
    refunded_pence: int = 0

    @property
    def closing_pence(self) -> int:
        return (
            self.opening_pence
            + self.invoiced_pence
            - self.credited_pence
            - self.paid_pence
            + self.refunded_pence
        )

    def cells(self) -> list[object]:
        return [
            self.employer,
            self.opening_pence,
            self.invoiced_pence,
            self.credited_pence,
            self.paid_pence,
            self.refunded_pence,
            self.closing_pence,
        ]


@dataclass
class FinanceReport:
    start: date | None
    end: date | None
    rows: list[FinanceRow] = field(default_factory=list)

    @property
    def total(self) -> FinanceRow:
        total = FinanceRow("TOTAL")
        for row in self.rows:
            total.opening_pence += row.opening_pence
            total.invoiced_pence += row.invoiced_pence
            total.credited_pence += row.credited_pence
            total.paid_pence += row.paid_pence
            total.refunded_pence += row.refunded_pence
        return total

    def csv(self) -> str:
        """Return the report as CSV: one row per employer, then the total."""
        return _csv([FINANCE_COLUMNS, *(row.cells() for row in self.rows), self.total.cells()])


def finance_report(start: date | None = None, end: date | None = None) -> FinanceReport:
    """Reconcile each employer over a period of London dates (both ends included).

    Each movement is dated when it happened: an invoice when issued (and reversed when
    voided), a credit note when issued (reversed if voided), a payment on the day it
    was received, a refund on the day it was made (reversed if it failed). Movements
    before ``start`` make the opening balance; the closing balance is opening +
    invoiced - credited - paid + refunded.
    """
    movements: dict[int, list[tuple[date, str, int]]] = {}
    rows = db.session.execute(select(Employer.id, Employer.name))
    names: dict[int, str] = {employer_id: name for employer_id, name in rows}

    def add(employer_id: int, day: date, column: str, pence: int) -> None:
        movements.setdefault(employer_id, []).append((day, column, pence))

    for invoice in db.session.scalars(select(Invoice)):
        add(invoice.employer_id, london_today(invoice.issued_at), "invoiced", invoice.total_pence)
        if invoice.voided_at is not None:
            add(
                invoice.employer_id,
                london_today(invoice.voided_at),
                "invoiced",
                -invoice.total_pence,
            )
    for note in db.session.scalars(select(CreditNote)):
        add(note.employer_id, london_today(note.issued_at), "credited", note.total_pence)
        if note.voided_at is not None:
            add(note.employer_id, london_today(note.voided_at), "credited", -note.total_pence)
    for payment in db.session.scalars(select(Payment).options(selectinload(Payment.invoice))):
        add(payment.invoice.employer_id, payment.paid_on, "paid", payment.amount_pence)
    for refund in db.session.scalars(select(Refund).options(selectinload(Refund.invoice))):
        add(refund.invoice.employer_id, refund.refunded_on, "refunded", refund.amount_pence)
        if refund.failed_at is not None:
            add(
                refund.invoice.employer_id,
                london_today(refund.failed_at),
                "refunded",
                -refund.amount_pence,
            )
    report = FinanceReport(start, end)
    sign = {"invoiced": 1, "credited": -1, "paid": -1, "refunded": 1}
    for employer_id in sorted(movements, key=lambda e: names[e]):
        row = FinanceRow(names[employer_id])
        for day, column, pence in movements[employer_id]:
            if end is not None and day > end:
                continue
            if start is not None and day < start:
                row.opening_pence += sign[column] * pence
            else:
                setattr(row, f"{column}_pence", getattr(row, f"{column}_pence") + pence)
        report.rows.append(row)
    return report
