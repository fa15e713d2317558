"""Stripe Invoicing: the only module that imports ``stripe``.

Written against Stripe API version ``API_VERSION``, which is set on every client so
that what is sent does not drift with the installed package (pyproject pins the
``stripe`` release whose own default is this same version). Callers pass an
idempotency key with every call that changes something; Stripe's errors come out as
``GatewayError`` and its objects as the small dataclasses below, so callers never see
a stripe type. Objects we create carry our ids and the deployment's id in metadata,
so the ``find_*`` functions can look them up before creating them again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import stripe
from flask import current_app

log = logging.getLogger(__name__)

# The Stripe API version this code reads and writes. amount_paid includes payments made
# outside Stripe (2025-03-31.basil), invoices take several partial payments, each an
# InvoicePayment (2025-05-28.basil), PaymentRecords attach to invoices (2025-10-29.clover).
API_VERSION = "2026-10-28.endive"


class GatewayError(Exception):
    """Stripe refused a call or could not be reached."""

    def __init__(self, message: str, *, answered: bool = False) -> None:
        super().__init__(message)
        self.message = message
        # Stripe answered with an error, which it keeps for the idempotency key for 24 hours.
        self.answered = answered
        self.key_base = ""


class BadSignature(GatewayError):
    """A webhook whose signature does not verify."""


class MalformedEvent(GatewayError):
    """A correctly signed webhook whose body is not an event we can read."""


@dataclass(frozen=True)
class StripeEvent:
    """A verified Stripe event: its id, type and the object it carries."""

    id: str
    type: str
    created: int
    api_version: str
    object: dict[str, Any] = field(default_factory=dict)

    @property
    def object_type(self) -> str:
        return str(self.object.get("object", ""))


@dataclass(frozen=True)
class RemoteInvoice:
    id: str
    status: str
    total: int
    amount_due: int
    amount_paid: int
    amount_remaining: int
    amount_overpaid: int
    hosted_invoice_url: str
    metadata: dict[str, str]


@dataclass(frozen=True)
class RemoteInvoicePayment:
    """One payment applied to a Stripe invoice (an InvoicePayment)."""

    id: str
    invoice_id: str
    status: str
    amount_paid: int
    paid_at: int | None
    payment_type: str
    payment_intent_id: str
    payment_record_id: str


@dataclass(frozen=True)
class RemoteRefund:
    id: str
    amount: int
    status: str
    payment_intent_id: str
    created: int
    metadata: dict[str, str]


@dataclass(frozen=True)
class RemoteCreditNote:
    id: str
    invoice_id: str
    status: str
    total: int
    memo: str
    created: int
    refunds: list[tuple[str, int]]
    metadata: dict[str, str]


def enabled() -> bool:
    """Say whether Stripe keys are configured."""
    return bool(current_app.config.get("STRIPE_SECRET_KEY"))


def _client() -> stripe.StripeClient:
    config = current_app.config
    base = config.get("STRIPE_API_BASE")
    return stripe.StripeClient(
        config["STRIPE_SECRET_KEY"],
        stripe_version=API_VERSION,
        base_addresses={"api": base} if base else None,
        max_network_retries=config.get("STRIPE_MAX_NETWORK_RETRIES", 2),
    )


def _plain(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if obj is not None else {}


def _call(
    what: str, function: Callable[..., Any], *args: Any, key: str | None, **params: Any
) -> Any:
    options = {"idempotency_key": key} if key else None
    try:
        return function(*args, params=params or None, options=options)
    except stripe.StripeError as error:
        message = error.user_message or str(error) or type(error).__name__
        log.warning("stripe %s failed (%s)", what, type(error).__name__)
        raise GatewayError(
            f"Stripe could not {what}: {message}", answered=error.http_status is not None
        ) from error


def _list(what: str, function: Callable[..., Any], **params: Any) -> list[dict[str, Any]]:
    page = _call(what, function, key=None, limit=100, **params)
    return [_plain(item) for item in page.data]


def _metadata(obj: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in (obj.get("metadata") or {}).items()}


def _invoice(obj: Mapping[str, Any]) -> RemoteInvoice:
    return RemoteInvoice(
        id=str(obj["id"]),
        status=str(obj.get("status") or ""),
        total=int(obj.get("total") or 0),
        amount_due=int(obj.get("amount_due") or 0),
        amount_paid=int(obj.get("amount_paid") or 0),
        amount_remaining=int(obj.get("amount_remaining") or 0),
        amount_overpaid=int(obj.get("amount_overpaid") or 0),
        hosted_invoice_url=str(obj.get("hosted_invoice_url") or ""),
        metadata=_metadata(obj),
    )


def _refund(obj: Mapping[str, Any]) -> RemoteRefund:
    return RemoteRefund(
        id=str(obj["id"]),
        amount=int(obj["amount"]),
        status=str(obj.get("status") or ""),
        payment_intent_id=str(obj.get("payment_intent") or ""),
        created=int(obj.get("created") or 0),
        metadata=_metadata(obj),
    )


def _mine(obj: Mapping[str, Any], deployment: str, **ids: str) -> bool:
    metadata = _metadata(obj)
    if metadata.get("asye_deployment") != deployment:
        return False
    return all(metadata.get(name) == value for name, value in ids.items())


# Customers and invoices --------------------------------------------------------------


def find_customer(*, email: str, employer_id: int, deployment: str) -> str | None:
    """Return this deployment's Stripe customer for an employer, if one was made."""
    if not email:
        return None
    for customer in _list("list customers", _client().v1.customers.list, email=email):
        if _mine(customer, deployment, asye_employer_id=str(employer_id)):
            return str(customer["id"])
    return None


def create_customer(*, key: str, name: str, email: str, employer_id: int, deployment: str) -> str:
    """Create the Stripe customer for an employer and return its id."""
    customer = _call(
        "create the customer",
        _client().v1.customers.create,
        key=key,
        name=name,
        email=email,
        metadata={"asye_employer_id": str(employer_id), "asye_deployment": deployment},
    )
    return str(customer.id)


def find_invoice(*, customer_id: str, invoice_id: int, deployment: str) -> RemoteInvoice | None:
    """Return this deployment's Stripe invoice for one of our invoices, if one was made."""
    for invoice in _list("list invoices", _client().v1.invoices.list, customer=customer_id):
        if _mine(invoice, deployment, asye_invoice_id=str(invoice_id)):
            return _invoice(invoice)
    return None


def create_invoice(
    *,
    key: str,
    customer_id: str,
    days_until_due: int,
    po_number: str,
    number: str,
    invoice_id: int,
    deployment: str,
) -> str:
    """Create a draft send-invoice on Stripe, payable by card or bank transfer; return its id."""
    params: dict[str, Any] = {
        "customer": customer_id,
        "collection_method": "send_invoice",
        "days_until_due": days_until_due,
        "currency": "gbp",
        "auto_advance": False,
        "pending_invoice_items_behavior": "exclude",
        "description": f"Invoice {number}",
        "metadata": {
            "asye_invoice_id": str(invoice_id),
            "asye_number": number,
            "asye_deployment": deployment,
        },
        "payment_settings": {
            "payment_method_types": ["card", "customer_balance"],
            "payment_method_options": {
                "customer_balance": {
                    "funding_type": "bank_transfer",
                    "bank_transfer": {"type": "gb_bank_transfer"},
                }
            },
        },
    }
    if po_number:
        params["custom_fields"] = [{"name": "PO number", "value": po_number}]
    invoice = _call("create the invoice", _client().v1.invoices.create, key=key, **params)
    return str(invoice.id)


def retrieve_invoice(stripe_invoice_id: str) -> RemoteInvoice:
    """Return a Stripe invoice as it stands now."""
    return _invoice(
        _plain(
            _call("read the invoice", _client().v1.invoices.retrieve, stripe_invoice_id, key=None)
        )
    )


def invoice_items(stripe_invoice_id: str) -> dict[str, str]:
    """Return a draft invoice's items, as our line key (``asye_line``) to Stripe item id."""
    items = _list("list invoice items", _client().v1.invoice_items.list, invoice=stripe_invoice_id)
    return {
        _metadata(item)["asye_line"]: str(item["id"])
        for item in items
        if "asye_line" in _metadata(item)
    }


def add_invoice_item(
    *,
    key: str,
    customer_id: str,
    stripe_invoice_id: str,
    amount_pence: int,
    description: str,
    line_key: str,
) -> str:
    """Add one line to a draft Stripe invoice and return the item's id."""
    item = _call(
        "add an invoice line",
        _client().v1.invoice_items.create,
        key=key,
        customer=customer_id,
        invoice=stripe_invoice_id,
        amount=amount_pence,
        currency="gbp",
        description=description,
        metadata={"asye_line": line_key},
    )
    return str(item.id)


def finalize_invoice(*, key: str, stripe_invoice_id: str) -> str:
    """Finalise a draft Stripe invoice and return its hosted payment page's address."""
    invoice = _call(
        "finalise the invoice",
        _client().v1.invoices.finalize_invoice,
        stripe_invoice_id,
        key=key,
        auto_advance=False,
    )
    return str(invoice.hosted_invoice_url or "")


def send_invoice(*, key: str, stripe_invoice_id: str) -> None:
    """Ask Stripe to email the finalised invoice to the customer."""
    _call("send the invoice", _client().v1.invoices.send_invoice, stripe_invoice_id, key=key)


def void_invoice(*, key: str, stripe_invoice_id: str) -> None:
    """Void an open Stripe invoice."""
    _call("void the invoice", _client().v1.invoices.void_invoice, stripe_invoice_id, key=key)


def mark_uncollectible(*, key: str, stripe_invoice_id: str) -> None:
    """Mark an open Stripe invoice uncollectible, so Stripe stops chasing it."""
    _call(
        "mark the invoice uncollectible",
        _client().v1.invoices.mark_uncollectible,
        stripe_invoice_id,
        key=key,
    )


def delete_draft(*, stripe_invoice_id: str) -> None:
    """Delete a draft Stripe invoice that never reached the customer (already gone is fine)."""
    try:
        _client().v1.invoices.delete(stripe_invoice_id)
    except stripe.InvalidRequestError as error:
        if error.code != "resource_missing":
            raise GatewayError(
                f"Stripe could not delete the draft: {error.user_message}", answered=True
            ) from error
    except stripe.StripeError as error:
        raise GatewayError(f"Stripe could not delete the draft: {error.user_message}") from error


# Credit notes ---------------------------------------------------------------------------


def _credit_note(obj: Mapping[str, Any]) -> RemoteCreditNote:
    refunds = []
    for entry in obj.get("refunds") or []:
        refund = entry.get("refund")
        refund_id = refund.get("id") if isinstance(refund, Mapping) else refund
        if refund_id:
            refunds.append((str(refund_id), int(entry.get("amount_refunded") or 0)))
    invoice = obj.get("invoice")
    return RemoteCreditNote(
        id=str(obj["id"]),
        invoice_id=str(invoice.get("id") if isinstance(invoice, Mapping) else invoice or ""),
        status=str(obj.get("status") or "issued"),
        total=int(obj["total"]),
        memo=str(obj.get("memo") or ""),
        created=int(obj.get("created") or 0),
        refunds=refunds,
        metadata=_metadata(obj),
    )


def credit_note_from(obj: Mapping[str, Any]) -> RemoteCreditNote:
    """Read a credit note carried by an event."""
    return _credit_note(obj)


def find_credit_note(*, stripe_invoice_id: str, credit_note_id: int, deployment: str) -> str | None:
    """Return the Stripe credit note made for one of ours, if there is one."""
    for note in _list(
        "list credit notes", _client().v1.credit_notes.list, invoice=stripe_invoice_id
    ):
        if _mine(note, deployment, asye_credit_note_id=str(credit_note_id)):
            return str(note["id"])
    return None


def create_credit_note(
    *,
    key: str,
    stripe_invoice_id: str,
    lines: list[tuple[str, int]],
    memo: str,
    out_of_band_pence: int,
    credit_note_id: int,
    deployment: str,
) -> str:
    """Credit a Stripe invoice by custom lines of (description, pence); return the note's id.

    Whatever the credit takes off beyond the amount remaining (money already received)
    is given back outside Stripe (``out_of_band_amount``), never to the customer's
    Stripe balance, which Stripe would spend on a later invoice behind our back.
    """
    params: dict[str, Any] = {
        "invoice": stripe_invoice_id,
        "memo": memo,
        "metadata": {"asye_credit_note_id": str(credit_note_id), "asye_deployment": deployment},
        "lines": [
            {
                "type": "custom_line_item",
                "description": description,
                "quantity": 1,
                "unit_amount": amount,
            }
            for description, amount in lines
        ],
    }
    if out_of_band_pence:
        params["out_of_band_amount"] = out_of_band_pence
    note = _call("create the credit note", _client().v1.credit_notes.create, key=key, **params)
    return str(note.id)


# Money received outside Stripe -----------------------------------------------------------


def payment_record_metadata(payment_record_id: str) -> dict[str, str]:
    """Return a PaymentRecord's metadata (ours name our payment and deployment)."""
    record = _call(
        "read a payment record",
        _client().v1.payment_records.retrieve,
        payment_record_id,
        key=None,
    )
    return _metadata(_plain(record))


def find_payment_record(*, stripe_invoice_id: str, payment_id: int, deployment: str) -> str | None:
    """Return the PaymentRecord reported for one of our payments, if it is on the invoice."""
    for payment in invoice_payments(stripe_invoice_id):
        if payment.payment_type != "payment_record" or not payment.payment_record_id:
            continue
        metadata = payment_record_metadata(payment.payment_record_id)
        if metadata.get("asye_deployment") == deployment and metadata.get("asye_payment_id") == str(
            payment_id
        ):
            return payment.payment_record_id
    return None


def report_payment(
    *,
    key: str,
    customer_id: str,
    amount_pence: int,
    paid_at: int,
    reference: str,
    label: str,
    payment_id: int,
    deployment: str,
) -> str:
    """Report money received outside Stripe as a PaymentRecord and return its id."""
    params: dict[str, Any] = {
        "amount_requested": {"currency": "gbp", "value": amount_pence},
        "initiated_at": paid_at,
        "outcome": "guaranteed",
        "guaranteed": {"guaranteed_at": paid_at},
        "customer_details": {"customer": customer_id},
        "payment_method_details": {"type": "custom", "custom": {"display_name": label}},
        "processor_details": {"type": "custom", "custom": {"payment_reference": reference}},
        "description": label,
        "metadata": {"asye_payment_id": str(payment_id), "asye_deployment": deployment},
    }
    method_type = current_app.config.get("STRIPE_CUSTOM_PAYMENT_METHOD_TYPE")
    if method_type:
        params["payment_method_details"]["custom"]["type"] = method_type
    record = _call(
        "record the payment", _client().v1.payment_records.report_payment, key=key, **params
    )
    return str(record.id)


def attach_payment_record(
    *, key: str, stripe_invoice_id: str, payment_record_id: str
) -> RemoteInvoice:
    """Apply a PaymentRecord to a Stripe invoice, lowering what Stripe asks for."""
    invoice = _call(
        "apply the payment to the invoice",
        _client().v1.invoices.attach_payment,
        stripe_invoice_id,
        key=key,
        payment_record=payment_record_id,
    )
    return _invoice(_plain(invoice))


def invoice_payments(stripe_invoice_id: str) -> list[RemoteInvoicePayment]:
    """Return every payment applied to a Stripe invoice, paid or not."""
    payments = _list(
        "list the invoice's payments", _client().v1.invoice_payments.list, invoice=stripe_invoice_id
    )
    return [invoice_payment_from(payment) for payment in payments]


def invoice_payment_from(obj: Mapping[str, Any]) -> RemoteInvoicePayment:
    """Read an InvoicePayment (from the API or an event)."""
    payment = obj.get("payment") or {}
    transitions = obj.get("status_transitions") or {}

    def _id(value: Any) -> str:
        return str(value.get("id") if isinstance(value, Mapping) else value or "")

    invoice = obj.get("invoice")
    return RemoteInvoicePayment(
        id=str(obj["id"]),
        invoice_id=_id(invoice),
        status=str(obj.get("status") or ""),
        amount_paid=int(obj.get("amount_paid") or 0),
        paid_at=transitions.get("paid_at"),
        payment_type=str(payment.get("type") or ""),
        payment_intent_id=_id(payment.get("payment_intent")),
        payment_record_id=_id(payment.get("payment_record")),
    )


# Refunds -----------------------------------------------------------------------------------


def refund_from(obj: Mapping[str, Any]) -> RemoteRefund:
    """Read a refund carried by an event."""
    return _refund(obj)


def refunds_for(payment_intent_id: str) -> list[RemoteRefund]:
    """Return every refund of one Stripe payment."""
    refunds = _list("list refunds", _client().v1.refunds.list, payment_intent=payment_intent_id)
    return [_refund(refund) for refund in refunds]


def create_refund(
    *, key: str, payment_intent_id: str, amount_pence: int, refund_id: int, deployment: str
) -> RemoteRefund:
    """Give money back through Stripe, to the card or account it came from."""
    refund = _call(
        "make the refund",
        _client().v1.refunds.create,
        key=key,
        payment_intent=payment_intent_id,
        amount=amount_pence,
        metadata={"asye_refund_id": str(refund_id), "asye_deployment": deployment},
    )
    return _refund(_plain(refund))


# Webhooks ------------------------------------------------------------------------------------

# For each event type we act on: the object it must carry and the fields we read from it.
REQUIRED_FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "invoice.finalized": ("invoice", ("id",)),
    "invoice.paid": ("invoice", ("id",)),
    "invoice.payment_failed": ("invoice", ("id",)),
    "invoice.voided": ("invoice", ("id",)),
    "invoice.marked_uncollectible": ("invoice", ("id",)),
    "invoice_payment.paid": ("invoice_payment", ("id", "invoice", "amount_paid", "payment")),
    "charge.refunded": ("charge", ("id", "payment_intent")),
    "refund.created": ("refund", ("id", "amount", "status")),
    "refund.updated": ("refund", ("id", "amount", "status")),
    "refund.failed": ("refund", ("id", "amount", "status")),
    "credit_note.created": ("credit_note", ("id", "invoice", "total")),
    "credit_note.voided": ("credit_note", ("id", "invoice", "total")),
}


def parse_event(payload: bytes, signature: str | None) -> StripeEvent:
    """Verify a webhook's signature and return the event it carries.

    A body that verifies but is not a readable event raises ``MalformedEvent``: it
    will never read better, so the endpoint answers 400 and records nothing.
    """
    secret = current_app.config.get("STRIPE_WEBHOOK_SECRET")
    if not secret:
        raise BadSignature("Stripe webhooks are not configured.")
    try:
        stripe.WebhookSignature.verify_header(payload.decode("utf-8"), signature, secret, 300)
    except (stripe.SignatureVerificationError, ValueError, UnicodeDecodeError) as error:
        raise BadSignature("The webhook signature does not verify.") from error
    try:
        body = json.loads(payload)
    except ValueError as error:
        raise MalformedEvent("The webhook body is not JSON.") from error
    if not isinstance(body, dict):
        raise MalformedEvent("The webhook body is not a JSON object.")
    for name in ("id", "type"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise MalformedEvent(f"The event has no {name}.")
    data = body.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        raise MalformedEvent("The event's data.object is not an object.")
    created = body.get("created", 0)
    if not isinstance(created, int):
        raise MalformedEvent("The event's created time is not a number.")
    event_type = body["type"]
    if event_type in REQUIRED_FIELDS:
        kind, fields = REQUIRED_FIELDS[event_type]
        if obj.get("object") != kind:
            raise MalformedEvent(f"A {event_type} event must carry a {kind}.")
        missing = [name for name in fields if obj.get(name) in (None, "")]
        if missing:
            raise MalformedEvent(f"The {kind} in this event has no {', '.join(missing)}.")
        if not isinstance(obj["id"], str):
            raise MalformedEvent(f"The {kind}'s id is not a string.")
        for name in ("amount", "amount_paid", "total"):
            if name in fields and not isinstance(obj.get(name), int):
                raise MalformedEvent(f"The {kind}'s {name} is not a whole number.")
    return StripeEvent(
        id=body["id"],
        type=event_type,
        created=created,
        api_version=str(body.get("api_version") or ""),
        object=obj,
    )
