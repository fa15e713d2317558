"""Invoicing services: billing runs, issue, void, credit, payments, reminders, ledger.

Each invoice is issued in its own transaction, taking its number from a counter row
under a lock, so two billing runs at once neither share a number nor bill an NQSW
twice (a unique claim per NQSW and programme backs that up). Stripe is called only
after our own commit; a Stripe failure leaves the invoice ``PENDING`` and
``sync_stripe`` finishes the job later with the same idempotency keys.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from flask import current_app
from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

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
    StripeCustomer,
    WebhookEvent,
)

log = logging.getLogger(__name__)


class InvoiceError(BookingError):
    """A request the invoicing rules refuse."""


class PoNumberRequired(InvoiceError):
    """The employer must give a purchase order number before being invoiced."""


class InvoiceClosed(InvoiceError):
    """The invoice is paid or void, so this cannot be done to it."""


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


def vat_for(subtotal_pence: int, rate_basis_points: int) -> int:
    """Return VAT on a subtotal, rounded half up to the penny, in integers only."""
    return (subtotal_pence * rate_basis_points + 5000) // 10000


def vat_label(rate_basis_points: int) -> str:
    """Return a VAT rate for people, e.g. 2000 -> '20%'."""
    whole, rest = divmod(rate_basis_points, 100)
    return f"{whole}%" if rest == 0 else f"{whole}.{rest:02d}".rstrip("0") + "%"


# Numbering -------------------------------------------------------------------------


def _ensure_counter(key: str) -> None:
    if db.session.scalar(select(InvoiceCounter.id).where(InvoiceCounter.key == key)) is not None:
        return
    try:
        with db.session.begin_nested():
            db.session.add(InvoiceCounter(key=key, last_value=0))
    except IntegrityError:
        pass  # another run created it first; its row is as good as ours


def _take_number(key: str) -> str:
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


def _credit_key(prefix: str, today: date) -> str:
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
    log.info("employer %s PO number set by user %s", employer.id, by.id if by else None)


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


# Billing runs ----------------------------------------------------------------------


@dataclass
class BillingReport:
    invoice_ids: list[int] = field(default_factory=list)
    credit_note_ids: list[int] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    stripe_errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Return one line for people."""
        parts = [
            f"{len(self.invoice_ids)} invoice(s) issued",
            f"{len(self.credit_note_ids)} credit note(s) issued",
        ]
        if self.skipped:
            parts.append(f"{len(self.skipped)} employer(s) skipped: " + "; ".join(self.skipped))
        if self.stripe_errors:
            parts.append(f"{len(self.stripe_errors)} not yet sent to Stripe (retry later)")
        return ", ".join(parts) + "."


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


def _billing_emails(employer: Employer) -> list[str]:
    if employer.billing_email:
        return [employer.billing_email]
    return [c.email for c in employer.contacts if c.active and c.role is Role.EMPLOYER_CONTACT]


def issue_invoice(
    employer: Employer, programme: Programme, *, now: datetime | None = None
) -> Invoice | None:
    """Invoice an Option 2 employer for its NQSWs not yet billed this programme year."""
    if employer.option is not EmployerOption.TRAINING_ONLY:
        return None
    now = now or utcnow()
    today = london_today(now)
    number = _take_number(_invoice_key(programme, today))
    nqsws = _unbilled(employer.id, programme.id)
    if not nqsws:
        db.session.rollback()  # gives the number back: nothing was issued
        return None
    if employer.po_required and not employer.po_number.strip():
        db.session.rollback()
        raise PoNumberRequired(f"{employer.name} needs a purchase order number before invoicing.")
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
        _billing_emails(employer),
        f"Invoice {number} from {programme.host_name}",
        invoice=invoice,
        programme=programme,
        total=format_pence(invoice.total_pence),
    )
    db.session.commit()
    log.info("invoice %s issued to employer %s", invoice.id, employer.id)
    return invoice


def run_billing(programme: Programme, *, now: datetime | None = None) -> BillingReport:
    """Invoice every Option 2 employer's new NQSWs and credit withdrawals the policy allows."""
    report = BillingReport()
    employer_ids = db.session.scalars(
        select(Employer.id)
        .where(Employer.option == EmployerOption.TRAINING_ONLY)
        .where(exists().where(NQSW.employer_id == Employer.id, NQSW.programme_id == programme.id))
        .order_by(Employer.id)
    ).all()
    programme_id = programme.id
    for employer_id in employer_ids:
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
    for invoice_id in report.invoice_ids:
        try:
            push_to_stripe(db.session.get_one(Invoice, invoice_id))
        except gateway.GatewayError as error:
            report.stripe_errors.append(error.message)
    return report


# Stripe ----------------------------------------------------------------------------


def _record_gateway_error(invoice: Invoice, error: gateway.GatewayError) -> None:
    db.session.rollback()
    invoice.gateway_state = GatewayState.PENDING
    invoice.gateway_error = error.message[:500]
    db.session.commit()


def _stripe_customer_id(employer: Employer) -> str:
    found = db.session.scalar(
        select(StripeCustomer.customer_id).where(StripeCustomer.employer_id == employer.id)
    )
    if found:
        return found
    customer_id = gateway.create_customer(
        key=f"asye-customer-{employer.id}",
        name=employer.billing_name or employer.name,
        email=employer.billing_email,
        employer_id=employer.id,
    )
    try:
        db.session.add(StripeCustomer(employer_id=employer.id, customer_id=customer_id))
        db.session.commit()
    except IntegrityError:
        # A push running at the same time saved it first; the idempotency key made it the same.
        db.session.rollback()
    return customer_id


def push_to_stripe(invoice: Invoice) -> None:
    """Bring Stripe up to date with an invoice, resuming wherever a failed try stopped."""
    if invoice.gateway_state is not GatewayState.PENDING or not gateway.enabled():
        return
    try:
        if invoice.status is InvoiceStatus.ISSUED:
            _push_issued(invoice)
            _push_credit_notes(invoice)
        elif not invoice.stripe_finalized:
            # It never reached the customer: drop the draft; there is nothing to collect.
            if invoice.stripe_invoice_id is not None:
                gateway.delete_draft(stripe_invoice_id=invoice.stripe_invoice_id)
            for note in invoice.credit_notes:
                note.stripe_pending = False
        elif invoice.status is InvoiceStatus.VOID:
            gateway.void_invoice(
                key=f"asye-invoice-{invoice.id}-void", stripe_invoice_id=_sid(invoice)
            )
        else:
            _push_credit_notes(invoice)
            if any(p.method is PaymentMethod.BANK_TRANSFER for p in invoice.payments):
                gateway.mark_paid_out_of_band(
                    key=f"asye-invoice-{invoice.id}-paid", stripe_invoice_id=_sid(invoice)
                )
    except gateway.GatewayError as error:
        _record_gateway_error(invoice, error)
        raise
    invoice.gateway_state = GatewayState.SYNCED
    invoice.gateway_error = ""
    db.session.commit()


def _push_credit_notes(invoice: Invoice) -> None:
    for note in invoice.credit_notes:
        if note.stripe_pending:
            note.stripe_credit_note_id = gateway.create_credit_note(
                key=f"asye-credit-note-{note.id}",
                stripe_invoice_id=_sid(invoice),
                lines=[(line.description, line.amount_pence) for line in note.lines]
                + ([("VAT", note.vat_pence)] if note.vat_pence else []),
                memo=f"Credit note {note.number}: {note.reason}"[:500],
            )
            note.stripe_pending = False
            db.session.commit()


def _sid(invoice: Invoice) -> str:
    assert invoice.stripe_invoice_id is not None
    return invoice.stripe_invoice_id


def _push_issued(invoice: Invoice) -> None:
    # Each step is saved as soon as Stripe confirms it, so a retry skips what is done.
    customer_id = _stripe_customer_id(invoice.employer)
    if invoice.stripe_invoice_id is None:
        invoice.stripe_invoice_id = gateway.create_invoice(
            key=f"asye-invoice-{invoice.id}-create",
            customer_id=customer_id,
            days_until_due=max((invoice.due_on - london_today(invoice.issued_at)).days, 1),
            po_number=invoice.po_number,
            number=invoice.number,
            invoice_id=invoice.id,
        )
        db.session.commit()
    for line in invoice.lines:
        if line.stripe_item_id is None:
            line.stripe_item_id = gateway.add_invoice_item(
                key=f"asye-invoice-line-{line.id}",
                customer_id=customer_id,
                stripe_invoice_id=_sid(invoice),
                amount_pence=line.amount_pence,
                description=line.description,
            )
            db.session.commit()
    if invoice.vat_pence and invoice.stripe_vat_item_id is None:
        invoice.stripe_vat_item_id = gateway.add_invoice_item(
            key=f"asye-invoice-{invoice.id}-vat",
            customer_id=customer_id,
            stripe_invoice_id=_sid(invoice),
            amount_pence=invoice.vat_pence,
            description=f"VAT at {vat_label(invoice.vat_rate_basis_points)}",
        )
        db.session.commit()
    if not invoice.stripe_finalized:
        url = gateway.finalize_invoice(
            key=f"asye-invoice-{invoice.id}-finalize", stripe_invoice_id=_sid(invoice)
        )
        invoice.stripe_finalized = True
        invoice.hosted_invoice_url = url or invoice.hosted_invoice_url
        db.session.commit()
    gateway.send_invoice(key=f"asye-invoice-{invoice.id}-send", stripe_invoice_id=_sid(invoice))


@dataclass
class SyncReport:
    synced: int = 0
    failed: int = 0


def sync_stripe() -> SyncReport:
    """Retry every invoice Stripe has not caught up with."""
    report = SyncReport()
    if not gateway.enabled():
        return report
    pending = db.session.scalars(
        select(Invoice.id).where(Invoice.gateway_state == GatewayState.PENDING).order_by(Invoice.id)
    ).all()
    for invoice_id in pending:
        try:
            push_to_stripe(db.session.get_one(Invoice, invoice_id))
        except gateway.GatewayError:
            report.failed += 1
        else:
            report.synced += 1
    return report


def _after_change(invoice: Invoice) -> None:
    """Hand a change we committed to Stripe; a failure is kept for ``sync_stripe``."""
    if invoice.gateway_state is GatewayState.LOCAL:
        return
    invoice.gateway_state = GatewayState.PENDING
    db.session.commit()
    try:
        push_to_stripe(invoice)
    except gateway.GatewayError:
        log.warning("invoice %s left pending for Stripe", invoice.id)


# Void, credit, pay -------------------------------------------------------------------


def void_invoice(invoice: Invoice, reason: str, *, by: User | None = None) -> None:
    """Void an unpaid invoice; its NQSWs become billable again."""
    if invoice.status is not InvoiceStatus.ISSUED:
        raise InvoiceClosed(f"Invoice {invoice.number} is {invoice.state_label.lower()}.")
    if invoice.payments:
        raise InvoiceClosed(
            f"Invoice {invoice.number} has payments; issue a credit note instead of voiding it."
        )
    if invoice.credit_notes:
        raise InvoiceClosed(f"Invoice {invoice.number} has credit notes; credit the rest instead.")
    if not reason.strip():
        raise InvalidInput("Say why the invoice is void.", field="reason")
    _void(invoice, reason.strip())
    db.session.commit()
    log.info("invoice %s voided by user %s", invoice.id, by.id if by else None)
    _after_change(invoice)


def _void(invoice: Invoice, reason: str) -> None:
    invoice.status = InvoiceStatus.VOID
    invoice.voided_at = utcnow()
    invoice.void_reason = reason
    line_ids = [line.id for line in invoice.lines]
    for claim in db.session.scalars(
        select(BilledEnrolment).where(BilledEnrolment.invoice_line_id.in_(line_ids))
    ):
        db.session.delete(claim)


def _settle_if_cleared(invoice: Invoice, now: datetime) -> bool:
    db.session.flush()
    db.session.refresh(invoice)
    if invoice.status is InvoiceStatus.ISSUED and invoice.balance_pence == 0:
        invoice.status = InvoiceStatus.PAID
        invoice.paid_at = now
        return True
    return False


def credit_invoice(
    invoice: Invoice,
    line_ids: Sequence[int],
    reason: str,
    *,
    by: User | None = None,
    now: datetime | None = None,
) -> CreditNote:
    """Issue a numbered credit note for some of an invoice's lines."""
    note = _credit(invoice, line_ids, reason, now=now or utcnow())
    db.session.commit()
    log.info("credit note %s issued by user %s", note.id, by.id if by else None)
    _after_change(invoice)
    return note


def _credit(invoice: Invoice, line_ids: Sequence[int], reason: str, *, now: datetime) -> CreditNote:
    if invoice.status is InvoiceStatus.VOID:
        raise InvoiceClosed(f"Invoice {invoice.number} is void.")
    if not reason.strip():
        raise InvalidInput("Say why the invoice is credited.", field="reason")
    wanted = set(line_ids)
    lines = [line for line in invoice.lines if line.id in wanted]
    if not lines or len(lines) != len(wanted):
        raise InvalidInput("Choose at least one line of this invoice to credit.", field="lines")
    credited = set(
        db.session.scalars(
            select(CreditNoteLine.invoice_line_id).where(CreditNoteLine.invoice_line_id.in_(wanted))
        )
    )
    if credited:
        raise InvoiceError("A line you chose has already been credited.", field="lines")
    subtotal = sum(line.amount_pence for line in lines)
    already = invoice.credited_pence
    # Rounding VAT per note could otherwise credit a penny more than was invoiced.
    vat = min(
        vat_for(subtotal, invoice.vat_rate_basis_points), invoice.total_pence - already - subtotal
    )
    vat = max(vat, 0)
    # Stripe collects an unpaid invoice, so it must learn of the credit; a paid one is refunded
    # outside Stripe.
    collected_by_stripe = (
        invoice.gateway_state is not GatewayState.LOCAL and invoice.status is InvoiceStatus.ISSUED
    )
    note = CreditNote(
        number=_take_number(_credit_key(invoice.programme.invoice_prefix, london_today(now))),
        invoice=invoice,
        employer_id=invoice.employer_id,
        issued_at=now,
        reason=reason.strip(),
        subtotal_pence=subtotal,
        vat_pence=vat,
        total_pence=subtotal + vat,
        stripe_pending=collected_by_stripe,
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
    _settle_if_cleared(invoice, now)
    queue_message(
        "credit_note_issued",
        _billing_emails(invoice.employer),
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


def credit_withdrawals(programme_id: int, *, now: datetime | None = None) -> list[int]:
    """Credit invoiced NQSWs who withdrew before their first session, if the policy says so."""
    if not current_app.config.get("INVOICE_CREDIT_WITHDRAWN_BEFORE_FIRST_SESSION", True):
        return []
    now = now or utcnow()
    candidates = db.session.execute(
        select(InvoiceLine.invoice_id, InvoiceLine.id)
        .join(BilledEnrolment, BilledEnrolment.invoice_line_id == InvoiceLine.id)
        .join(NQSW, NQSW.id == InvoiceLine.nqsw_id)
        .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
        .where(
            BilledEnrolment.programme_id == programme_id,
            NQSW.withdrawn_at.is_not(None),
            Invoice.status != InvoiceStatus.VOID,
            ~exists().where(CreditNoteLine.invoice_line_id == InvoiceLine.id),
        )
        .order_by(InvoiceLine.invoice_id, InvoiceLine.id)
    ).all()
    by_invoice: dict[int, list[int]] = {}
    for invoice_id, line_id in candidates:
        line = db.session.get_one(InvoiceLine, line_id)
        if withdrawn_before_first_session(line.nqsw):
            by_invoice.setdefault(invoice_id, []).append(line_id)
    issued: list[int] = []
    for invoice_id, line_ids in by_invoice.items():
        invoice = db.session.get_one(Invoice, invoice_id)
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


def record_payment(
    invoice: Invoice,
    *,
    amount_pence: int,
    reference: str,
    paid_on: date,
    by: User | None = None,
    now: datetime | None = None,
) -> Payment:
    """Record a bank transfer received against an invoice."""
    now = now or utcnow()
    if invoice.status is not InvoiceStatus.ISSUED:
        raise InvoiceClosed(f"Invoice {invoice.number} is {invoice.state_label.lower()}.")
    if amount_pence <= 0:
        raise InvalidInput("Enter an amount more than £0.", field="amount")
    if amount_pence > invoice.balance_pence:
        raise InvalidInput(
            f"That is more than the {format_pence(invoice.balance_pence)} still owed.",
            field="amount",
        )
    if not reference.strip():
        raise InvalidInput("Enter the bank transfer's reference.", field="reference")
    if paid_on > london_today(now):
        raise InvalidInput("The payment date cannot be in the future.", field="paid_on")
    payment = Payment(
        invoice=invoice,
        amount_pence=amount_pence,
        method=PaymentMethod.BANK_TRANSFER,
        reference=reference.strip(),
        paid_on=paid_on,
        recorded_at=now,
        recorded_by=by,
    )
    db.session.add(payment)
    if _settle_if_cleared(invoice, now):
        _queue_paid(invoice)
    db.session.commit()
    if invoice.status is InvoiceStatus.PAID:
        _after_change(invoice)
    return payment


def _queue_paid(invoice: Invoice) -> None:
    queue_message(
        "invoice_paid",
        _billing_emails(invoice.employer),
        f"Invoice {invoice.number} is paid: thank you",
        invoice=invoice,
        total=format_pence(invoice.total_pence),
    )


# Webhooks ------------------------------------------------------------------------------


def apply_stripe_event(event: gateway.StripeEvent, *, now: datetime | None = None) -> str:
    """Apply a verified Stripe event once, whatever order or how often it arrives."""
    now = now or utcnow()
    stripe_invoice_id = str(event.invoice.get("id", ""))
    record = WebhookEvent(
        event_id=event.id, type=event.type, stripe_invoice_id=stripe_invoice_id, received_at=now
    )
    try:
        db.session.add(record)
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return "duplicate"
    invoice = _invoice_for_event(event.invoice)
    if invoice is None:
        record.outcome = "no matching invoice"
    else:
        record.outcome = _apply(invoice, event, now)
    db.session.commit()
    return record.outcome


def _invoice_for_event(obj: dict[str, object]) -> Invoice | None:
    if not obj.get("id"):
        return None
    return db.session.scalar(select(Invoice).where(Invoice.stripe_invoice_id == str(obj["id"])))


def _apply(invoice: Invoice, event: gateway.StripeEvent, now: datetime) -> str:
    # Paid and void are final: an older event arriving late cannot undo them.
    obj = event.invoice
    if event.type == "invoice.finalized":
        if obj.get("hosted_invoice_url") and not invoice.hosted_invoice_url:
            invoice.hosted_invoice_url = str(obj["hosted_invoice_url"])
        invoice.stripe_finalized = True
        return "finalised"
    if event.type == "invoice.payment_failed":
        if invoice.status is not InvoiceStatus.ISSUED:
            return f"ignored: invoice already {invoice.status.value}"
        invoice.payment_failed_at = now
        return "payment failure noted"
    if event.type == "invoice.voided":
        if invoice.status is not InvoiceStatus.ISSUED:
            return f"ignored: invoice already {invoice.status.value}"
        _void(invoice, "Voided in Stripe")
        return "voided"
    if event.type == "invoice.paid":
        if invoice.status is not InvoiceStatus.ISSUED:
            return f"ignored: invoice already {invoice.status.value}"
        amount = int(obj.get("amount_paid") or 0)
        if amount > 0 and not obj.get("paid_out_of_band"):
            if amount > invoice.balance_pence:
                log.error("stripe paid %s more than owed on invoice %s", amount, invoice.id)
            db.session.add(
                Payment(
                    invoice=invoice,
                    amount_pence=amount,
                    method=PaymentMethod.STRIPE,
                    reference=str(obj["id"]),
                    paid_on=london_today(now),
                    recorded_at=now,
                )
            )
        db.session.flush()
        db.session.refresh(invoice)
        invoice.status = InvoiceStatus.PAID
        invoice.paid_at = now
        _queue_paid(invoice)
        return "paid"
    return "ignored: event type not handled"


# Reminders, reports and export ---------------------------------------------------------


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
        if invoice.balance_pence == 0:
            continue
        # The guarded update is the claim: a second run at the same moment finds it taken.
        claimed = db.session.execute(
            update(Invoice)
            .where(
                Invoice.id == invoice.id,
                or_(Invoice.reminder_sent_at.is_(None), Invoice.reminder_sent_at <= now - interval),
            )
            .values(reminder_sent_at=now)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            continue
        queue_message(
            "invoice_overdue",
            _billing_emails(invoice.employer),
            f"Reminder: invoice {invoice.number} is overdue",
            invoice=invoice,
            balance=format_pence(invoice.balance_pence),
            days_overdue=(today - invoice.due_on).days,
        )
        sent += 1
    db.session.commit()
    return sent


@dataclass(frozen=True)
class LedgerRow:
    employer_id: int
    employer_name: str
    invoiced_pence: int
    credited_pence: int
    paid_pence: int

    @property
    def balance_pence(self) -> int:
        return self.invoiced_pence - self.credited_pence - self.paid_pence


def ledger() -> list[LedgerRow]:
    """Return per employer: invoiced (not void), credited, paid and the balance."""
    live = Invoice.status != InvoiceStatus.VOID
    invoiced = (
        select(Invoice.employer_id, func.sum(Invoice.total_pence).label("amount"))
        .where(live)
        .group_by(Invoice.employer_id)
        .subquery()
    )
    credited = (
        select(CreditNote.employer_id, func.sum(CreditNote.total_pence).label("amount"))
        .group_by(CreditNote.employer_id)
        .subquery()
    )
    paid = (
        select(Invoice.employer_id, func.sum(Payment.amount_pence).label("amount"))
        .join(Invoice, Invoice.id == Payment.invoice_id)
        .group_by(Invoice.employer_id)
        .subquery()
    )
    rows = db.session.execute(
        select(
            Employer.id,
            Employer.name,
            func.coalesce(invoiced.c.amount, 0),
            func.coalesce(credited.c.amount, 0),
            func.coalesce(paid.c.amount, 0),
        )
        .join(invoiced, invoiced.c.employer_id == Employer.id)
        .outerjoin(credited, credited.c.employer_id == Employer.id)
        .outerjoin(paid, paid.c.employer_id == Employer.id)
        .order_by(Employer.name)
    ).all()
    return [LedgerRow(r[0], r[1], int(r[2]), int(r[3]), int(r[4])) for r in rows]


@dataclass(frozen=True)
class Overview:
    invoices: list[Invoice]
    outstanding_pence: int
    overdue_pence: int
    overdue_count: int


def invoices_for(employer_id: int | None = None, *, today: date | None = None) -> Overview:
    """Return invoices (one employer's, or all) with outstanding and overdue totals."""
    today = today or london_today()
    query = (
        select(Invoice)
        .options(
            selectinload(Invoice.payments),
            selectinload(Invoice.credit_notes),
            selectinload(Invoice.employer),
        )
        .order_by(Invoice.issued_at.desc(), Invoice.id.desc())
    )
    if employer_id is not None:
        query = query.where(Invoice.employer_id == employer_id)
    invoices = list(db.session.scalars(query))
    overdue = [i for i in invoices if i.is_overdue(today)]
    return Overview(
        invoices=invoices,
        outstanding_pence=sum(i.balance_pence for i in invoices),
        overdue_pence=sum(i.balance_pence for i in overdue),
        overdue_count=len(overdue),
    )


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
]


def export_csv() -> str:
    """Return every invoice and credit note as CSV rows for the finance system."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for invoice in db.session.scalars(
        select(Invoice)
        .options(selectinload(Invoice.credit_notes), selectinload(Invoice.payments))
        .order_by(Invoice.id)
    ):
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
                    "issued",
                ]
            )
    return out.getvalue()
