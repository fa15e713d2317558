"""A local stand-in for the Stripe API at the version the gateway pins, for what invoicing uses.

It listens on 127.0.0.1 and answers the stripe client's form-encoded requests with
JSON objects shaped as in API version ``gateway.API_VERSION``: an Invoice has
``amount_paid`` (including money paid outside Stripe), ``amount_remaining``,
``amount_overpaid`` and pre/post-payment credit note amounts, and no
``paid_out_of_band``, ``paid``, ``charge`` or ``payment_intent`` (gone since
2025-03-31.basil); each payment is an InvoicePayment; money paid outside Stripe is a
PaymentRecord attached to the invoice; credit notes split into pre- and post-payment
parts, the latter to be covered by refunds or ``out_of_band_amount``.

Idempotency as Stripe does it: the first answer for a key, errors and 5xx included,
is stored and replayed for the same key (``Idempotent-Replayed: true``); the same key
with other parameters is refused. ``fail_next`` makes Stripe fail a request (after
doing its work if ``after_effect``). The hosted invoice page takes full or part
payments and, like the Dashboard helpers, delivers webhooks signed the way
``stripe.WebhookSignature`` checks them.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlparse

import stripe

from invoicing.gateway import API_VERSION


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, str]
    idempotency_key: str | None
    stripe_version: str | None
    replayed: bool = False


class _Refused(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.reply = _error(status, "invalid_request_error", message, code)


@dataclass
class FakeStripe:
    webhook_secret: str = "whsec_test_fake"
    webhook_url: str | None = None
    return_url: str | None = None
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    credit_notes: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoice_payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    payment_records: dict[str, dict[str, Any]] = field(default_factory=dict)
    payment_intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    delivered: list[tuple[str, int]] = field(default_factory=list)
    _replies: dict[str, tuple[str, tuple[int, dict[str, Any]]]] = field(default_factory=dict)
    _failures: list[tuple[str, int, bool]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.RLock = field(default_factory=threading.RLock)
    url: str = ""

    # Control -------------------------------------------------------------------------

    def fail_next(
        self, path_fragment: str, status: int = 500, *, after_effect: bool = False
    ) -> None:
        """Make the next POST or DELETE whose path contains ``path_fragment`` fail (a
        fragment like ``"GET /v1/invoices"`` fails a read instead).

        With ``after_effect`` Stripe does the work first and then answers the error, as
        when a reply is lost; either way the error is stored for the idempotency key.
        """
        self._failures.append((path_fragment, status, after_effect))

    def calls_to(self, fragment: str, method: str = "POST") -> list[Call]:
        """Return the requests whose path contains ``fragment`` (replays included)."""
        return [c for c in self.calls if fragment in c.path and c.method == method]

    def sign(self, body: dict[str, Any]) -> tuple[str, str]:
        payload = json.dumps(body)
        header = stripe.WebhookSignature.generate_signature_header(payload, self.webhook_secret)
        return payload, header

    def event_for(self, type_: str, obj: dict[str, Any]) -> tuple[str, str]:
        """Return (payload, Stripe-Signature header) for an event carrying ``obj``."""
        return self.sign(
            {
                "id": f"evt_{next(self._ids):06d}",
                "object": "event",
                "api_version": API_VERSION,
                "type": type_,
                "created": int(time.time()),
                "livemode": False,
                "pending_webhooks": 1,
                "data": {"object": json.loads(json.dumps(obj))},
            }
        )

    def event(self, type_: str, invoice_id: str, **changes: Any) -> tuple[str, str]:
        """Return a signed event about an invoice, its fields overridden by ``changes``."""
        return self.event_for(type_, {**self.invoices[invoice_id], **changes})

    def deliver(self, type_: str, obj: dict[str, Any]) -> None:
        """Post a signed event to the webhook URL, if one is set."""
        if not self.webhook_url:
            return
        payload, header = self.event_for(type_, obj)
        request = urllib.request.Request(
            self.webhook_url,
            data=payload.encode(),
            headers={"Content-Type": "application/json", "Stripe-Signature": header},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            self.delivered.append((type_, response.status))

    # Objects -------------------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):05d}"

    def _refresh(self, invoice: dict[str, Any]) -> None:
        """Recompute an invoice's amounts from its items, credit notes and payments."""
        iid = invoice["id"]
        total = sum(i["amount"] for i in self.items.values() if i["invoice"] == iid)
        notes = [
            n for n in self.credit_notes.values() if n["invoice"] == iid and n["status"] == "issued"
        ]
        pre = sum(n["pre_payment_amount"] for n in notes)
        post = sum(n["post_payment_amount"] for n in notes)
        paid = sum(
            p["amount_paid"] or 0
            for p in self.invoice_payments.values()
            if p["invoice"] == iid and p["status"] == "paid"
        )
        due = total - pre
        invoice.update(
            subtotal=total,
            total=total,
            amount_due=due,
            amount_paid=paid,
            amount_remaining=max(due - paid, 0),
            amount_overpaid=max(paid - due, 0),
            pre_payment_credit_notes_amount=pre,
            post_payment_credit_notes_amount=post,
        )
        if invoice["status"] in {"open", "uncollectible"} and invoice["amount_remaining"] == 0:
            invoice["status"] = "paid"
            invoice["status_transitions"]["paid_at"] = int(time.time())
        default = next(
            (p for p in self.invoice_payments.values() if p["invoice"] == iid and p["is_default"]),
            None,
        )
        if default is not None and default["status"] == "open":
            default["amount_requested"] = invoice["amount_remaining"]
            if invoice["amount_remaining"] == 0:
                default["status"] = "canceled"

    def _invoice_payment(
        self, invoice: dict[str, Any], payment: dict[str, Any], amount: int, *, default: bool
    ) -> dict[str, Any]:
        record = {
            "id": self._new_id("inpay"),
            "object": "invoice_payment",
            "invoice": invoice["id"],
            "amount_requested": amount,
            "amount_paid": None,
            "currency": "gbp",
            "is_default": default,
            "livemode": False,
            "created": int(time.time()),
            "status": "open",
            "payment": payment,
            "status_transitions": {"canceled_at": None, "paid_at": None},
        }
        self.invoice_payments[record["id"]] = record
        return record

    def _pay(self, record: dict[str, Any], amount: int) -> None:
        record["status"] = "paid"
        record["amount_paid"] = amount
        record["status_transitions"]["paid_at"] = int(time.time())

    # The API -------------------------------------------------------------------------

    def handle(self, method: str, path: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        try:
            return 200, self._route(method, path, params)
        except _Refused as refusal:
            return refusal.reply

    def _get(self, table: dict[str, dict[str, Any]], object_id: str, what: str) -> dict[str, Any]:
        if object_id not in table:
            raise _Refused(404, f"No such {what}: '{object_id}'", "resource_missing")
        return table[object_id]

    def _route(self, method: str, path: str, params: dict[str, str]) -> dict[str, Any]:
        parts = path.strip("/").split("/")[1:]
        head = parts[0] if parts else ""
        if method == "GET" and len(parts) == 1:
            return self._list(head, params)
        if method == "GET" and len(parts) == 2:
            table = {
                "invoices": self.invoices,
                "payment_records": self.payment_records,
                "credit_notes": self.credit_notes,
                "refunds": self.refunds,
                "invoice_payments": self.invoice_payments,
            }.get(head)
            if table is None:
                raise _Refused(404, f"Unrecognised request URL {path}")
            return self._get(table, parts[1], head.rstrip("s"))
        if method == "POST" and head == "customers" and len(parts) == 1:
            customer = {
                "id": self._new_id("cus"),
                "object": "customer",
                "name": params.get("name"),
                "email": params.get("email"),
                "metadata": _nested(params, "metadata"),
            }
            self.customers[customer["id"]] = customer
            return customer
        if method == "POST" and head == "invoices" and len(parts) == 1:
            return self._create_invoice(params)
        if method == "POST" and head == "invoices" and len(parts) == 3:
            invoice = self._get(self.invoices, parts[1], "invoice")
            return self._invoice_action(invoice, parts[2], params)
        if method == "DELETE" and head == "invoices" and len(parts) == 2:
            invoice = self._get(self.invoices, parts[1], "invoice")
            if invoice["status"] != "draft":
                raise _Refused(400, "Only draft invoices can be deleted")
            del self.invoices[parts[1]]
            return {"id": parts[1], "object": "invoice", "deleted": True}
        if method == "POST" and head == "invoiceitems" and len(parts) == 1:
            invoice = self.invoices.get(params.get("invoice", ""))
            if invoice is None or invoice["status"] != "draft":
                raise _Refused(400, "Invoice is not a draft")
            item = {
                "id": self._new_id("ii"),
                "object": "invoiceitem",
                "invoice": invoice["id"],
                "amount": int(params["amount"]),
                "description": params.get("description", ""),
                "metadata": _nested(params, "metadata"),
            }
            self.items[item["id"]] = item
            self._refresh(invoice)
            return item
        if method == "POST" and head == "credit_notes" and len(parts) == 1:
            return self._create_credit_note(params)
        if method == "POST" and head == "payment_records" and parts[1:] == ["report_payment"]:
            return self._report_payment(params)
        if method == "POST" and head == "refunds" and len(parts) == 1:
            return self._create_refund(params, metadata=_nested(params, "metadata"))
        raise _Refused(404, f"Unrecognised request URL ({method}: {path})")

    def _list(self, head: str, params: dict[str, str]) -> dict[str, Any]:
        filters = {
            "customers": (self.customers, "email"),
            "invoices": (self.invoices, "customer"),
            "invoiceitems": (self.items, "invoice"),
            "credit_notes": (self.credit_notes, "invoice"),
            "invoice_payments": (self.invoice_payments, "invoice"),
            "refunds": (self.refunds, "payment_intent"),
        }
        if head not in filters:
            raise _Refused(404, f"Unrecognised request URL /v1/{head}")
        table, name = filters[head]
        data = [
            obj for obj in table.values() if name not in params or obj.get(name) == params[name]
        ]
        return {"object": "list", "url": f"/v1/{head}", "has_more": False, "data": data}

    def _create_invoice(self, params: dict[str, str]) -> dict[str, Any]:
        if params.get("customer") not in self.customers:
            raise _Refused(400, "No such customer")
        invoice = {
            "id": self._new_id("in"),
            "object": "invoice",
            "status": "draft",
            "customer": params["customer"],
            "collection_method": params.get("collection_method"),
            "days_until_due": int(params.get("days_until_due", "0")),
            "currency": params.get("currency", "gbp"),
            "description": params.get("description"),
            "metadata": _nested(params, "metadata"),
            "custom_fields": _indexed(params, "custom_fields"),
            "payment_settings": {
                "payment_method_types": [
                    v
                    for k, v in params.items()
                    if k.startswith("payment_settings[payment_method_types]")
                ]
            },
            "hosted_invoice_url": None,
            "livemode": False,
            "status_transitions": {"finalized_at": None, "paid_at": None, "voided_at": None},
        }
        self.invoices[invoice["id"]] = invoice
        self._refresh(invoice)
        return invoice

    def _invoice_action(
        self, invoice: dict[str, Any], action: str, params: dict[str, str]
    ) -> dict[str, Any]:
        if action == "finalize":
            if invoice["status"] != "draft":
                raise _Refused(400, "This invoice is already finalized.", "invoice_not_editable")
            invoice["status"] = "open"
            invoice["hosted_invoice_url"] = f"{self.url}/hosted/{invoice['id']}"
            invoice["status_transitions"]["finalized_at"] = int(time.time())
            self._invoice_payment(
                invoice,
                {"type": "payment_intent", "payment_intent": self._new_id("pi")},
                invoice["amount_remaining"],
                default=True,
            )
            self._refresh(invoice)
            return invoice
        if action == "send":
            if invoice["status"] != "open":
                raise _Refused(400, "Invoice is not open")
            invoice["sent"] = True
            return invoice
        if action == "void":
            paid = any(
                p["invoice"] == invoice["id"] and p["status"] == "paid"
                for p in self.invoice_payments.values()
            )
            if invoice["status"] not in {"open", "uncollectible"} or paid:
                raise _Refused(400, "You can only void open invoices without payments.")
            invoice["status"] = "void"
            invoice["status_transitions"]["voided_at"] = int(time.time())
            return invoice
        if action == "mark_uncollectible":
            if invoice["status"] != "open":
                raise _Refused(400, "Only open invoices can be marked uncollectible")
            invoice["status"] = "uncollectible"
            return invoice
        if action == "attach_payment":
            record = self._get(
                self.payment_records, params.get("payment_record", ""), "payment record"
            )
            if invoice["status"] not in {"open", "uncollectible"}:
                raise _Refused(400, "Payments can only be attached to open invoices")
            if any(
                p["payment"].get("payment_record") == record["id"]
                for p in self.invoice_payments.values()
            ):
                raise _Refused(400, "This payment record is already attached to an invoice")
            amount = record["amount"]["value"]
            attached = self._invoice_payment(
                invoice,
                {"type": "payment_record", "payment_record": record["id"]},
                amount,
                default=False,
            )
            self._pay(attached, amount)
            self._refresh(invoice)
            return invoice
        raise _Refused(404, f"Unknown action {action}")

    def _create_credit_note(self, params: dict[str, str]) -> dict[str, Any]:
        invoice = self.invoices.get(params.get("invoice", ""))
        if invoice is None or invoice["status"] not in {"open", "paid", "uncollectible"}:
            raise _Refused(400, "Credit notes can only be issued on open or paid invoices")
        lines = _indexed(params, "lines")
        total = sum(int(line["unit_amount"]) * int(line.get("quantity", "1")) for line in lines)
        credited = sum(
            n["total"]
            for n in self.credit_notes.values()
            if n["invoice"] == invoice["id"] and n["status"] == "issued"
        )
        if total <= 0 or total + credited > invoice["total"]:
            raise _Refused(400, "The credit note total is more than can be credited")
        return self.issue_credit_note(
            invoice,
            total,
            memo=params.get("memo", ""),
            out_of_band=int(params.get("out_of_band_amount", "0")),
            metadata=_nested(params, "metadata"),
            lines=lines,
        )

    def issue_credit_note(
        self,
        invoice: dict[str, Any],
        total: int,
        *,
        memo: str = "",
        out_of_band: int = 0,
        refund_pence: int = 0,
        metadata: dict[str, str] | None = None,
        lines: list[dict[str, str]] | None = None,
    ) -> dict[str, Any]:
        pre = min(total, invoice["amount_remaining"])
        post = total - pre
        refunds = []
        if refund_pence:
            intent = self._stripe_paid_intent(invoice["id"])
            refund = self._create_refund(
                {"payment_intent": intent, "amount": str(refund_pence)}, metadata={}
            )
            refunds.append(
                {"amount_refunded": refund_pence, "refund": refund["id"], "type": "refund"}
            )
        if post != out_of_band + refund_pence:
            raise _Refused(
                400,
                f"The post-payment amount ({post}) must equal refunds plus out_of_band_amount.",
            )
        note = {
            "id": self._new_id("cn"),
            "object": "credit_note",
            "invoice": invoice["id"],
            "customer": invoice["customer"],
            "number": f"CN-{next(self._ids):04d}",
            "status": "issued",
            "total": total,
            "subtotal": total,
            "amount": total,
            "memo": memo,
            "metadata": metadata or {},
            "pre_payment_amount": pre,
            "post_payment_amount": post,
            "out_of_band_amount": out_of_band or None,
            "refunds": refunds,
            "type": "pre_payment" if not post else "post_payment" if not pre else "mixed",
            "lines": {"object": "list", "data": lines or []},
            "created": int(time.time()),
            "voided_at": None,
        }
        self.credit_notes[note["id"]] = note
        self._refresh(invoice)
        return note

    def _report_payment(self, params: dict[str, str]) -> dict[str, Any]:
        for name in ("amount_requested[value]", "amount_requested[currency]", "initiated_at"):
            if name not in params:
                raise _Refused(400, f"Missing required param: {name}.", "parameter_missing")
        if params.get("payment_method_details[type]") != "custom":
            raise _Refused(400, "payment_method_details is required", "parameter_missing")
        record = {
            "id": self._new_id("prec"),
            "object": "payment_record",
            "amount": {
                "currency": params["amount_requested[currency]"],
                "value": int(params["amount_requested[value]"]),
            },
            "amount_requested": {
                "currency": params["amount_requested[currency]"],
                "value": int(params["amount_requested[value]"]),
            },
            "customer_details": {"customer": params.get("customer_details[customer]")},
            "description": params.get("description"),
            "metadata": _nested(params, "metadata"),
            "processor_details": {
                "type": "custom",
                "custom": {
                    "payment_reference": params.get("processor_details[custom][payment_reference]")
                },
            },
            "reported_by": "self",
            "created": int(time.time()),
        }
        self.payment_records[record["id"]] = record
        return record

    def _stripe_paid_intent(self, invoice_id: str) -> str:
        for payment in self.invoice_payments.values():
            if (
                payment["invoice"] == invoice_id
                and payment["status"] == "paid"
                and payment["payment"]["type"] == "payment_intent"
            ):
                return str(payment["payment"]["payment_intent"])
        raise _Refused(400, "Nothing on this invoice was paid through Stripe")

    def _create_refund(self, params: dict[str, str], *, metadata: dict[str, str]) -> dict[str, Any]:
        intent = self.payment_intents.get(params.get("payment_intent", ""))
        if intent is None:
            raise _Refused(400, "No such payment_intent", "resource_missing")
        amount = int(params.get("amount") or intent["amount_received"])
        refunded = sum(
            r["amount"]
            for r in self.refunds.values()
            if r["payment_intent"] == intent["id"] and r["status"] == "succeeded"
        )
        if amount + refunded > intent["amount_received"]:
            raise _Refused(400, "Refund amount is greater than unrefunded amount on charge")
        refund = {
            "id": self._new_id("re"),
            "object": "refund",
            "amount": amount,
            "currency": "gbp",
            "payment_intent": intent["id"],
            "charge": intent["latest_charge"],
            "status": "succeeded",
            "metadata": metadata,
            "created": int(time.time()),
        }
        self.refunds[refund["id"]] = refund
        return refund

    # What customers and finance staff do on Stripe's side -----------------------------------

    def pay_hosted(self, invoice_id: str, amount: int | None = None) -> dict[str, Any] | None:
        """Pay an open invoice (all of it, or ``amount``) as its hosted page would."""
        with self._lock:
            invoice = self.invoices[invoice_id]
            if invoice["status"] not in {"open", "uncollectible"}:
                return None
            amount = amount or invoice["amount_remaining"]
            intent_id = self._new_id("pi")
            self.payment_intents[intent_id] = {
                "id": intent_id,
                "object": "payment_intent",
                "amount_received": amount,
                "latest_charge": self._new_id("ch"),
            }
            payment = self._invoice_payment(
                invoice,
                {"type": "payment_intent", "payment_intent": intent_id},
                amount,
                default=False,
            )
            self._pay(payment, amount)
            self._refresh(invoice)
            snapshot = json.loads(json.dumps(payment)), json.loads(json.dumps(invoice))
        self.deliver("invoice_payment.paid", snapshot[0])
        if snapshot[1]["status"] == "paid":
            self.deliver("invoice.paid", snapshot[1])
        return snapshot[0]

    def dashboard_record_payment(self, invoice_id: str, amount: int) -> dict[str, Any]:
        """Record money paid outside Stripe from the Dashboard (a PaymentRecord, not ours)."""
        with self._lock:
            record = self._report_payment(
                {
                    "amount_requested[value]": str(amount),
                    "amount_requested[currency]": "gbp",
                    "initiated_at": str(int(time.time())),
                    "payment_method_details[type]": "custom",
                }
            )
            invoice = self._invoice_action(
                self.invoices[invoice_id], "attach_payment", {"payment_record": record["id"]}
            )
            payment = next(
                p
                for p in self.invoice_payments.values()
                if p["payment"].get("payment_record") == record["id"]
            )
            snapshot = json.loads(json.dumps(payment)), json.loads(json.dumps(invoice))
        self.deliver("invoice_payment.paid", snapshot[0])
        if snapshot[1]["status"] == "paid":
            self.deliver("invoice.paid", snapshot[1])
        return snapshot[0]

    def dashboard_refund(self, invoice_id: str, amount: int) -> dict[str, Any]:
        """Refund part of a Stripe payment from the Dashboard, without a credit note."""
        with self._lock:
            intent = self._stripe_paid_intent(invoice_id)
            refund = self._create_refund(
                {"payment_intent": intent, "amount": str(amount)}, metadata={}
            )
            charge = {
                "id": self.payment_intents[intent]["latest_charge"],
                "object": "charge",
                "payment_intent": intent,
                "amount_refunded": sum(
                    r["amount"] for r in self.refunds.values() if r["payment_intent"] == intent
                ),
                "refunded": False,
            }
        self.deliver("refund.created", refund)
        self.deliver("charge.refunded", charge)
        return refund

    def dashboard_credit_note(
        self, invoice_id: str, amount: int, *, refund: int = 0, out_of_band: int = 0, memo: str = ""
    ) -> dict[str, Any]:
        """Issue a credit note from the Dashboard (with a refund for its post-payment part)."""
        with self._lock:
            note = self.issue_credit_note(
                self.invoices[invoice_id],
                amount,
                memo=memo,
                out_of_band=out_of_band,
                refund_pence=refund,
            )
        self.deliver("credit_note.created", note)
        return note

    def dashboard_void_credit_note(self, note_id: str) -> dict[str, Any]:
        with self._lock:
            note = self.credit_notes[note_id]
            note["status"] = "void"
            note["voided_at"] = int(time.time())
            self._refresh(self.invoices[note["invoice"]])
        self.deliver("credit_note.voided", note)
        return note

    def dashboard_mark_uncollectible(self, invoice_id: str) -> dict[str, Any]:
        with self._lock:
            invoice = self.invoices[invoice_id]
            invoice["status"] = "uncollectible"
        self.deliver("invoice.marked_uncollectible", invoice)
        return invoice

    # The server -------------------------------------------------------------------------

    def dispatch(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        key: str | None,
        version: str | None,
    ) -> tuple[int, dict[str, Any], bool]:
        with self._lock:
            call = Call(method, path, params, key, version)
            self.calls.append(call)
            fingerprint = json.dumps([method, path, sorted(params.items())])
            if key and key in self._replies:
                stored_fingerprint, reply = self._replies[key]
                if stored_fingerprint != fingerprint:
                    return (
                        *_error(
                            400,
                            "idempotency_error",
                            "Keys for idempotent requests can only be used with the same "
                            "parameters they were first used with.",
                        ),
                        False,
                    )
                call.replayed = True
                return (*reply, True)
            failure = next((f for f in self._failures if _matches(f[0], method, path)), None)
            if failure is not None:
                self._failures.remove(failure)
                if failure[2]:
                    self.handle(method, path, params)
                reply = _error(failure[1], "api_error", "Simulated Stripe failure")
            else:
                reply = self.handle(method, path, params)
            # Stripe keeps the answer once the endpoint began, errors included; a request that
            # failed validation (missing parameters) is not kept.
            missing = reply[0] == 400 and reply[1]["error"].get("code") == "parameter_missing"
            if key and method == "POST" and not missing:
                self._replies[key] = (fingerprint, reply)
            return (*reply, False)


def _matches(fragment: str, method: str, path: str) -> bool:
    # "GET /v1/invoices" fails reads; a bare fragment fails only requests that change things.
    if fragment.startswith("GET "):
        return method == "GET" and fragment[4:] in path
    return method != "GET" and fragment in path


def _error(
    status: int, kind: str, message: str, code: str | None = None
) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"type": kind, "message": message, "code": code}}


def _nested(params: dict[str, str], name: str) -> dict[str, str]:
    prefix = f"{name}["
    return {
        k[len(prefix) : -1]: v for k, v in params.items() if k.startswith(prefix) and "][" not in k
    }


def _indexed(params: dict[str, str], name: str) -> list[dict[str, str]]:
    rows: dict[int, dict[str, str]] = {}
    for key, value in params.items():
        if key.startswith(f"{name}["):
            index, attr = key[len(name) + 1 :].rstrip("]").split("][", 1)
            rows.setdefault(int(index), {})[attr] = value
    return [rows[i] for i in sorted(rows)]


HOSTED_PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>Pay invoice</title></head><body><main>
<h1>Pay invoice {number}</h1><p id="amount">Amount due: {amount}</p><p id="status">{status}</p>
<form method="post" action="/hosted/{id}/pay"><button type="submit">Pay now</button></form>
</main></body></html>"""


def _handler(fake: FakeStripe) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return  # keep test output quiet

        def _send(
            self, status: int, body: bytes, content_type: str, replayed: bool = False
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Request-Id", f"req_{int(time.time() * 1000)}")
            if replayed:
                self.send_header("Idempotent-Replayed", "true")
            self.end_headers()
            self.wfile.write(body)

        def _api(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            url = urlparse(self.path)
            params = dict(parse_qsl(raw or url.query, keep_blank_values=True))
            status, body, replayed = fake.dispatch(
                method,
                url.path,
                params,
                self.headers.get("Idempotency-Key"),
                self.headers.get("Stripe-Version"),
            )
            self._send(status, json.dumps(body).encode(), "application/json", replayed)

        def do_GET(self) -> None:
            if self.path.startswith("/hosted/"):
                invoice = fake.invoices.get(self.path.split("/")[2])
                if invoice is None:
                    self._send(404, b"not found", "text/plain")
                    return
                page = HOSTED_PAGE.format(
                    number=invoice["metadata"].get("asye_number", invoice["id"]),
                    amount=f"£{invoice['amount_remaining'] / 100:,.2f}",
                    status=f"Status: {invoice['status']}",
                    id=invoice["id"],
                )
                self._send(200, page.encode(), "text/html; charset=utf-8")
                return
            self._api("GET")

        def do_DELETE(self) -> None:
            self._api("DELETE")

        def do_POST(self) -> None:
            if self.path.startswith("/hosted/") and self.path.endswith("/pay"):
                invoice_id = self.path.split("/")[2]
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode()) if length else {}
                amount = int(form["amount"][0]) if "amount" in form else None
                fake.pay_hosted(invoice_id, amount)
                self.send_response(303)
                self.send_header("Location", fake.return_url or f"/hosted/{invoice_id}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._api("POST")

    return Handler


class FakeStripeServer:
    """Run a FakeStripe on a free port in a background thread."""

    def __init__(self) -> None:
        self.fake = FakeStripe()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.fake))
        self.fake.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeStripe:
        self.thread.start()
        return self.fake

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
