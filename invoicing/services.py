"""Invoicing services: billing runs, issue, void, credit, payments, refunds, write-offs.

Each invoice is issued in its own transaction, taking its number from a counter row
under a lock, so two billing runs at once neither share a number nor bill an NQSW
twice (a unique claim per NQSW and programme backs that up). Every later change to
an invoice first takes the invoice's row lock (``SELECT ... FOR UPDATE``; on SQLite
the write lock taken at ``BEGIN IMMEDIATE``) and re-reads it, so of two identical
requests the second sees the first's result and gets the ordinary refusal. Stripe is
called only after our own commit (``stripe_sync``).

One balance: invoiced - credited - paid + refunded. Positive is owed; negative is an
overpayment, shown as *refund due* or, once the coordinator chooses to carry it,
*credit on account* until it is applied to the employer's next invoice.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from booking.audit.services import record as audit
from booking.errors import BookingError, InvalidInput
from booking.extensions import db
from booking.models import (
    NQSW,
    Booking,
    BookingStatus,
    Employer,
    EmployerOption,
    Programme,
    Role,
    Session,
    User,
    london_today,
    utcnow,
)
from booking.notifications import queue_message

from . import gateway
from .models import (
    BilledEnrolment,
    CreditNote,
    CreditNoteLine,
    GatewayState,
    Invoice,
    InvoiceCounter,
    InvoiceLine,
    InvoiceStatus,
    Payment,
    PaymentMethod,
    Refund,
)
from .stripe_sync import after_change, push_to_stripe

log = logging.getLogger(__name__)

OPEN = (InvoiceStatus.ISSUED, InvoiceStatus.UNCOLLECTIBLE)


class InvoiceError(BookingError):
    """A request the invoicing rules refuse."""


class PoNumberRequired(InvoiceError):
    """The employer must give a purchase order number before being invoiced."""


class InvoiceClosed(InvoiceError):
    """The invoice is paid or void, so this cannot be done to it."""


class PreviewOutdated(InvoiceError):
    """What a billing run would do changed after the coordinator looked at it."""


def format_pence(pence: int) -> str:
    """Return pence as pounds for people, e.g. 35000 -> '£350.00'."""
    sign = "-" if pence < 0 else ""
    pounds, rest = divmod(abs(pence), 100)
    return f"{sign}£{pounds:,}.{rest:02d}"


def pence_as_decimal(pence: int) -> str:
    """Return pence as a plain decimal string for finance systems, e.g. '350.00'."""
    sign = "-" if pence < 0 else ""
    pounds, rest = divmod(abs(pence), 100)
    return f"{sign}{pounds}.{rest:02d}"


_POUNDS = re.compile(r"£?(?P<pounds>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<pence>\d{1,2}))?")


def parse_pounds(text: str) -> int:
    """Return an amount typed in pounds ('350', '1,050.00', '£12.5') as pence.

    Raises ValueError for anything else, including more than two decimal places.
    """
    match = _POUNDS.fullmatch(text.strip().replace(" ", ""))
    if match is None:
        raise ValueError(text)
    pounds = int(match["pounds"].replace(",", ""))
    pence = int((match["pence"] or "0").ljust(2, "0"))
    return pounds * 100 + pence


def vat_for(subtotal_pence: int, rate_basis_points: int) -> int:
    """Return VAT on a subtotal, rounded half up to the penny, in integers only."""
    return (subtotal_pence * rate_basis_points + 5000) // 10000


def vat_label(rate_basis_points: int) -> str:
    """Return a VAT rate for people, e.g. 2000 -> '20%'."""
    whole, rest = divmod(rate_basis_points, 100)
    return f"{whole}%" if rest == 0 else f"{whole}.{rest:02d}".rstrip("0") + "%"


def _money(invoice: Invoice) -> dict[str, Any]:
    """Return what an audit entry keeps of an invoice: its state and figures, no names."""
    return {
        "status": invoice.status,
        "balance_pence": invoice.balance_pence,
        "credited_pence": invoice.credited_pence,
        "paid_pence": invoice.paid_pence,
        "refunded_pence": invoice.refunded_pence,
    }


# Numbering -------------------------------------------------------------------------


def _ensure_counter(key: str) -> None:
    if db.session.scalar(select(InvoiceCounter.id).where(InvoiceCounter.key == key)) is not None:
        return
    try:
        with db.session.begin_nested():
            db.session.add(InvoiceCounter(key=key, last_value=0))
    except IntegrityError:
        pass  # another run created it first; its row is as good as ours


def take_number(key: str) -> str:
    """Take the next number for ``key``, locking the counter until our commit.

    The increment rolls back with the transaction, so numbers have no gaps; the lock
    makes a second run wait here rather than read the same NQSWs as unbilled.
    """
    _ensure_counter(key)
    value = db.session.execute(
        update(InvoiceCounter)
        .where(InvoiceCounter.key == key)
        .values(last_value=InvoiceCounter.last_value + 1)
        .returning(InvoiceCounter.last_value)
    ).scalar_one()
    return f"{key}-{value:04d}"


def _invoice_key(programme: Programme, today: date) -> str:
    return f"{programme.invoice_prefix}-{today.year}"


def credit_key(prefix: str, today: date) -> str:
    return f"{prefix}-CN-{today.year}"


def set_purchase_order(employer: Employer, po_number: str, *, by: User | None = None) -> None:
    """Record the purchase order number future invoices to an employer will carry."""
    value = po_number.strip()
    if len(value) > 80:
        raise InvalidInput(
            "Enter a purchase order number of 80 characters or fewer.", field="po_number"
        )
    if not value and employer.po_required:
        raise InvalidInput("Enter the purchase order number.", field="po_number")
    employer.po_number = value
    db.session.commit()
    log.info(
        "employer %s PO number set %s", employer.id, f"by user {by.id}" if by else "by a command"
    )


def employers_awaiting_po() -> Sequence[Employer]:
    """Return Option 2 employers that cannot be invoiced until they give a PO number."""
    return db.session.scalars(
        select(Employer)
        .where(
            Employer.option == EmployerOption.TRAINING_ONLY,
            Employer.po_required.is_(True),
            Employer.po_number == "",
        )
        .order_by(Employer.name)
    ).all()


# Locking and settling --------------------------------------------------------------


def lock(invoice: Invoice) -> Invoice:
    """Take the invoice's row lock and re-read it and its money, as committed by others."""
    db.session.execute(select(Invoice.id).where(Invoice.id == invoice.id).with_for_update())
    db.session.expire_all()
    return invoice


def settle(invoice: Invoice, now: datetime) -> bool:
    """Set the status from the balance; return True if the invoice has just become paid."""
    db.session.flush()
    db.session.refresh(invoice)
    if invoice.status is InvoiceStatus.VOID:
        return False
    balance = invoice.balance_pence
    if invoice.status is InvoiceStatus.UNCOLLECTIBLE and balance > 0:
        return False
    was = invoice.status
    if balance > 0:
        invoice.status = InvoiceStatus.ISSUED
    elif balance == 0:
        invoice.status = InvoiceStatus.PAID
    else:
        invoice.status = InvoiceStatus.OVERPAID
    if invoice.status is not InvoiceStatus.OVERPAID:
        invoice.carry_forward = False
    if invoice.status is InvoiceStatus.PAID and was is not InvoiceStatus.PAID:
        invoice.paid_at = now
        return True
    return False


def queue_paid(invoice: Invoice) -> None:
    """Thank the employer for paying in full (credits alone send no thanks)."""
    if invoice.received_pence <= 0:
        return
    queue_message(
        "invoice_paid",
        billing_emails(invoice.employer),
        f"Invoice {invoice.number} is paid: thank you",
        invoice=invoice,
        total=format_pence(invoice.total_pence),
    )


def billing_emails(employer: Employer) -> list[str]:
    if employer.billing_email:
        return [employer.billing_email]
    return [c.email for c in employer.contacts if c.active and c.role is Role.EMPLOYER_CONTACT]


# Billing runs ----------------------------------------------------------------------


@dataclass
class BillingReport:
    invoice_ids: list[int] = field(default_factory=list)
    credit_note_ids: list[int] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    stripe_errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Return one sentence for people."""
        parts = [
            f"{len(self.invoice_ids)} invoice(s) issued",
            f"{len(self.credit_note_ids)} credit note(s) issued",
        ]
        if self.skipped:
            reasons = "; ".join(reason.rstrip(".") for reason in self.skipped)
            parts.append(f"{len(self.skipped)} employer(s) skipped: {reasons}")
        if self.stripe_errors:
            parts.append(f"{len(self.stripe_errors)} not yet sent to Stripe (retry later)")
        return ", ".join(parts) + "."


@dataclass(frozen=True)
class PreviewInvoice:
    employer_id: int
    employer_name: str
    nqsws: list[tuple[int, str]]
    subtotal_pence: int
    vat_pence: int
    total_pence: int
    skipped_because: str = ""


@dataclass(frozen=True)
class PreviewCredit:
    invoice_number: str
    employer_name: str
    nqsw_names: list[str]
    line_ids: list[int]


@dataclass(frozen=True)
class BillingPreview:
    programme_id: int
    invoices: list[PreviewInvoice]
    credits: list[PreviewCredit]

    @property
    def to_issue(self) -> list[PreviewInvoice]:
        return [row for row in self.invoices if not row.skipped_because]

    @property
    def skipped(self) -> list[PreviewInvoice]:
        return [row for row in self.invoices if row.skipped_because]

    @property
    def total_pence(self) -> int:
        return sum(row.total_pence for row in self.to_issue)

    @property
    def fingerprint(self) -> str:
        """Return a short digest of exactly what a run would do, to confirm against."""
        parts = [
            f"i{row.employer_id}:{','.join(str(n) for n, _ in row.nqsws)}:{row.total_pence}"
            for row in self.to_issue
        ] + [f"c{','.join(str(i) for i in credit.line_ids)}" for credit in self.credits]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    @property
    def empty(self) -> bool:
        return not self.to_issue and not self.credits


def _unbilled(employer_id: int, programme_id: int) -> Sequence[NQSW]:
    claimed = exists().where(
        BilledEnrolment.programme_id == programme_id, BilledEnrolment.nqsw_id == NQSW.id
    )
    return db.session.scalars(
        select(NQSW)
        .where(
            NQSW.employer_id == employer_id,
            NQSW.programme_id == programme_id,
            NQSW.withdrawn_at.is_(None),
            ~claimed,
        )
        .options(selectinload(NQSW.user))
        .order_by(NQSW.id)
    ).all()


def _billable_employers(programme_id: int) -> Sequence[int]:
    return db.session.scalars(
        select(Employer.id)
        .where(Employer.option == EmployerOption.TRAINING_ONLY)
        .where(exists().where(NQSW.employer_id == Employer.id, NQSW.programme_id == programme_id))
        .order_by(Employer.id)
    ).all()


def _po_missing(employer: Employer) -> str:
    if employer.po_required and not employer.po_number.strip():
        return f"{employer.name} needs a purchase order number before invoicing."
    return ""


def preview_billing(programme: Programme) -> BillingPreview:
    """Return who a billing run would invoice, for which NQSWs and how much, and who it skips."""
    rows = []
    for employer_id in _billable_employers(programme.id):
        employer = db.session.get_one(Employer, employer_id)
        nqsws = _unbilled(employer_id, programme.id)
        if not nqsws:
            continue
        subtotal = programme.price_per_nqsw_pence * len(nqsws)
        vat = vat_for(subtotal, programme.vat_rate_basis_points)
        rows.append(
            PreviewInvoice(
                employer_id=employer.id,
                employer_name=employer.name,
                nqsws=[(n.id, n.name) for n in nqsws],
                subtotal_pence=subtotal,
                vat_pence=vat,
                total_pence=subtotal + vat,
                skipped_because=_po_missing(employer),
            )
        )
    credits = [
        PreviewCredit(
            invoice_number=invoice.number,
            employer_name=invoice.employer.name,
            nqsw_names=[line.nqsw.name for line in invoice.lines if line.id in set(line_ids)],
            line_ids=line_ids,
        )
        for invoice, line_ids in _withdrawals_to_credit(programme.id)
    ]
    return BillingPreview(programme_id=programme.id, invoices=rows, credits=credits)


def programme_to_bill() -> Programme | None:
    """Return the programme a billing run should default to: the newest with NQSWs to bill."""
    programmes = db.session.scalars(
        select(Programme).order_by(Programme.starts_on.desc(), Programme.id.desc())
    ).all()
    for programme in programmes:
        if any(_unbilled(e, programme.id) for e in _billable_employers(programme.id)):
            return programme
    return programmes[0] if programmes else None


def issue_invoice(
    employer: Employer, programme: Programme, *, now: datetime | None = None
) -> Invoice | None:
    """Invoice an Option 2 employer for its NQSWs not yet billed this programme year."""
    if employer.option is not EmployerOption.TRAINING_ONLY:
        return None
    now = now or utcnow()
    today = london_today(now)
    number = take_number(_invoice_key(programme, today))
    nqsws = _unbilled(employer.id, programme.id)
    if not nqsws:
        db.session.rollback()  # gives the number back: nothing was issued
        return None
    if reason := _po_missing(employer):
        db.session.rollback()
        raise PoNumberRequired(reason)
    price = programme.price_per_nqsw_pence
    subtotal = price * len(nqsws)
    vat = vat_for(subtotal, programme.vat_rate_basis_points)
    invoice = Invoice(
        number=number,
        employer=employer,
        programme=programme,
        issued_at=now,
        due_on=today + timedelta(days=programme.payment_terms_days),
        billing_name=employer.billing_name or employer.name,
        billing_address=employer.billing_address,
        billing_email=employer.billing_email,
        po_number=employer.po_number.strip(),
        subtotal_pence=subtotal,
        vat_rate_basis_points=programme.vat_rate_basis_points,
        vat_pence=vat,
        total_pence=subtotal + vat,
        gateway_state=GatewayState.PENDING if gateway.enabled() else GatewayState.LOCAL,
    )
    db.session.add(invoice)
    for nqsw in nqsws:
        line = InvoiceLine(
            invoice=invoice,
            nqsw=nqsw,
            description=f"{programme.name}: training for {nqsw.name} (SWE {nqsw.swe_number})",
            amount_pence=price,
        )
        db.session.add(line)
        db.session.flush()
        db.session.add(
            BilledEnrolment(programme_id=programme.id, nqsw_id=nqsw.id, invoice_line_id=line.id)
        )
    queue_message(
        "invoice_issued",
        billing_emails(employer),
        f"Invoice {number} from {programme.host_name}",
        invoice=invoice,
        programme=programme,
        total=format_pence(invoice.total_pence),
    )
    audit(
        "invoice.issue",
        invoice,
        after={
            "number": number,
            "total_pence": invoice.total_pence,
            "nqsw_ids": [n.id for n in nqsws],
        },
        employer_id=employer.id,
        at=now,
    )
    db.session.commit()
    log.info("invoice %s issued to employer %s", invoice.id, employer.id)
    return invoice


def run_billing(
    programme: Programme, *, now: datetime | None = None, expected: str | None = None
) -> BillingReport:
    """Invoice every Option 2 employer's new NQSWs and credit withdrawals the policy allows.

    With ``expected`` (a preview's fingerprint) nothing is issued if the run would now
    do anything other than what was previewed.
    """
    programme_id = programme.id
    if expected is not None and preview_billing(programme).fingerprint != expected:
        db.session.rollback()
        raise PreviewOutdated(
            "Enrolments or invoices changed since you looked: check the billing run again."
        )
    report = BillingReport()
    for employer_id in _billable_employers(programme_id):
        # One transaction per invoice: a refusal for one employer leaves the others issued.
        for attempt in (1, 2):
            employer = db.session.get_one(Employer, employer_id)
            try:
                invoice = issue_invoice(
                    employer, db.session.get_one(Programme, programme_id), now=now
                )
            except PoNumberRequired as error:
                db.session.rollback()
                report.skipped.append(error.message)
                break
            except IntegrityError:
                # Another run claimed these NQSWs between our read and our insert.
                db.session.rollback()
                if attempt == 2:
                    raise
                continue
            if invoice is not None:
                report.invoice_ids.append(invoice.id)
            break
    report.credit_note_ids.extend(credit_withdrawals(programme_id, now=now))
    audit(
        "billing.run",
        ("programme", programme_id),
        after={
            "invoice_ids": report.invoice_ids,
            "credit_note_ids": report.credit_note_ids,
            "skipped": len(report.skipped),
        },
        at=now,
    )
    db.session.commit()
    for invoice_id in report.invoice_ids:
        invoice = db.session.get_one(Invoice, invoice_id)
        try:
            push_to_stripe(invoice)
        except gateway.GatewayError as error:
            report.stripe_errors.append(error.message)
        apply_account_credit(invoice.employer_id, now=now)
    return report


# Void, credit, write off -------------------------------------------------------------


def void_invoice(invoice: Invoice, reason: str, *, by: User | None = None) -> None:
    """Void an unpaid invoice; its NQSWs become billable again."""
    if not reason.strip():
        raise InvalidInput("Say why the invoice is void.", field="reason")
    lock(invoice)
    if invoice.status is not InvoiceStatus.ISSUED:
        raise InvoiceClosed(f"Invoice {invoice.number} is {invoice.state_label.lower()}.")
    if invoice.payments:
        raise InvoiceClosed(
            f"Invoice {invoice.number} has payments; issue a credit note instead of voiding it."
        )
    if invoice.credit_notes:
        raise InvoiceClosed(f"Invoice {invoice.number} has credit notes; credit the rest instead.")
    before = _money(invoice)
    void(invoice, reason.strip())
    audit(
        "invoice.void",
        invoice,
        actor=by,
        before=before,
        after=_money(invoice),
        employer_id=invoice.employer_id,
        reason=reason.strip(),
    )
    db.session.commit()
    after_change(invoice)


def void(invoice: Invoice, reason: str) -> None:
    """Void the invoice and release its NQSWs' claims (the caller holds the lock)."""
    invoice.status = InvoiceStatus.VOID
    invoice.voided_at = utcnow()
    invoice.void_reason = reason
    line_ids = [line.id for line in invoice.lines]
    for claim in db.session.scalars(
        select(BilledEnrolment).where(BilledEnrolment.invoice_line_id.in_(line_ids))
    ):
        db.session.delete(claim)


def mark_uncollectible(
    invoice: Invoice, reason: str, *, by: User | str | None = None, now: datetime | None = None
) -> None:
    """Write an invoice off: still owed on the books, no longer chased."""
    if not reason.strip():
        raise InvalidInput("Say why the invoice cannot be collected.", field="reason")
    lock(invoice)
    if invoice.status is not InvoiceStatus.ISSUED:
        raise InvoiceClosed(f"Invoice {invoice.number} is {invoice.state_label.lower()}.")
    before = _money(invoice)
    write_off(invoice, reason.strip(), now or utcnow())
    audit(
        "invoice.uncollectible",
        invoice,
        actor=by,
        before=before,
        after=_money(invoice),
        employer_id=invoice.employer_id,
        reason=reason.strip(),
    )
    db.session.commit()
    after_change(invoice)


def write_off(invoice: Invoice, reason: str, now: datetime) -> None:
    invoice.status = InvoiceStatus.UNCOLLECTIBLE
    invoice.uncollectible_at = now
    invoice.uncollectible_reason = reason


def credit_invoice(
    invoice: Invoice,
    line_ids: Sequence[int],
    reason: str,
    *,
    by: User | None = None,
    now: datetime | None = None,
) -> CreditNote:
    """Issue a numbered credit note for some of an invoice's lines."""
    now = now or utcnow()
    if not reason.strip():
        raise InvalidInput("Say why the invoice is credited.", field="reason")
    lock(invoice)
    before = _money(invoice)
    note = _credit(invoice, line_ids, reason, now=now)
    audit(
        "invoice.credit",
        invoice,
        actor=by,
        before=before,
        after={**_money(invoice), "credit_note_id": note.id, "credit_pence": note.total_pence},
        employer_id=invoice.employer_id,
        reason=note.reason,
        at=now,
    )
    db.session.commit()
    after_change(invoice)
    return note


def _credit(invoice: Invoice, line_ids: Sequence[int], reason: str, *, now: datetime) -> CreditNote:
    if invoice.status is InvoiceStatus.VOID:
        raise InvoiceClosed(f"Invoice {invoice.number} is void.")
    wanted = set(line_ids)
    lines = [line for line in invoice.lines if line.id in wanted]
    if not lines or len(lines) != len(wanted):
        raise InvalidInput("Choose at least one line of this invoice to credit.", field="lines")
    credited = set(
        db.session.scalars(
            select(CreditNoteLine.invoice_line_id).where(
                CreditNoteLine.invoice_line_id.in_(wanted), CreditNoteLine.voided.is_(False)
            )
        )
    )
    if credited:
        raise InvoiceError("A line you chose has already been credited.", field="lines")
    subtotal = sum(line.amount_pence for line in lines)
    # Rounding VAT per note could otherwise credit a penny more than was invoiced.
    vat = min(
        vat_for(subtotal, invoice.vat_rate_basis_points),
        invoice.total_pence - invoice.credited_pence - subtotal,
    )
    vat = max(vat, 0)
    note = CreditNote(
        number=take_number(credit_key(invoice.programme.invoice_prefix, london_today(now))),
        invoice=invoice,
        employer_id=invoice.employer_id,
        issued_at=now,
        reason=reason.strip(),
        subtotal_pence=subtotal,
        vat_pence=vat,
        total_pence=subtotal + vat,
        # Stripe must learn of it, whatever is paid: it lowers what Stripe asks for, and a
        # credit beyond that is recorded there as given back outside Stripe.
        stripe_pending=invoice.gateway_state is not GatewayState.LOCAL,
    )
    db.session.add(note)
    for line in lines:
        db.session.add(
            CreditNoteLine(
                credit_note=note,
                invoice_line_id=line.id,
                description=line.description,
                amount_pence=line.amount_pence,
            )
        )
    if settle(invoice, now):
        queue_paid(invoice)
    queue_message(
        "credit_note_issued",
        billing_emails(invoice.employer),
        f"Credit note {note.number} against invoice {invoice.number}",
        note=note,
        invoice=invoice,
        total=format_pence(note.total_pence),
    )
    return note


def withdrawn_before_first_session(nqsw: NQSW) -> bool:
    """Say whether an NQSW left before any session they were booked on began."""
    if nqsw.withdrawn_at is None:
        return False
    attended_one = db.session.scalar(
        select(Booking.id)
        .join(Session, Booking.session_id == Session.id)
        .where(
            Booking.nqsw_id == nqsw.id,
            Session.starts_at < nqsw.withdrawn_at,
            or_(
                Booking.status == BookingStatus.BOOKED,
                and_(Booking.cancelled_at.is_not(None), Booking.cancelled_at >= Session.starts_at),
            ),
        )
        .limit(1)
    )
    return attended_one is None


def _withdrawals_to_credit(programme_id: int) -> list[tuple[Invoice, list[int]]]:
    if not current_app.config.get("INVOICE_CREDIT_WITHDRAWN_BEFORE_FIRST_SESSION", True):
        return []
    candidates = db.session.execute(
        select(InvoiceLine.invoice_id, InvoiceLine.id)
        .join(BilledEnrolment, BilledEnrolment.invoice_line_id == InvoiceLine.id)
        .join(NQSW, NQSW.id == InvoiceLine.nqsw_id)
        .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
        .where(
            BilledEnrolment.programme_id == programme_id,
            NQSW.withdrawn_at.is_not(None),
            Invoice.status != InvoiceStatus.VOID,
            ~exists().where(
                CreditNoteLine.invoice_line_id == InvoiceLine.id, CreditNoteLine.voided.is_(False)
            ),
        )
        .order_by(InvoiceLine.invoice_id, InvoiceLine.id)
    ).all()
    by_invoice: dict[int, list[int]] = {}
    for invoice_id, line_id in candidates:
        line = db.session.get_one(InvoiceLine, line_id)
        if withdrawn_before_first_session(line.nqsw):
            by_invoice.setdefault(invoice_id, []).append(line_id)
    return [(db.session.get_one(Invoice, i), ids) for i, ids in by_invoice.items()]


def credit_withdrawals(programme_id: int, *, now: datetime | None = None) -> list[int]:
    """Credit invoiced NQSWs who withdrew before their first session, if the policy says so."""
    now = now or utcnow()
    issued: list[int] = []
    for invoice, line_ids in _withdrawals_to_credit(programme_id):
        invoice_id = invoice.id
        try:
            note = credit_invoice(
                invoice, line_ids, "NQSW withdrawn before their first session", now=now
            )
        except (BookingError, IntegrityError) as error:
            db.session.rollback()
            log.warning("invoice %s not credited: %s", invoice_id, type(error).__name__)
            continue
        issued.append(note.id)
    return issued


# Money in and out --------------------------------------------------------------------


def _check_reference(existing: Sequence[Payment] | Sequence[Refund], reference: str) -> None:
    wanted = reference.strip().casefold()
    if any(item.reference.strip().casefold() == wanted for item in existing):
        raise InvalidInput(
            f"A transfer with reference {reference.strip()} is already recorded on this invoice.",
            field="reference",
        )


def record_payment(
    invoice: Invoice,
    *,
    amount_pence: int,
    reference: str,
    paid_on: date,
    by: User | None = None,
    now: datetime | None = None,
    overpayment: bool = False,
) -> Payment:
    """Record a bank transfer received; more than is owed only as a declared overpayment."""
    now = now or utcnow()
    if amount_pence <= 0:
        raise InvalidInput("Enter an amount more than £0.", field="amount")
    if not reference.strip():
        raise InvalidInput("Enter the bank transfer's reference.", field="reference")
    if paid_on > london_today(now):
        raise InvalidInput("The payment date cannot be in the future.", field="paid_on")
    lock(invoice)
    if invoice.status is InvoiceStatus.VOID:
        raise InvoiceClosed(f"Invoice {invoice.number} is void.")
    if not overpayment and amount_pence > invoice.owed_pence:
        owed = format_pence(invoice.owed_pence)
        raise InvalidInput(
            f"That is more than the {owed} still owed. If the employer really paid more, "
            "record it as an overpayment.",
            field="amount",
        )
    _check_reference(invoice.payments, reference)
    before = _money(invoice)
    payment = Payment(
        invoice=invoice,
        amount_pence=amount_pence,
        method=PaymentMethod.BANK_TRANSFER,
        reference=reference.strip(),
        paid_on=paid_on,
        recorded_at=now,
        recorded_by=by,
        stripe_pending=invoice.gateway_state is not GatewayState.LOCAL,
    )
    db.session.add(payment)
    if settle(invoice, now):
        queue_paid(invoice)
    audit(
        "invoice.payment",
        invoice,
        actor=by,
        before=before,
        after={**_money(invoice), "payment_id": payment.id, "amount_pence": amount_pence},
        employer_id=invoice.employer_id,
        at=now,
    )
    db.session.commit()
    after_change(invoice)
    return payment


def stripe_refundable(invoice: Invoice) -> list[tuple[str, int]]:
    """Return (payment intent, pence still refundable) for money Stripe took on the invoice."""
    left: dict[str, int] = {}
    for payment in invoice.payments:
        if payment.method is PaymentMethod.STRIPE and payment.stripe_payment_intent_id:
            intent = payment.stripe_payment_intent_id
            left[intent] = left.get(intent, 0) + payment.amount_pence
    for refund in invoice.live_refunds:
        if refund.stripe_payment_intent_id in left:
            left[refund.stripe_payment_intent_id] -= refund.amount_pence
    return [(intent, pence) for intent, pence in left.items() if pence > 0]


def record_refund(
    invoice: Invoice,
    *,
    amount_pence: int,
    through_stripe: bool,
    reference: str = "",
    refunded_on: date | None = None,
    by: User | None = None,
    now: datetime | None = None,
) -> Refund:
    """Give back an overpayment: through Stripe to the payer's card, or by bank transfer."""
    now = now or utcnow()
    refunded_on = refunded_on or london_today(now)
    if amount_pence <= 0:
        raise InvalidInput("Enter an amount more than £0.", field="amount")
    if not through_stripe and not reference.strip():
        raise InvalidInput("Enter the refund transfer's reference.", field="reference")
    if refunded_on > london_today(now):
        raise InvalidInput("The refund date cannot be in the future.", field="refunded_on")
    lock(invoice)
    due = invoice.overpaid_pence
    if due == 0:
        raise InvoiceClosed(f"Nothing is due back on invoice {invoice.number}.")
    if amount_pence > due:
        raise InvalidInput(f"That is more than the {format_pence(due)} due back.", field="amount")
    intent = None
    if through_stripe:
        refundable = stripe_refundable(invoice)
        fits = [i for i, pence in refundable if pence >= amount_pence]
        if not fits:
            most = max((pence for _, pence in refundable), default=0)
            raise InvalidInput(
                f"Stripe can refund at most {format_pence(most)} of one payment on this "
                "invoice; refund the rest by bank transfer.",
                field="amount",
            )
        intent = fits[0]
        reference = f"Stripe refund of {intent}"
    else:
        _check_reference(invoice.live_refunds, reference)
    before = _money(invoice)
    refund = Refund(
        invoice=invoice,
        amount_pence=amount_pence,
        method=PaymentMethod.STRIPE if through_stripe else PaymentMethod.BANK_TRANSFER,
        reference=reference.strip(),
        refunded_on=refunded_on,
        recorded_at=now,
        recorded_by=by,
        stripe_payment_intent_id=intent,
        stripe_pending=through_stripe,
    )
    db.session.add(refund)
    settle(invoice, now)
    audit(
        "invoice.refund",
        invoice,
        actor=by,
        before=before,
        after={**_money(invoice), "refund_id": refund.id, "amount_pence": amount_pence},
        employer_id=invoice.employer_id,
        at=now,
    )
    db.session.commit()
    if through_stripe:
        after_change(invoice)
    return refund


def carry_forward(invoice: Invoice, *, by: User | None = None, now: datetime | None = None) -> int:
    """Keep an overpayment as credit for the employer's next invoice; return pence applied now."""
    now = now or utcnow()
    lock(invoice)
    if invoice.status is not InvoiceStatus.OVERPAID:
        raise InvoiceClosed(f"Nothing is due back on invoice {invoice.number}.")
    if invoice.carry_forward:
        raise InvoiceClosed(f"Invoice {invoice.number}'s overpayment is already carried forward.")
    invoice.carry_forward = True
    audit(
        "invoice.carry_forward",
        invoice,
        actor=by,
        before={"carry_forward": False},
        after={"carry_forward": True, "overpaid_pence": invoice.overpaid_pence},
        employer_id=invoice.employer_id,
        at=now,
    )
    db.session.commit()
    return apply_account_credit(invoice.employer_id, by=by, now=now)


def apply_account_credit(
    employer_id: int, *, by: User | None = None, now: datetime | None = None
) -> int:
    """Move carried-forward overpayments onto the employer's open invoices, oldest first.

    Source invoices are locked before target invoices, always in that order, so two
    of these at once cannot deadlock.
    """
    now = now or utcnow()
    moved = 0
    sources = db.session.scalars(
        select(Invoice)
        .where(
            Invoice.employer_id == employer_id,
            Invoice.status == InvoiceStatus.OVERPAID,
            Invoice.carry_forward.is_(True),
        )
        .order_by(Invoice.id)
    ).all()
    touched: list[Invoice] = []
    for source in sources:
        lock(source)
        if source.status is not InvoiceStatus.OVERPAID or not source.carry_forward:
            continue
        targets = db.session.scalars(
            select(Invoice)
            .where(Invoice.employer_id == employer_id, Invoice.status.in_(OPEN))
            .order_by(Invoice.issued_at, Invoice.id)
        ).all()
        for target in targets:
            lock(target)
            amount = min(source.overpaid_pence, target.owed_pence)
            if amount <= 0:
                continue
            db.session.add(
                Refund(
                    invoice=source,
                    amount_pence=amount,
                    method=PaymentMethod.CARRIED_FORWARD,
                    reference=f"Carried to invoice {target.number}",
                    refunded_on=london_today(now),
                    recorded_at=now,
                    recorded_by=by,
                    carried_to=target,
                )
            )
            db.session.add(
                Payment(
                    invoice=target,
                    amount_pence=amount,
                    method=PaymentMethod.CARRIED_FORWARD,
                    reference=f"Credit from invoice {source.number}",
                    paid_on=london_today(now),
                    recorded_at=now,
                    recorded_by=by,
                    carried_from=source,
                    stripe_pending=target.gateway_state is not GatewayState.LOCAL,
                )
            )
            settle(source, now)
            if settle(target, now):
                queue_paid(target)
            audit(
                "invoice.carry",
                target,
                actor=by,
                after={"from_invoice_id": source.id, "amount_pence": amount, **_money(target)},
                employer_id=employer_id,
                at=now,
            )
            moved += amount
            touched.append(target)
            if source.status is not InvoiceStatus.OVERPAID:
                break
    db.session.commit()
    for target in touched:
        after_change(target)
    return moved


# Reminders ---------------------------------------------------------------------------


def send_reminders(*, now: datetime | None = None) -> int:
    """Remind employers of overdue invoices, at most once per reminder interval each."""
    now = now or utcnow()
    today = london_today(now)
    interval = timedelta(days=current_app.config.get("INVOICE_REMINDER_INTERVAL_DAYS", 7))
    due = db.session.scalars(
        select(Invoice)
        .where(Invoice.status == InvoiceStatus.ISSUED, Invoice.due_on < today)
        .order_by(Invoice.id)
    ).all()
    sent = 0
    for invoice in due:
        if invoice.owed_pence == 0:
            continue
        # The guarded update is the claim: a second run at the same moment finds it taken.
        claimed = db.session.execute(
            update(Invoice)
            .where(
                Invoice.id == invoice.id,
                Invoice.status == InvoiceStatus.ISSUED,
                or_(Invoice.reminder_sent_at.is_(None), Invoice.reminder_sent_at <= now - interval),
            )
            .values(reminder_sent_at=now)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            continue
        queue_message(
            "invoice_overdue",
            billing_emails(invoice.employer),
            f"Reminder: invoice {invoice.number} is overdue",
            invoice=invoice,
            balance=format_pence(invoice.owed_pence),
            days_overdue=(today - invoice.due_on).days,
        )
        sent += 1
    db.session.commit()
    return sent
