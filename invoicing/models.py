"""Money tables: invoices, credit notes, payments, numbering and Stripe events.

Amounts are integer pence. An issued invoice is never edited or deleted: it is voided
or credited, and its billing details are copies taken when it was issued.
"""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from booking.models import NQSW, Employer, Model, Programme, User, UTCDateTime, _enum, utcnow


class InvoiceStatus(enum.Enum):
    """Where an invoice stands; apart from void and uncollectible, the sign of its balance."""

    ISSUED = "issued"  # money is owed
    PAID = "paid"  # balance exactly nil
    OVERPAID = "overpaid"  # more was received than is owed: refund due, or credit on account
    UNCOLLECTIBLE = "uncollectible"  # written off: still owed, no longer chased
    VOID = "void"

    @property
    def label(self) -> str:
        return {
            "issued": "Issued",
            "paid": "Paid",
            "overpaid": "Overpaid",
            "uncollectible": "Uncollectible",
            "void": "Void",
        }[self.value]


class GatewayState(enum.Enum):
    LOCAL = "local"  # Stripe is off: paid by bank transfer, recorded by hand
    PENDING = "pending"  # still to be pushed to Stripe (a retry completes it)
    SYNCED = "synced"  # Stripe matches us (finalised and sent, or voided, or paid)


class PaymentMethod(enum.Enum):
    """How money moved, for payments in and refunds out alike."""

    STRIPE = "stripe"
    BANK_TRANSFER = "bank_transfer"
    # An overpayment moved from one of the employer's invoices to another.
    CARRIED_FORWARD = "carried_forward"

    @property
    def label(self) -> str:
        return {
            "stripe": "online payment (Stripe)",
            "bank_transfer": "bank transfer",
            "carried_forward": "credit carried between invoices",
        }[self.value]


class InvoiceCounter(Model):
    """The last number used for one prefix and year; taken under a row lock."""

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(60), unique=True)
    last_value: Mapped[int] = mapped_column(default=0)

    __table_args__ = (CheckConstraint("last_value >= 0", name="last_value_not_negative"),)


class StripeCustomer(Model):
    """The Stripe customer that stands for one employer."""

    id: Mapped[int] = mapped_column(primary_key=True)
    employer_id: Mapped[int] = mapped_column(ForeignKey("employer.id"), unique=True)
    customer_id: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Invoice(Model):
    """A numbered invoice to one employer for a programme's NQSWs."""

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    employer_id: Mapped[int] = mapped_column(ForeignKey("employer.id"), index=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("programme.id"), index=True)
    status: Mapped[InvoiceStatus] = mapped_column(
        _enum(InvoiceStatus, "invoice_status"), default=InvoiceStatus.ISSUED, index=True
    )
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    due_on: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3), default="gbp")
    # Copies, so a later change to the employer never rewrites an issued invoice.
    billing_name: Mapped[str] = mapped_column(String(200))
    billing_address: Mapped[str] = mapped_column(Text, default="")
    billing_email: Mapped[str] = mapped_column(String(254), default="")
    po_number: Mapped[str] = mapped_column(String(80), default="")
    subtotal_pence: Mapped[int] = mapped_column()
    vat_rate_basis_points: Mapped[int] = mapped_column(default=0)
    vat_pence: Mapped[int] = mapped_column(default=0)
    total_pence: Mapped[int] = mapped_column()
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    void_reason: Mapped[str] = mapped_column(Text, default="")
    reminder_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    gateway_state: Mapped[GatewayState] = mapped_column(
        _enum(GatewayState, "gateway_state"), default=GatewayState.LOCAL
    )
    gateway_error: Mapped[str] = mapped_column(Text, default="")
    stripe_invoice_id: Mapped[str | None] = mapped_column(String(100), unique=True, default=None)
    stripe_vat_item_id: Mapped[str | None] = mapped_column(String(100), default=None)
    stripe_finalized: Mapped[bool] = mapped_column(default=False)
    hosted_invoice_url: Mapped[str] = mapped_column(String(500), default="")
    payment_failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    uncollectible_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    uncollectible_reason: Mapped[str] = mapped_column(Text, default="")
    # What an overpayment becomes: False, a refund is due; True, carried to the next invoice.
    carry_forward: Mapped[bool] = mapped_column(default=False)

    employer: Mapped[Employer] = relationship()
    programme: Mapped[Programme] = relationship()
    lines: Mapped[list[InvoiceLine]] = relationship(
        back_populates="invoice", order_by="InvoiceLine.id"
    )
    credit_notes: Mapped[list[CreditNote]] = relationship(
        back_populates="invoice", order_by="CreditNote.id"
    )
    payments: Mapped[list[Payment]] = relationship(
        back_populates="invoice", order_by="Payment.id", foreign_keys="Payment.invoice_id"
    )
    refunds: Mapped[list[Refund]] = relationship(
        back_populates="invoice", order_by="Refund.id", foreign_keys="Refund.invoice_id"
    )

    __table_args__ = (
        CheckConstraint("subtotal_pence >= 0", name="subtotal_not_negative"),
        CheckConstraint("vat_pence >= 0", name="vat_not_negative"),
        CheckConstraint("total_pence = subtotal_pence + vat_pence", name="total_adds_up"),
    )

    @property
    def live_credit_notes(self) -> list[CreditNote]:
        return [note for note in self.credit_notes if note.voided_at is None]

    @property
    def live_refunds(self) -> list[Refund]:
        return [refund for refund in self.refunds if refund.failed_at is None]

    @property
    def credited_pence(self) -> int:
        return sum(note.total_pence for note in self.live_credit_notes)

    @property
    def paid_pence(self) -> int:
        return sum(payment.amount_pence for payment in self.payments)

    @property
    def refunded_pence(self) -> int:
        return sum(refund.amount_pence for refund in self.live_refunds)

    @property
    def balance_pence(self) -> int:
        """Return invoiced - credited - paid + refunded: owed if positive, overpaid if negative.

        Every page, the PDF, both CSVs and Stripe's amount remaining show this one figure
        (a void invoice owes nothing).
        """
        if self.status is InvoiceStatus.VOID:
            return 0
        return self.total_pence - self.credited_pence - self.paid_pence + self.refunded_pence

    @property
    def owed_pence(self) -> int:
        return max(self.balance_pence, 0)

    @property
    def overpaid_pence(self) -> int:
        return max(-self.balance_pence, 0)

    @property
    def received_pence(self) -> int:
        """Return money kept: paid less refunded."""
        return self.paid_pence - self.refunded_pence

    @property
    def state_label(self) -> str:
        """Return the status as the employer should read it."""
        if self.status is InvoiceStatus.OVERPAID:
            return "Credit on account" if self.carry_forward else "Refund due"
        if self.status is InvoiceStatus.PAID and self.received_pence == 0:
            return "Credited"
        if self.status is InvoiceStatus.ISSUED and (self.paid_pence or self.credited_pence):
            return "Part paid"
        return self.status.label

    def is_overdue(self, today: date) -> bool:
        """Say whether money is owed after the due date (written-off invoices are not chased)."""
        return self.status is InvoiceStatus.ISSUED and self.owed_pence > 0 and today > self.due_on

    def __repr__(self) -> str:
        return f"<Invoice {self.id} {self.status.value}>"


class InvoiceLine(Model):
    """One NQSW's place on the programme, at the price on the day it was invoiced."""

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoice.id"), index=True)
    nqsw_id: Mapped[int] = mapped_column(ForeignKey("nqsw.id"), index=True)
    description: Mapped[str] = mapped_column(String(300))
    amount_pence: Mapped[int] = mapped_column()
    stripe_item_id: Mapped[str | None] = mapped_column(String(100), default=None)

    invoice: Mapped[Invoice] = relationship(back_populates="lines")
    nqsw: Mapped[NQSW] = relationship()

    __table_args__ = (CheckConstraint("amount_pence >= 0", name="amount_not_negative"),)


class BilledEnrolment(Model):
    """The claim that an NQSW's programme year is invoiced: one per NQSW and programme.

    The unique constraint is what stops two billing runs charging the same NQSW twice;
    voiding an invoice deletes its claims so the NQSW can be invoiced again.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("programme.id"))
    nqsw_id: Mapped[int] = mapped_column(ForeignKey("nqsw.id"))
    invoice_line_id: Mapped[int] = mapped_column(ForeignKey("invoice_line.id"), unique=True)

    __table_args__ = (UniqueConstraint("programme_id", "nqsw_id"),)


class CreditNote(Model):
    """A numbered credit against an invoice, for some of its lines (or made in Stripe)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoice.id"), index=True)
    employer_id: Mapped[int] = mapped_column(ForeignKey("employer.id"), index=True)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reason: Mapped[str] = mapped_column(Text)
    subtotal_pence: Mapped[int] = mapped_column()
    vat_pence: Mapped[int] = mapped_column(default=0)
    total_pence: Mapped[int] = mapped_column()
    stripe_credit_note_id: Mapped[str | None] = mapped_column(
        String(100), unique=True, default=None
    )
    # Set while Stripe still shows the invoice's full amount; a retry pushes the credit.
    stripe_pending: Mapped[bool] = mapped_column(default=False)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    invoice: Mapped[Invoice] = relationship(back_populates="credit_notes")
    employer: Mapped[Employer] = relationship()
    lines: Mapped[list[CreditNoteLine]] = relationship(
        back_populates="credit_note", order_by="CreditNoteLine.id"
    )

    __table_args__ = (
        CheckConstraint("subtotal_pence > 0", name="subtotal_positive"),
        CheckConstraint("total_pence = subtotal_pence + vat_pence", name="total_adds_up"),
    )


class CreditNoteLine(Model):
    """The credit for one invoice line; a line is credited at most once while the note stands."""

    id: Mapped[int] = mapped_column(primary_key=True)
    credit_note_id: Mapped[int] = mapped_column(ForeignKey("credit_note.id"), index=True)
    invoice_line_id: Mapped[int] = mapped_column(ForeignKey("invoice_line.id"), index=True)
    description: Mapped[str] = mapped_column(String(300))
    amount_pence: Mapped[int] = mapped_column()
    # A voided note frees its lines to be credited again.
    voided: Mapped[bool] = mapped_column(default=False)

    credit_note: Mapped[CreditNote] = relationship(back_populates="lines")
    invoice_line: Mapped[InvoiceLine] = relationship()

    __table_args__ = (
        Index(
            "uq_credit_note_line_live",
            "invoice_line_id",
            unique=True,
            sqlite_where=text("voided = 0"),
            postgresql_where=text("voided = false"),
        ),
    )


class Payment(Model):
    """Money received against an invoice: through Stripe, by bank transfer, or carried over."""

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoice.id"), index=True)
    amount_pence: Mapped[int] = mapped_column()
    method: Mapped[PaymentMethod] = mapped_column(_enum(PaymentMethod, "payment_method"))
    # The bank transfer's reference, Stripe's payment id, or the invoice the credit came from.
    reference: Mapped[str] = mapped_column(String(200))
    paid_on: Mapped[date] = mapped_column(Date)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"), default=None)
    # Stripe's InvoicePayment for money Stripe collected: a replayed event cannot add it twice.
    stripe_invoice_payment_id: Mapped[str | None] = mapped_column(
        String(100), unique=True, default=None
    )
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(
        String(100), index=True, default=None
    )
    # Money received outside Stripe is reported to it as a PaymentRecord attached to the invoice.
    stripe_payment_record_id: Mapped[str | None] = mapped_column(String(100), default=None)
    stripe_pending: Mapped[bool] = mapped_column(default=False)
    carried_from_invoice_id: Mapped[int | None] = mapped_column(
        ForeignKey("invoice.id"), default=None
    )

    invoice: Mapped[Invoice] = relationship(back_populates="payments", foreign_keys=[invoice_id])
    recorded_by: Mapped[User | None] = relationship()
    carried_from: Mapped[Invoice | None] = relationship(foreign_keys=[carried_from_invoice_id])

    __table_args__ = (CheckConstraint("amount_pence > 0", name="amount_positive"),)


class Refund(Model):
    """Money given back against an invoice: by Stripe, by bank transfer, or carried over."""

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoice.id"), index=True)
    amount_pence: Mapped[int] = mapped_column()
    method: Mapped[PaymentMethod] = mapped_column(_enum(PaymentMethod, "refund_method"))
    reference: Mapped[str] = mapped_column(String(200))
    refunded_on: Mapped[date] = mapped_column(Date)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id"), default=None)
    stripe_refund_id: Mapped[str | None] = mapped_column(String(100), unique=True, default=None)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(100), default=None)
    # A refund asked of Stripe here and not yet confirmed by it; a retry finishes it.
    stripe_pending: Mapped[bool] = mapped_column(default=False)
    carried_to_invoice_id: Mapped[int | None] = mapped_column(
        ForeignKey("invoice.id"), default=None
    )
    # Stripe said the refund failed: the money was not returned after all.
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    invoice: Mapped[Invoice] = relationship(back_populates="refunds", foreign_keys=[invoice_id])
    recorded_by: Mapped[User | None] = relationship()
    carried_to: Mapped[Invoice | None] = relationship(foreign_keys=[carried_to_invoice_id])

    __table_args__ = (CheckConstraint("amount_pence > 0", name="amount_positive"),)


class StripeKeyAttempt(Model):
    """How many times Stripe answered an error for one idempotency key's base.

    Stripe replays a stored answer, errors included, for 24 hours; the next try after
    an error therefore uses a fresh key (``...-r<attempt>``), after looking the object
    up by metadata so nothing is created twice.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    attempt: Mapped[int] = mapped_column(default=0)


class InvoicingSetting(Model):
    """A value invoicing keeps in the database, such as this deployment's id."""

    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class WebhookEvent(Model):
    """A Stripe event we have applied; its id makes a repeat delivery a no-op."""

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(100), unique=True)
    type: Mapped[str] = mapped_column(String(80))
    stripe_invoice_id: Mapped[str] = mapped_column(String(100), default="", index=True)
    outcome: Mapped[str] = mapped_column(String(200), default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
