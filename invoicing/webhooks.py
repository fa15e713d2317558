"""Applying Stripe's events: once each, in any order, reconciled by amount.

Money is never taken from an event's totals. For payments we ask Stripe for the
invoice's InvoicePayments and record each paid one we do not have yet (keyed by its
id), so a part-payment is a part-payment, an excess is an overpayment, and a replayed
or reordered event adds nothing. Refunds are keyed by Stripe's refund id, credit
notes by Stripe's credit note id. What we learn from Stripe is fetched before the
transaction opens, so no lock is held while Stripe answers; inside the transaction
the event id is claimed (unique) and the invoice row is locked before anything is
applied.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from booking.audit.services import record as audit
from booking.extensions import db
from booking.models import LONDON, london_today, utcnow

from . import gateway
from .models import (
    CreditNote,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentMethod,
    Refund,
    WebhookEvent,
)
from .services import (
    _money,
    credit_key,
    format_pence,
    lock,
    queue_paid,
    settle,
    take_number,
    void,
    write_off,
)
from .stripe_sync import deployment_id

log = logging.getLogger(__name__)


@dataclass
class Facts:
    """What Stripe says now, fetched before the transaction for the event."""

    stripe_invoice_id: str = ""
    deployment: str = ""
    payments: list[gateway.RemoteInvoicePayment] = field(default_factory=list)
    # Our own PaymentRecords among them: payment record id -> our payment id.
    our_records: dict[str, int] = field(default_factory=dict)
    refunds: list[gateway.RemoteRefund] = field(default_factory=list)
    credit_note: gateway.RemoteCreditNote | None = None


def _gather(event: gateway.StripeEvent) -> Facts:
    obj = event.object
    facts = Facts(deployment=deployment_id())
    if event.type.startswith("invoice."):
        facts.stripe_invoice_id = str(obj["id"])
    if event.type in {"invoice.paid", "invoice_payment.paid"}:
        if event.type == "invoice_payment.paid":
            facts.stripe_invoice_id = gateway.invoice_payment_from(obj).invoice_id
        facts.payments = gateway.invoice_payments(facts.stripe_invoice_id)
        for payment in facts.payments:
            if payment.payment_type == "payment_record" and payment.payment_record_id:
                metadata = gateway.payment_record_metadata(payment.payment_record_id)
                ours = metadata.get("asye_payment_id", "")
                if metadata.get("asye_deployment") == facts.deployment and ours.isdigit():
                    facts.our_records[payment.payment_record_id] = int(ours)
    elif event.type == "charge.refunded":
        facts.refunds = gateway.refunds_for(str(obj["payment_intent"]))
    elif event.type.startswith("refund."):
        facts.refunds = [gateway.refund_from(obj)]
    elif event.type.startswith("credit_note."):
        facts.credit_note = gateway.credit_note_from(obj)
        facts.stripe_invoice_id = facts.credit_note.invoice_id
        facts.refunds = [
            gateway.RemoteRefund(
                id=refund_id,
                amount=amount,
                status="succeeded",
                payment_intent_id="",
                created=facts.credit_note.created,
                metadata={},
            )
            for refund_id, amount in facts.credit_note.refunds
        ]
    return facts


def apply_stripe_event(event: gateway.StripeEvent, *, now: datetime | None = None) -> str:
    """Apply a verified Stripe event once, whatever order or how often it arrives.

    Raises ``GatewayError`` if Stripe cannot be asked about it now (the endpoint then
    answers 503 and Stripe delivers the event again later).
    """
    now = now or utcnow()
    seen = db.session.scalar(select(WebhookEvent.id).where(WebhookEvent.event_id == event.id))
    db.session.rollback()  # no transaction (on SQLite, no write lock) while Stripe is asked
    if seen is not None:
        return "duplicate"
    if event.api_version and event.api_version != gateway.API_VERSION:
        log.warning("stripe event %s has API version %s", event.id, event.api_version)
    facts = _gather(event) if gateway.enabled() else Facts()
    record = WebhookEvent(
        event_id=event.id,
        type=event.type,
        stripe_invoice_id=facts.stripe_invoice_id,
        received_at=now,
    )
    try:
        db.session.add(record)
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return "duplicate"
    invoice = _invoice_for(event, facts)
    if invoice is None:
        record.outcome = "no matching invoice"
    elif not gateway.enabled():
        record.outcome = "ignored: Stripe is off here"
    else:
        lock(invoice)
        before = _money(invoice)
        was_paid = invoice.status is InvoiceStatus.PAID
        outcome = _apply(invoice, event, facts, now)
        became_paid = settle(invoice, now) and not was_paid
        if became_paid:
            queue_paid(invoice)
        record.outcome = outcome[:200]
        if _money(invoice) != before or not outcome.startswith(("ignored", "already")):
            audit(
                f"stripe.{event.type}",
                invoice,
                actor="stripe",
                before=before,
                after={**_money(invoice), "event_id": event.id},
                employer_id=invoice.employer_id,
                reason=record.outcome,
                at=now,
            )
    db.session.commit()
    return record.outcome


def _invoice_for(event: gateway.StripeEvent, facts: Facts) -> Invoice | None:
    if facts.stripe_invoice_id:
        return db.session.scalar(
            select(Invoice).where(Invoice.stripe_invoice_id == facts.stripe_invoice_id)
        )
    intents = {refund.payment_intent_id for refund in facts.refunds if refund.payment_intent_id}
    if event.type == "charge.refunded":
        intents.add(str(event.object["payment_intent"]))
    if intents:
        return db.session.scalar(
            select(Invoice)
            .join(Payment, Payment.invoice_id == Invoice.id)
            .where(Payment.stripe_payment_intent_id.in_(intents))
            .limit(1)
        )
    return None


def _apply(invoice: Invoice, event: gateway.StripeEvent, facts: Facts, now: datetime) -> str:
    obj = event.object
    kind = event.type
    if kind == "invoice.finalized":
        if obj.get("hosted_invoice_url") and not invoice.hosted_invoice_url:
            invoice.hosted_invoice_url = str(obj["hosted_invoice_url"])
        invoice.stripe_finalized = True
        return "finalised"
    if kind == "invoice.payment_failed":
        if invoice.status is not InvoiceStatus.ISSUED:
            return f"ignored: invoice already {invoice.status.value}"
        invoice.payment_failed_at = now
        return "payment failure noted"
    if kind == "invoice.voided":
        if invoice.status is not InvoiceStatus.ISSUED or invoice.payments or invoice.credit_notes:
            return f"ignored: invoice {invoice.status.value} here, with its money recorded"
        void(invoice, "Voided in Stripe")
        return "voided"
    if kind == "invoice.marked_uncollectible":
        if invoice.status is not InvoiceStatus.ISSUED:
            return f"ignored: invoice already {invoice.status.value}"
        write_off(invoice, "Marked uncollectible in Stripe", now)
        return "marked uncollectible"
    if kind in {"invoice.paid", "invoice_payment.paid"}:
        return _reconcile_payments(invoice, facts, now)
    if kind == "charge.refunded" or kind.startswith("refund."):
        return _reconcile_refunds(invoice, facts, facts.refunds, now)
    if kind == "credit_note.created":
        assert facts.credit_note is not None
        return _credit_note_made_in_stripe(invoice, facts, now)
    if kind == "credit_note.voided":
        assert facts.credit_note is not None
        return _credit_note_voided(invoice, facts.credit_note, now)
    return "ignored: event type not handled"


def _day(timestamp: int | None, now: datetime) -> Any:
    if not timestamp:
        return london_today(now)
    return datetime.fromtimestamp(timestamp, UTC).astimezone(LONDON).date()


def _reconcile_payments(invoice: Invoice, facts: Facts, now: datetime) -> str:
    known = {p.stripe_invoice_payment_id for p in invoice.payments}
    ours = {p.stripe_payment_record_id for p in invoice.payments if p.stripe_payment_record_id}
    added = 0
    for remote in facts.payments:
        if remote.status != "paid" or remote.amount_paid <= 0 or remote.id in known:
            continue
        if remote.payment_type == "payment_record":
            if remote.payment_record_id in ours:
                continue
            mine = db.session.get(Payment, facts.our_records.get(remote.payment_record_id, 0))
            if mine is not None and mine.invoice_id == invoice.id:
                # Reported by us, its id lost before we could save it: the money is recorded.
                mine.stripe_payment_record_id = remote.payment_record_id
                continue
            # Recorded in Stripe's Dashboard as paid outside Stripe.
            method, reference = PaymentMethod.BANK_TRANSFER, remote.payment_record_id
        else:
            method, reference = PaymentMethod.STRIPE, remote.payment_intent_id or remote.id
        if invoice.status is InvoiceStatus.VOID:
            log.error("stripe took money on void invoice %s", invoice.id)
        db.session.add(
            Payment(
                invoice=invoice,
                amount_pence=remote.amount_paid,
                method=method,
                reference=reference[:200],
                paid_on=_day(remote.paid_at, now),
                recorded_at=now,
                stripe_invoice_payment_id=remote.id,
                stripe_payment_intent_id=remote.payment_intent_id or None,
                stripe_payment_record_id=remote.payment_record_id or None,
            )
        )
        added += remote.amount_paid
    if not added:
        return "already recorded: no new payment"
    db.session.flush()
    db.session.refresh(invoice)
    balance = invoice.balance_pence
    if balance > 0:
        return f"part-payment of {format_pence(added)}; {format_pence(balance)} still owed"
    if balance < 0:
        return f"payment of {format_pence(added)}; overpaid by {format_pence(-balance)}"
    return f"paid: {format_pence(added)}"


def _reconcile_refunds(
    invoice: Invoice, facts: Facts, refunds: list[gateway.RemoteRefund], now: datetime
) -> str:
    notes = []
    for remote in refunds:
        existing = db.session.scalar(select(Refund).where(Refund.stripe_refund_id == remote.id))
        if existing is None and remote.metadata.get("asye_deployment") == facts.deployment:
            ours = remote.metadata.get("asye_refund_id", "")
            existing = db.session.get(Refund, int(ours)) if ours.isdigit() else None
            if existing is not None:
                existing.stripe_refund_id = remote.id
                existing.stripe_pending = False
        if remote.status in {"failed", "canceled"}:
            if existing is not None and existing.failed_at is None:
                existing.failed_at = now
                notes.append(
                    f"refund {remote.id} failed: {format_pence(remote.amount)} due back again"
                )
            continue
        if existing is not None:
            continue
        db.session.add(
            Refund(
                invoice=invoice,
                amount_pence=remote.amount,
                method=PaymentMethod.STRIPE,
                reference=f"Stripe refund {remote.id}",
                refunded_on=_day(remote.created, now),
                recorded_at=now,
                stripe_refund_id=remote.id,
                stripe_payment_intent_id=remote.payment_intent_id or None,
            )
        )
        notes.append(f"refund of {format_pence(remote.amount)} recorded")
    return "; ".join(notes) if notes else "already recorded: no new refund"


def _credit_note_made_in_stripe(invoice: Invoice, facts: Facts, now: datetime) -> str:
    remote = facts.credit_note
    assert remote is not None
    known = db.session.scalar(
        select(CreditNote).where(CreditNote.stripe_credit_note_id == remote.id)
    )
    mine = remote.metadata.get("asye_deployment") == facts.deployment
    ours_id = remote.metadata.get("asye_credit_note_id", "")
    if known is None and mine and ours_id.isdigit():
        known = db.session.get(CreditNote, int(ours_id))
        if known is not None:
            known.stripe_credit_note_id = remote.id
            known.stripe_pending = False
    if known is not None:
        return "already recorded: our credit note"
    if remote.status == "void" or remote.total <= 0:
        return "ignored: void or empty credit note"
    if remote.total > invoice.total_pence - invoice.credited_pence:
        log.error("stripe credit note %s exceeds invoice %s", remote.id, invoice.id)
        return "refused: the credit is more than is left to credit on the invoice"
    rate = invoice.vat_rate_basis_points
    subtotal = (remote.total * 10000 + (10000 + rate) // 2) // (10000 + rate)
    note = CreditNote(
        number=take_number(credit_key(invoice.programme.invoice_prefix, london_today(now))),
        invoice=invoice,
        employer_id=invoice.employer_id,
        issued_at=datetime.fromtimestamp(remote.created, UTC) if remote.created else now,
        reason=(remote.memo or "Credit note made in Stripe")[:500],
        subtotal_pence=subtotal,
        vat_pence=remote.total - subtotal,
        total_pence=remote.total,
        stripe_credit_note_id=remote.id,
    )
    db.session.add(note)
    outcome = f"credit note of {format_pence(remote.total)} made in Stripe recorded"
    if facts.refunds:
        outcome += "; " + _reconcile_refunds(invoice, facts, facts.refunds, now)
    return outcome


def _credit_note_voided(invoice: Invoice, remote: gateway.RemoteCreditNote, now: datetime) -> str:
    note = db.session.scalar(
        select(CreditNote).where(CreditNote.stripe_credit_note_id == remote.id)
    )
    if note is None or note.invoice_id != invoice.id:
        return "ignored: credit note not recorded here"
    if note.voided_at is not None:
        return "already recorded: credit note void"
    note.voided_at = now
    for line in note.lines:
        line.voided = True
    return f"credit note {note.number} voided in Stripe"
