"""Stripe Invoicing: the only module that imports ``stripe``.

Every call carries an idempotency key built from our own ids, so a retry after a
failure (ours or the network's) never creates a second customer, item or invoice.
Stripe's errors come out as ``GatewayError``; callers never see a stripe type.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import stripe
from flask import current_app

log = logging.getLogger(__name__)


class GatewayError(Exception):
    """Stripe refused a call or could not be reached."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadSignature(GatewayError):
    """A webhook whose signature does not verify."""


@dataclass(frozen=True)
class StripeEvent:
    """The parts of a Stripe event we act on."""

    id: str
    type: str
    created: int
    invoice: dict[str, Any] = field(default_factory=dict)


def enabled() -> bool:
    """Say whether Stripe keys are configured."""
    return bool(current_app.config.get("STRIPE_SECRET_KEY"))


def _client() -> stripe.StripeClient:
    config = current_app.config
    base = config.get("STRIPE_API_BASE")
    return stripe.StripeClient(
        config["STRIPE_SECRET_KEY"],
        base_addresses={"api": base} if base else None,
        max_network_retries=config.get("STRIPE_MAX_NETWORK_RETRIES", 2),
    )


def _call(what: str, function: Any, *args: Any, key: str, **params: Any) -> Any:
    try:
        return function(*args, params=params or None, options={"idempotency_key": key})
    except stripe.StripeError as error:
        message = error.user_message or str(error) or type(error).__name__
        log.warning("stripe %s failed (%s)", what, type(error).__name__)
        raise GatewayError(f"Stripe could not {what}: {message}") from error


def create_customer(*, key: str, name: str, email: str, employer_id: int) -> str:
    """Create the Stripe customer for an employer and return its id."""
    customer = _call(
        "create the customer",
        _client().v1.customers.create,
        key=key,
        name=name,
        email=email,
        metadata={"asye_employer_id": str(employer_id)},
    )
    return str(customer.id)


def create_invoice(
    *,
    key: str,
    customer_id: str,
    days_until_due: int,
    po_number: str,
    number: str,
    invoice_id: int,
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
        "metadata": {"asye_invoice_id": str(invoice_id), "asye_number": number},
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


def add_invoice_item(
    *, key: str, customer_id: str, stripe_invoice_id: str, amount_pence: int, description: str
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


def delete_draft(*, stripe_invoice_id: str) -> None:
    """Delete a draft Stripe invoice that never reached the customer (already gone is fine)."""
    try:
        _client().v1.invoices.delete(stripe_invoice_id)
    except stripe.InvalidRequestError as error:
        if error.code != "resource_missing":
            raise GatewayError(
                f"Stripe could not delete the draft: {error.user_message}"
            ) from error
    except stripe.StripeError as error:
        raise GatewayError(f"Stripe could not delete the draft: {error.user_message}") from error


def mark_paid_out_of_band(*, key: str, stripe_invoice_id: str) -> None:
    """Tell Stripe an invoice was paid outside it, so it stops asking for the money."""
    _call(
        "mark the invoice paid",
        _client().v1.invoices.pay,
        stripe_invoice_id,
        key=key,
        paid_out_of_band=True,
    )


def create_credit_note(
    *, key: str, stripe_invoice_id: str, lines: list[tuple[str, int]], memo: str
) -> str:
    """Credit an open Stripe invoice by custom lines of (description, pence); return its id."""
    note = _call(
        "create the credit note",
        _client().v1.credit_notes.create,
        key=key,
        invoice=stripe_invoice_id,
        memo=memo,
        lines=[
            {
                "type": "custom_line_item",
                "description": description,
                "quantity": 1,
                "unit_amount": amount,
            }
            for description, amount in lines
        ],
    )
    return str(note.id)


def parse_event(payload: bytes, signature: str | None) -> StripeEvent:
    """Verify a webhook's signature and return the event it carries."""
    secret = current_app.config.get("STRIPE_WEBHOOK_SECRET")
    if not secret:
        raise BadSignature("Stripe webhooks are not configured.")
    try:
        stripe.WebhookSignature.verify_header(payload.decode("utf-8"), signature, secret, 300)
    except (stripe.SignatureVerificationError, ValueError, UnicodeDecodeError) as error:
        raise BadSignature("The webhook signature does not verify.") from error
    body = json.loads(payload)
    obj = body.get("data", {}).get("object", {})
    return StripeEvent(
        id=str(body["id"]),
        type=str(body["type"]),
        created=int(body.get("created", 0)),
        invoice=obj if obj.get("object") == "invoice" else {},
    )
