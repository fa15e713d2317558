"""Bringing Stripe up to date with our invoices, after each change is committed here.

Each step's result is committed as soon as Stripe confirms it, so a retry resumes at
the first unfinished step. Every call that creates something looks the object up by
its metadata first, and carries an idempotency key namespaced by deployment
(``asye-<deployment>-<what>``); after Stripe has answered a key with an error (which
it then replays for 24 hours) the next try adds ``-r<attempt>``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any, TypeVar

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from booking.extensions import db
from booking.models import Employer, london_today

from . import gateway
from .models import (
    GatewayState,
    Invoice,
    InvoiceStatus,
    InvoicingSetting,
    Payment,
    PaymentMethod,
    Refund,
    StripeCustomer,
    StripeKeyAttempt,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

DEPLOYMENT_SETTING = "deployment_id"


def deployment_id() -> str:
    """Return this deployment's id: the setting, else one made and stored at first use."""
    configured = current_app.config.get("STRIPE_DEPLOYMENT_ID")
    if configured:
        return str(configured)
    stored = db.session.get(InvoicingSetting, DEPLOYMENT_SETTING)
    if stored is not None:
        return stored.value
    try:
        with db.session.begin_nested():
            db.session.add(InvoicingSetting(key=DEPLOYMENT_SETTING, value=secrets.token_hex(6)))
    except IntegrityError:
        pass  # another process stored one first: use that
    # Committed before any key uses it: a rolled-back id would change every key.
    db.session.commit()
    return db.session.get_one(InvoicingSetting, DEPLOYMENT_SETTING).value


def idempotency_key(base: str) -> str:
    """Return the idempotency key for one Stripe step, fresh after Stripe answered an error."""
    attempt = db.session.scalar(
        select(StripeKeyAttempt.attempt).where(StripeKeyAttempt.key == base)
    )
    key = f"asye-{deployment_id()}-{base}"
    return f"{key}-r{attempt}" if attempt else key


def _next_attempt(base: str) -> None:
    row = db.session.scalar(select(StripeKeyAttempt).where(StripeKeyAttempt.key == base))
    if row is None:
        try:
            with db.session.begin_nested():
                db.session.add(StripeKeyAttempt(key=base, attempt=1))
        except IntegrityError:
            row = db.session.scalar(select(StripeKeyAttempt).where(StripeKeyAttempt.key == base))
    if row is not None:
        row.attempt += 1


def _step(base: str, call: Callable[..., T], **params: Any) -> T:
    try:
        return call(key=idempotency_key(base), **params)
    except gateway.GatewayError as error:
        error.key_base = base
        raise


def _record_gateway_error(invoice: Invoice, error: gateway.GatewayError) -> None:
    db.session.rollback()
    if error.answered and error.key_base:
        _next_attempt(error.key_base)
    invoice.gateway_state = GatewayState.PENDING
    invoice.gateway_error = error.message[:500]
    db.session.commit()


def _stripe_customer_id(employer: Employer, deployment: str) -> str:
    found = db.session.scalar(
        select(StripeCustomer.customer_id).where(StripeCustomer.employer_id == employer.id)
    )
    if found:
        return found
    customer_id = gateway.find_customer(
        email=employer.billing_email, employer_id=employer.id, deployment=deployment
    ) or _step(
        f"customer-{employer.id}",
        gateway.create_customer,
        name=employer.billing_name or employer.name,
        email=employer.billing_email,
        employer_id=employer.id,
        deployment=deployment,
    )
    try:
        with db.session.begin_nested():
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
        deployment = deployment_id()
        if not invoice.stripe_finalized:
            if invoice.status is InvoiceStatus.ISSUED:
                _push_issued(invoice, deployment)
            else:
                # It never reached the customer and there is nothing to collect: drop the draft.
                if invoice.stripe_invoice_id is not None:
                    gateway.delete_draft(stripe_invoice_id=invoice.stripe_invoice_id)
                _nothing_pending(invoice)
        if invoice.stripe_finalized:
            _push_changes(invoice, deployment)
    except gateway.GatewayError as error:
        _record_gateway_error(invoice, error)
        raise
    invoice.gateway_state = GatewayState.SYNCED
    invoice.gateway_error = ""
    db.session.commit()


def _nothing_pending(invoice: Invoice) -> None:
    for note in invoice.credit_notes:
        note.stripe_pending = False
    for payment in invoice.payments:
        payment.stripe_pending = False
    db.session.commit()


def _sid(invoice: Invoice) -> str:
    assert invoice.stripe_invoice_id is not None
    return invoice.stripe_invoice_id


def _push_issued(invoice: Invoice, deployment: str) -> None:
    customer_id = _stripe_customer_id(invoice.employer, deployment)
    if invoice.stripe_invoice_id is None:
        found = gateway.find_invoice(
            customer_id=customer_id, invoice_id=invoice.id, deployment=deployment
        )
        invoice.stripe_invoice_id = (
            found.id
            if found
            else _step(
                f"invoice-{invoice.id}-create",
                gateway.create_invoice,
                customer_id=customer_id,
                days_until_due=max((invoice.due_on - london_today(invoice.issued_at)).days, 1),
                po_number=invoice.po_number,
                number=invoice.number,
                invoice_id=invoice.id,
                deployment=deployment,
            )
        )
        db.session.commit()
    items = [
        (f"line-{line.id}", line, line.amount_pence, line.description) for line in invoice.lines
    ]
    pending = [item for item in items if item[1].stripe_item_id is None]
    vat_missing = invoice.vat_pence and invoice.stripe_vat_item_id is None
    existing = gateway.invoice_items(_sid(invoice)) if pending or vat_missing else {}
    for line_key, line, amount, description in pending:
        line.stripe_item_id = existing.get(line_key) or _step(
            f"invoice-{line_key}",
            gateway.add_invoice_item,
            customer_id=customer_id,
            stripe_invoice_id=_sid(invoice),
            amount_pence=amount,
            description=description,
            line_key=line_key,
        )
        db.session.commit()
    if vat_missing:
        invoice.stripe_vat_item_id = existing.get(f"vat-{invoice.id}") or _step(
            f"invoice-{invoice.id}-vat",
            gateway.add_invoice_item,
            customer_id=customer_id,
            stripe_invoice_id=_sid(invoice),
            amount_pence=invoice.vat_pence,
            description=f"VAT at {invoice.vat_rate_basis_points / 100:g}%",
            line_key=f"vat-{invoice.id}",
        )
        db.session.commit()
    remote = gateway.retrieve_invoice(_sid(invoice))
    # Finalised already if our record of it was lost after Stripe did it.
    url = remote.hosted_invoice_url
    if remote.status == "draft":
        url = _step(
            f"invoice-{invoice.id}-finalize",
            gateway.finalize_invoice,
            stripe_invoice_id=_sid(invoice),
        )
    invoice.stripe_finalized = True
    invoice.hosted_invoice_url = url or invoice.hosted_invoice_url
    db.session.commit()
    _step(
        f"invoice-{invoice.id}-send",
        gateway.send_invoice,
        stripe_invoice_id=_sid(invoice),
    )


def _push_changes(invoice: Invoice, deployment: str) -> None:
    """Tell a finalised Stripe invoice what changed here: void, credits, money in and out."""
    sid = _sid(invoice)
    remote = gateway.retrieve_invoice(sid)
    if invoice.status is InvoiceStatus.VOID:
        if remote.status in {"open", "uncollectible"}:
            _step(
                f"invoice-{invoice.id}-void",
                gateway.void_invoice,
                stripe_invoice_id=sid,
            )
        _nothing_pending(invoice)
        return
    for note in invoice.credit_notes:
        if not note.stripe_pending:
            continue
        if note.voided_at is None and note.stripe_credit_note_id is None:
            found = gateway.find_credit_note(
                stripe_invoice_id=sid, credit_note_id=note.id, deployment=deployment
            )
            # What the credit takes off beyond what Stripe still asks for was already received.
            beyond = max(note.total_pence - remote.amount_remaining, 0)
            note.stripe_credit_note_id = found or _step(
                f"credit-note-{note.id}",
                gateway.create_credit_note,
                stripe_invoice_id=sid,
                lines=[(line.description, line.amount_pence) for line in note.lines]
                + ([("VAT", note.vat_pence)] if note.vat_pence else []),
                memo=f"Credit note {note.number}: {note.reason}"[:500],
                out_of_band_pence=beyond,
                credit_note_id=note.id,
                deployment=deployment,
            )
            remote = gateway.retrieve_invoice(sid)
        note.stripe_pending = False
        db.session.commit()
    for payment in invoice.payments:
        if payment.stripe_pending and payment.method is not PaymentMethod.STRIPE:
            remote = _report_payment(invoice, payment, remote, deployment) or remote
            payment.stripe_pending = False
            db.session.commit()
    for refund in invoice.refunds:
        if refund.stripe_pending and refund.failed_at is None:
            _push_refund(refund, deployment)
            refund.stripe_pending = False
            db.session.commit()
    if invoice.status is InvoiceStatus.UNCOLLECTIBLE and remote.status == "open":
        _step(
            f"invoice-{invoice.id}-uncollectible",
            gateway.mark_uncollectible,
            stripe_invoice_id=sid,
        )


def _report_payment(
    invoice: Invoice, payment: Payment, remote: gateway.RemoteInvoice, deployment: str
) -> gateway.RemoteInvoice | None:
    """Report money received outside Stripe, so Stripe asks only for what is still owed."""
    sid = _sid(invoice)
    attached = {p.payment_record_id for p in gateway.invoice_payments(sid) if p.payment_record_id}
    if payment.stripe_payment_record_id in attached:
        return None
    if payment.stripe_payment_record_id is None:
        found = gateway.find_payment_record(
            stripe_invoice_id=sid, payment_id=payment.id, deployment=deployment
        )
        if found:
            payment.stripe_payment_record_id = found
            return None
        # Only what settles the invoice: an excess stays here as a refund due or a credit,
        # never in the customer's Stripe balance.
        amount = min(payment.amount_pence, remote.amount_remaining)
        if amount <= 0 or remote.status not in {"open", "uncollectible"}:
            return None
        paid_at = int(datetime.combine(payment.paid_on, time(12), tzinfo=UTC).timestamp())
        payment.stripe_payment_record_id = _step(
            f"payment-{payment.id}-record",
            gateway.report_payment,
            customer_id=_stripe_customer_id(invoice.employer, deployment),
            amount_pence=amount,
            paid_at=paid_at,
            reference=payment.reference[:200],
            label=payment.method.label.capitalize(),
            payment_id=payment.id,
            deployment=deployment,
        )
        db.session.commit()
    record_id = payment.stripe_payment_record_id
    assert record_id is not None
    return _step(
        f"payment-{payment.id}-attach",
        gateway.attach_payment_record,
        stripe_invoice_id=sid,
        payment_record_id=record_id,
    )


def _push_refund(refund: Refund, deployment: str) -> None:
    if refund.stripe_refund_id is not None or refund.stripe_payment_intent_id is None:
        return
    intent = refund.stripe_payment_intent_id
    for remote in gateway.refunds_for(intent):
        if remote.metadata.get("asye_refund_id") == str(refund.id) and (
            remote.metadata.get("asye_deployment") == deployment
        ):
            refund.stripe_refund_id = remote.id
            return
    made = _step(
        f"refund-{refund.id}",
        gateway.create_refund,
        payment_intent_id=intent,
        amount_pence=refund.amount_pence,
        refund_id=refund.id,
        deployment=deployment,
    )
    refund.stripe_refund_id = made.id


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


def after_change(invoice: Invoice) -> None:
    """Hand a change we committed to Stripe; a failure is kept for ``sync_stripe``."""
    if invoice.gateway_state is GatewayState.LOCAL:
        return
    invoice.gateway_state = GatewayState.PENDING
    db.session.commit()
    try:
        push_to_stripe(invoice)
    except gateway.GatewayError:
        log.warning("invoice %s left pending for Stripe", invoice.id)
