"""A small local stand-in for the Stripe API: the HTTP shapes invoicing uses, nothing more.

It listens on 127.0.0.1, answers the stripe client's form-encoded requests with JSON
objects, replays the stored answer for a repeated Idempotency-Key (as Stripe does),
fails a request on command, and serves a hosted invoice page whose Pay button marks
the invoice paid and delivers a signed ``invoice.paid`` webhook.
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
from urllib.parse import parse_qsl, urlparse

import stripe


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, str]
    idempotency_key: str | None


@dataclass
class FakeStripe:
    webhook_secret: str = "whsec_test_fake"
    webhook_url: str | None = None
    return_url: str | None = None
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    credit_notes: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    _replies: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    _failures: list[tuple[str, int]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    # Control -------------------------------------------------------------------------

    def fail_next(self, path_fragment: str, status: int = 500) -> None:
        """Make the next request whose path contains ``path_fragment`` fail."""
        self._failures.append((path_fragment, status))

    def calls_to(self, fragment: str) -> list[Call]:
        """Return the POSTs whose path contains ``fragment`` (replays included)."""
        return [c for c in self.calls if fragment in c.path and c.method == "POST"]

    def event(self, type_: str, invoice_id: str, **changes: Any) -> tuple[str, str]:
        """Return (payload, Stripe-Signature header) for an event about an invoice."""
        invoice = {**self.invoices[invoice_id], **changes}
        body = {
            "id": f"evt_{next(self._ids)}",
            "object": "event",
            "type": type_,
            "created": int(time.time()),
            "data": {"object": invoice},
        }
        payload = json.dumps(body)
        header = stripe.WebhookSignature.generate_signature_header(payload, self.webhook_secret)
        return payload, header

    # Behaviour -----------------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):05d}"

    def _invoice_amount(self, invoice_id: str) -> int:
        total = sum(i["amount"] for i in self.items.values() if i["invoice"] == invoice_id)
        credited = sum(
            n["amount"] for n in self.credit_notes.values() if n["invoice"] == invoice_id
        )
        return total - credited

    def handle(self, method: str, path: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        parts = path.strip("/").split("/")
        if method == "POST" and path == "/v1/customers":
            customer = {"id": self._new_id("cus"), "object": "customer", **_plain(params)}
            self.customers[customer["id"]] = customer
            return 200, customer
        if method == "POST" and path == "/v1/invoices":
            if params.get("customer") not in self.customers:
                return _error(400, "invalid_request_error", "No such customer")
            invoice = {
                "id": self._new_id("in"),
                "object": "invoice",
                "status": "draft",
                "customer": params["customer"],
                "collection_method": params.get("collection_method"),
                "days_until_due": int(params.get("days_until_due", "0")),
                "currency": params.get("currency", "gbp"),
                "metadata": _nested(params, "metadata"),
                "custom_fields": _custom_fields(params),
                "payment_method_types": [
                    v
                    for k, v in params.items()
                    if k.startswith("payment_settings[payment_method_") and "types" in k
                ],
                "amount_due": 0,
                "amount_paid": 0,
                "paid_out_of_band": False,
                "hosted_invoice_url": None,
            }
            self.invoices[invoice["id"]] = invoice
            return 200, invoice
        if method == "POST" and path == "/v1/invoiceitems":
            invoice = self.invoices.get(params.get("invoice", ""))
            if invoice is None or invoice["status"] != "draft":
                return _error(400, "invalid_request_error", "Invoice is not a draft")
            item = {
                "id": self._new_id("ii"),
                "object": "invoiceitem",
                "invoice": invoice["id"],
                "amount": int(params["amount"]),
                "description": params.get("description", ""),
            }
            self.items[item["id"]] = item
            invoice["amount_due"] = self._invoice_amount(invoice["id"])
            return 200, item
        if method == "POST" and path == "/v1/credit_notes":
            invoice = self.invoices.get(params.get("invoice", ""))
            if invoice is None or invoice["status"] != "open":
                return _error(400, "invalid_request_error", "Invoice is not open")
            amount = sum(int(v) for k, v in params.items() if k.endswith("[unit_amount]"))
            note = {
                "id": self._new_id("cn"),
                "object": "credit_note",
                "invoice": invoice["id"],
                "amount": amount,
            }
            self.credit_notes[note["id"]] = note
            invoice["amount_due"] = self._invoice_amount(invoice["id"])
            return 200, note
        if method == "POST" and len(parts) == 4 and parts[1] == "invoices":
            invoice = self.invoices.get(parts[2])
            if invoice is None:
                return _error(404, "invalid_request_error", "No such invoice")
            return self._invoice_action(invoice, parts[3], params)
        if method == "DELETE" and len(parts) == 3 and parts[1] == "invoices":
            invoice = self.invoices.get(parts[2])
            if invoice is None:
                return _error(404, "invalid_request_error", "No such invoice", "resource_missing")
            if invoice["status"] != "draft":
                return _error(400, "invalid_request_error", "Only drafts can be deleted")
            del self.invoices[parts[2]]
            return 200, {"id": parts[2], "object": "invoice", "deleted": True}
        if method == "GET" and len(parts) == 3 and parts[1] == "invoices":
            invoice = self.invoices.get(parts[2])
            return (200, invoice) if invoice else _error(404, "invalid_request_error", "No such")
        return _error(404, "invalid_request_error", f"Unrecognised request URL {path}")

    def _invoice_action(
        self, invoice: dict[str, Any], action: str, params: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        if action == "finalize":
            if invoice["status"] != "draft":
                return _error(400, "invalid_request_error", "Invoice is already finalized")
            invoice["status"] = "open"
            invoice["hosted_invoice_url"] = f"{self.url}/hosted/{invoice['id']}"
            return 200, invoice
        if action == "send":
            if invoice["status"] != "open":
                return _error(400, "invalid_request_error", "Invoice is not open")
            invoice["sent"] = True
            return 200, invoice
        if action == "void":
            if invoice["status"] != "open":
                return _error(400, "invalid_request_error", "Only open invoices can be voided")
            invoice["status"] = "void"
            return 200, invoice
        if action == "pay":
            if invoice["status"] != "open":
                return _error(400, "invalid_request_error", "Invoice is not open")
            invoice["status"] = "paid"
            invoice["paid_out_of_band"] = params.get("paid_out_of_band") == "true"
            return 200, invoice
        return _error(404, "invalid_request_error", f"Unknown action {action}")

    def pay_hosted(self, invoice_id: str) -> None:
        """Pay an open invoice as its hosted page would, and deliver the webhook."""
        invoice = self.invoices[invoice_id]
        if invoice["status"] != "open":
            return
        invoice["status"] = "paid"
        invoice["amount_paid"] = invoice["amount_due"]
        invoice["amount_remaining"] = 0
        if self.webhook_url:
            payload, header = self.event("invoice.paid", invoice_id)
            request = urllib.request.Request(
                self.webhook_url,
                data=payload.encode(),
                headers={"Content-Type": "application/json", "Stripe-Signature": header},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                response.read()

    def dispatch(
        self, method: str, path: str, params: dict[str, str], key: str | None
    ) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.calls.append(Call(method, path, params, key))
            for index, (fragment, status) in enumerate(self._failures):
                if fragment in path:
                    del self._failures[index]
                    return _error(status, "api_error", "Simulated Stripe failure")
            if key and key in self._replies:
                return self._replies[key]
            reply = self.handle(method, path, params)
            if key and reply[0] < 500:
                self._replies[key] = reply
            return reply


def _error(
    status: int, kind: str, message: str, code: str | None = None
) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"type": kind, "message": message, "code": code}}


def _plain(params: dict[str, str]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if "[" not in k}


def _nested(params: dict[str, str], name: str) -> dict[str, str]:
    prefix = f"{name}["
    return {k[len(prefix) : -1]: v for k, v in params.items() if k.startswith(prefix)}


def _custom_fields(params: dict[str, str]) -> list[dict[str, str]]:
    fields: dict[str, dict[str, str]] = {}
    for key, value in params.items():
        if key.startswith("custom_fields["):
            index, attr = key[len("custom_fields[") :].rstrip("]").split("][")
            fields.setdefault(index, {})[attr] = value
    return [fields[i] for i in sorted(fields)]


HOSTED_PAGE = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>Pay invoice</title></head><body><main>
<h1>Pay invoice {number}</h1><p id="amount">Amount due: {amount}</p><p id="status">{status}</p>
<form method="post" action="/hosted/{id}/pay"><button type="submit">Pay now</button></form>
</main></body></html>"""


def _handler(fake: FakeStripe) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return  # keep test output quiet

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _api(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            url = urlparse(self.path)
            params = dict(parse_qsl(raw or url.query, keep_blank_values=True))
            status, body = fake.dispatch(
                method, url.path, params, self.headers.get("Idempotency-Key")
            )
            self._send(status, json.dumps(body).encode(), "application/json")

        def do_GET(self) -> None:
            if self.path.startswith("/hosted/"):
                invoice = fake.invoices.get(self.path.split("/")[2])
                if invoice is None:
                    self._send(404, b"not found", "text/plain")
                    return
                page = HOSTED_PAGE.format(
                    number=invoice["metadata"].get("asye_number", invoice["id"]),
                    amount=f"£{invoice['amount_due'] / 100:.2f}",
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
                fake.pay_hosted(invoice_id)
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
