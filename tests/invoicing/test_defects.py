"""One test per defect found in issue 12 (each failed against the code before the fix)."""

from __future__ import annotations

import csv
import io
import json
import re
import tomllib
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib.metadata import version

import pytest
import stripe
from flask import Flask
from flask.testing import FlaskClient
from pypdf import PdfReader
from sqlalchemy import func, select

from booking.config import ROOT
from booking.extensions import db
from booking.models import Employer, Programme, User
from invoicing import gateway, reports, services
from invoicing.models import Invoice, InvoiceStatus, Payment, PaymentMethod, WebhookEvent

from ..conftest import sign_in
from .fake_stripe import FakeStripe
from .test_billing import assert_ledger_adds_up

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _invoice(employer: Employer) -> Invoice:
    db.session.expire_all()
    return db.session.scalars(select(Invoice).where(Invoice.employer_id == employer.id)).one()


def _post(client: FlaskClient, payload: str, header: str) -> tuple[int, dict]:
    response = client.post(
        "/stripe/webhook",
        data=payload,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )
    return response.status_code, response.get_json()


def _pdf_text(client: FlaskClient, invoice: Invoice) -> str:
    body = client.get(f"/invoices/{invoice.id}.pdf").data
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(body)).pages)


def _csv_row(invoice: Invoice) -> dict[str, str]:
    rows = csv.DictReader(io.StringIO(reports.export_csv()))
    return next(r for r in rows if r["document"] == "invoice" and r["number"] == invoice.number)


# 1. Part-payments are invisible to Stripe -------------------------------------------------


def test_1_a_bank_transfer_lowers_what_stripe_asks_for(
    stripe_on: FakeStripe,
    client: FlaskClient,
    coordinator: User,
    contact_for: Callable[[Employer], User],
    programme: Programme,
    option2_employer: Callable[..., Employer],
) -> None:
    employer = option2_employer(1)
    services.run_billing(programme, now=NOW)
    invoice = _invoice(employer)
    sign_in(client, coordinator)
    recorded = client.post(
        f"/coordinator/invoices/{invoice.id}/payments",
        data={"amount": "100.00", "reference": "BACS-100", "paid_on": "2026-11-20"},
    )
    assert recorded.status_code == 302
    remote = stripe_on.invoices[invoice.stripe_invoice_id]
    assert remote["amount_remaining"] == 25000 and remote["amount_paid"] == 10000
    with urllib.request.urlopen(remote["hosted_invoice_url"], timeout=10) as page:
        assert "Amount due: £250.00" in page.read().decode()

    employer_client = sign_in(client.application.test_client(), contact_for(employer))
    page = employer_client.get(f"/employer/invoices/{invoice.id}")
    assert "Pay £250.00 online" in page.text

    # The employer pays what Stripe asks: £250, not £350.
    stripe_on.pay_hosted(invoice.stripe_invoice_id)
    assert _post(client, *stripe_on.event("invoice.paid", invoice.stripe_invoice_id))[0] == 200
    invoice = _invoice(employer)
    assert invoice.status is InvoiceStatus.PAID
    assert (invoice.paid_pence, invoice.balance_pence) == (35000, 0)
    assert sorted(p.amount_pence for p in invoice.payments) == [10000, 25000]
    assert _csv_row(invoice)["balance_pence"] == "0"
    assert_ledger_adds_up()


def test_1_money_received_twice_is_a_visible_refund_due_not_a_log_line(
    stripe_on: FakeStripe,
    client: FlaskClient,
    coordinator: User,
    programme: Programme,
    option2_employer: Callable[..., Employer],
) -> None:
    employer = option2_employer(1)
    services.run_billing(programme, now=NOW)
    invoice = _invoice(employer)
    # The employer paid online in full just before finance recorded its £100 transfer.
    stripe_on.pay_hosted(invoice.stripe_invoice_id)
    assert _post(client, *stripe_on.event("invoice.paid", invoice.stripe_invoice_id))[0] == 200
    services.record_payment(
        _invoice(employer),
        amount_pence=10000,
        reference="BACS-LATE",
        paid_on=NOW.date(),
        overpayment=True,
        now=NOW,
    )
    invoice = _invoice(employer)
    assert invoice.status is InvoiceStatus.OVERPAID
    assert invoice.balance_pence == -10000
    sign_in(client, coordinator)
    page = client.get(f"/coordinator/invoices/{invoice.id}")
    assert re.search(r'id="balance-label">Refund due<.*?id="balance">£100.00<', page.text, re.S)
    assert "Record refund" in page.text
    assert _csv_row(invoice)["balance_pence"] == "-10000"
    assert "Refund due" in _pdf_text(client, invoice) and "£100.00" in _pdf_text(client, invoice)
    listing = client.get("/coordinator/invoices")
    assert 'id="due-back-total">£100.00<' in listing.text
    assert_ledger_adds_up()


# 2. invoice.paid trusted whatever the amount ----------------------------------------------


def test_2_an_invoice_paid_event_for_less_than_the_balance_is_a_part_payment(
    stripe_on: FakeStripe,
    client: FlaskClient,
    programme: Programme,
    option2_employer: Callable[..., Employer],
) -> None:
    employer = option2_employer(2)
    services.run_billing(programme, now=NOW)
    sid = _invoice(employer).stripe_invoice_id
    stripe_on.pay_hosted(sid, 100)
    status, body = _post(
        client, *stripe_on.event("invoice.paid", sid, status="paid", amount_paid=100)
    )
    assert status == 200
    assert body["outcome"] == "part-payment of £1.00; £699.00 still owed"
    invoice = _invoice(employer)
    assert invoice.status is InvoiceStatus.ISSUED
    assert invoice.balance_pence == 69900
    # Still chased when overdue.
    assert services.send_reminders(now=NOW + timedelta(days=40)) == 1
    assert_ledger_adds_up()


def test_2_an_event_claiming_money_stripe_does_not_have_records_nothing(
    stripe_on: FakeStripe,
    client: FlaskClient,
    programme: Programme,
    option2_employer: Callable[..., Employer],
) -> None:
    employer = option2_employer(2)
    services.run_billing(programme, now=NOW)
    sid = _invoice(employer).stripe_invoice_id
    status, body = _post(
        client, *stripe_on.event("invoice.paid", sid, status="paid", amount_paid=70000)
    )
    assert (status, body["outcome"]) == (200, "already recorded: no new payment")
    invoice = _invoice(employer)
    assert invoice.status is InvoiceStatus.ISSUED and invoice.balance_pence == 70000


# 3. API version drift ------------------------------------------------------------------------


def test_3_stripe_is_pinned_in_pyproject_to_the_release_whose_version_the_code_uses() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [d for d in dependencies if d.startswith("stripe")]
    assert pin == f"stripe=={version('stripe')}"
    assert stripe.api_version == gateway.API_VERSION


def test_3_a_bank_transfer_in_stripes_current_shape_is_not_counted_again(
    stripe_on: FakeStripe,
    client: FlaskClient,
    programme: Programme,
    option2_employer: Callable[..., Employer],
) -> None:
    """amount_paid now includes money paid outside Stripe, and paid_out_of_band is gone."""
    employer = option2_employer(1)
    services.run_billing(programme, now=NOW)
    invoice = _invoice(employer)
    services.record_payment(invoice, amount_pence=35000, reference="BACS-77", paid_on=NOW.date())
    remote = stripe_on.invoices[invoice.stripe_invoice_id]
    assert remote["status"] == "paid" and remote["amount_paid"] == 35000
    assert "paid_out_of_band" not in remote
    assert _post(client, *stripe_on.event("invoice.paid", invoice.stripe_invoice_id))[0] == 200
    invoice = _invoice(employer)
    assert [(p.method, p.amount_pence) for p in invoice.payments] == [
        (PaymentMethod.BANK_TRANSFER, 35000)
    ]
    assert invoice.balance_pence == 0
    assert_ledger_adds_up()


# 4 (idempotency keys) is in test_stripe.py: a fresh key after a stored 5xx, and two
# deployments sharing one Stripe account.

# 5. Events not handled -------------------------------------------------------------------------


@pytest.fixture
def webhook_live(app: Flask, stripe_on: FakeStripe):
    """Deliver the fake's events to the app through a real threaded HTTP server."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stripe_on.webhook_url = f"http://127.0.0.1:{server.server_port}/stripe/webhook"
    yield stripe_on
    server.shutdown()
    thread.join(timeout=5)


def _issue_and_pay(
    programme: Programme, option2_employer: Callable[..., Employer], fake: FakeStripe
) -> int:
    employer = option2_employer(1)
    services.run_billing(programme, now=NOW)
    invoice_id = _invoice(employer).id
    sid = db.session.get_one(Invoice, invoice_id).stripe_invoice_id
    db.session.remove()
    fake.pay_hosted(sid)
    return invoice_id


def test_5_refunds_made_in_stripe_are_recorded_once(
    webhook_live: FakeStripe, programme: Programme, option2_employer: Callable[..., Employer]
) -> None:
    invoice_id = _issue_and_pay(programme, option2_employer, webhook_live)
    sid = db.session.get_one(Invoice, invoice_id).stripe_invoice_id
    db.session.remove()
    webhook_live.dashboard_refund(sid, 5000)  # refund.created and charge.refunded
    assert [status for _, status in webhook_live.delivered] == [200] * 4
    invoice = db.session.get_one(Invoice, invoice_id)
    assert [r.amount_pence for r in invoice.refunds] == [5000]
    assert invoice.balance_pence == 5000 and invoice.status is InvoiceStatus.ISSUED
    assert_ledger_adds_up()


def test_5_credit_notes_made_and_voided_in_the_dashboard_are_followed(
    webhook_live: FakeStripe, programme: Programme, option2_employer: Callable[..., Employer]
) -> None:
    employer = option2_employer(2)
    services.run_billing(programme, now=NOW)
    invoice_id = _invoice(employer).id
    sid = db.session.get_one(Invoice, invoice_id).stripe_invoice_id
    db.session.remove()
    note = webhook_live.dashboard_credit_note(sid, 35000, memo="Goodwill")
    invoice = db.session.get_one(Invoice, invoice_id)
    (ours,) = invoice.credit_notes
    assert (ours.total_pence, ours.reason, ours.number) == (35000, "Goodwill", "ASYE-CN-2026-0001")
    assert invoice.balance_pence == 35000 == webhook_live.invoices[sid]["amount_remaining"]
    db.session.remove()
    webhook_live.dashboard_void_credit_note(note["id"])
    invoice = db.session.get_one(Invoice, invoice_id)
    assert invoice.credit_notes[0].voided_at is not None
    assert invoice.balance_pence == 70000 == webhook_live.invoices[sid]["amount_remaining"]
    assert_ledger_adds_up()


def test_5_a_credit_note_with_a_refund_made_in_stripe_records_both_once(
    webhook_live: FakeStripe, programme: Programme, option2_employer: Callable[..., Employer]
) -> None:
    invoice_id = _issue_and_pay(programme, option2_employer, webhook_live)
    sid = db.session.get_one(Invoice, invoice_id).stripe_invoice_id
    db.session.remove()
    webhook_live.dashboard_credit_note(sid, 35000, refund=35000, memo="Left in week one")
    invoice = db.session.get_one(Invoice, invoice_id)
    assert invoice.credited_pence == 35000 and invoice.refunded_pence == 35000
    assert invoice.balance_pence == 0 and invoice.status is InvoiceStatus.PAID
    assert invoice.state_label == "Credited"
    assert_ledger_adds_up()


def test_5_marked_uncollectible_in_stripe_stops_reminders(
    webhook_live: FakeStripe, programme: Programme, option2_employer: Callable[..., Employer]
) -> None:
    employer = option2_employer(1)
    services.run_billing(programme, now=NOW)
    invoice_id = _invoice(employer).id
    sid = db.session.get_one(Invoice, invoice_id).stripe_invoice_id
    db.session.remove()
    webhook_live.dashboard_mark_uncollectible(sid)
    invoice = db.session.get_one(Invoice, invoice_id)
    assert invoice.status is InvoiceStatus.UNCOLLECTIBLE
    assert invoice.balance_pence == 35000
    assert services.send_reminders(now=NOW + timedelta(days=40)) == 0


def test_5_invoice_payment_paid_records_a_part_payment_made_on_the_hosted_page(
    webhook_live: FakeStripe, programme: Programme, option2_employer: Callable[..., Employer]
) -> None:
    employer = option2_employer(2)
    services.run_billing(programme, now=NOW)
    invoice_id = _invoice(employer).id
    sid = db.session.get_one(Invoice, invoice_id).stripe_invoice_id
    db.session.remove()
    webhook_live.pay_hosted(sid, 20000)  # only invoice_payment.paid: the invoice is not paid
    assert [t for t, _ in webhook_live.delivered] == ["invoice_payment.paid"]
    invoice = db.session.get_one(Invoice, invoice_id)
    assert [(p.method, p.amount_pence) for p in invoice.payments] == [(PaymentMethod.STRIPE, 20000)]
    assert invoice.balance_pence == 50000 == webhook_live.invoices[sid]["amount_remaining"]
    assert invoice.state_label == "Part paid"


def test_5_unknown_event_types_are_recorded_and_ignored(
    stripe_on: FakeStripe, client: FlaskClient
) -> None:
    status, body = _post(
        client, *stripe_on.event_for("customer.updated", {"id": "cus_1", "object": "customer"})
    )
    assert (status, body["outcome"]) == (200, "no matching invoice")
    assert db.session.scalar(select(func.count()).select_from(WebhookEvent)) == 1


# 6. Credits against part-paid invoices -------------------------------------------------------


def test_6_crediting_a_part_paid_invoice_shows_a_refund_due_that_can_be_refunded(
    client: FlaskClient,
    coordinator: User,
    programme: Programme,
    option2_employer: Callable[..., Employer],
) -> None:
    employer = option2_employer(1)
    services.run_billing(programme, now=NOW)
    invoice = _invoice(employer)
    services.record_payment(invoice, amount_pence=10000, reference="BACS-1", paid_on=NOW.date())
    services.credit_invoice(_invoice(employer), [invoice.lines[0].id], "Withdrew", now=NOW)
    invoice = _invoice(employer)
    assert invoice.status is InvoiceStatus.OVERPAID
    assert invoice.state_label == "Refund due"
    assert invoice.balance_pence == -10000
    (row,) = reports.ledger()
    assert row.balance_pence == -10000

    sign_in(client, coordinator)
    page = client.get(f"/coordinator/invoices/{invoice.id}")
    assert "Refund due" in page.text and "Still owed" not in page.text
    refunded = client.post(
        f"/coordinator/invoices/{invoice.id}/refunds",
        data={
            "amount": "100.00",
            "method": "bank_transfer",
            "reference": "REF-9",
            "refunded_on": "2026-11-23",
        },
    )
    assert refunded.status_code == 302, refunded.text
    invoice = _invoice(employer)
    assert invoice.status is InvoiceStatus.PAID
    assert (invoice.credited_pence, invoice.paid_pence, invoice.refunded_pence) == (
        35000,
        10000,
        10000,
    )
    assert invoice.balance_pence == 0
    assert_ledger_adds_up()


# 7. Billing runs -----------------------------------------------------------------------------------


def test_7_the_billing_form_defaults_to_the_programme_with_nqsws_and_previews_first(
    client: FlaskClient,
    coordinator: User,
    make_programme: Callable[..., Programme],
    programme: Programme,
    option2_employer: Callable[..., Employer],
) -> None:
    option2_employer(2)  # on ``programme``
    newest = make_programme(
        name="Next Year",
        starts_on=programme.starts_on.replace(year=programme.starts_on.year + 1),
        ends_on=programme.ends_on.replace(year=programme.ends_on.year + 1),
    )
    sign_in(client, coordinator)
    page = client.get("/coordinator/invoices")
    assert re.search(rf'<option value="{programme.id}" selected>', page.text)
    assert not re.search(rf'<option value="{newest.id}" selected>', page.text)

    # A post straight to the run (the old form) issues nothing: it shows the preview.
    straight = client.post("/coordinator/invoices/run", data={"programme_id": programme.id})
    assert straight.status_code == 400
    assert db.session.scalar(select(func.count()).select_from(Invoice)) == 0
    assert "£700.00" in straight.text and "NQSW 1 of" in straight.text

    preview = client.get(f"/coordinator/invoices/run?programme_id={programme.id}")
    fingerprint = re.search(r'name="fingerprint" value="([0-9a-f]+)"', preview.text).group(1)
    done = client.post(
        "/coordinator/invoices/run", data={"programme_id": programme.id, "fingerprint": fingerprint}
    )
    assert done.status_code == 302
    assert done.headers["Location"].endswith(f"/coordinator/invoices?programme_id={programme.id}")
    after = client.get(done.headers["Location"])
    assert re.search(rf'<option value="{programme.id}" selected>', after.text)
    assert db.session.scalar(select(func.count()).select_from(Invoice)) == 1


def test_7_a_preview_confirmed_after_things_changed_issues_nothing(
    client: FlaskClient,
    coordinator: User,
    programme: Programme,
    option2_employer: Callable[..., Employer],
) -> None:
    option2_employer(1)
    sign_in(client, coordinator)
    preview = client.get(f"/coordinator/invoices/run?programme_id={programme.id}")
    fingerprint = re.search(r'name="fingerprint" value="([0-9a-f]+)"', preview.text).group(1)
    option2_employer(1, po_required=True, po_number="")
    option2_employer(3)
    stale = client.post(
        "/coordinator/invoices/run", data={"programme_id": programme.id, "fingerprint": fingerprint}
    )
    assert stale.status_code == 409 and "changed since you looked" in stale.text
    assert db.session.scalar(select(func.count()).select_from(Invoice)) == 0
    assert "needs a purchase order number" in stale.text  # the new preview says who is skipped


# 8. Small things -------------------------------------------------------------------------------------


def test_8_the_pdf_has_bank_details_and_no_online_link_when_stripe_is_off(
    app: Flask,
    client: FlaskClient,
    coordinator: User,
    programme: Programme,
    option2_employer: Callable[..., Employer],
) -> None:
    app.config.update(
        INVOICE_BANK_PAYEE="Test NHS Trust",
        INVOICE_BANK_SORT_CODE="60-16-13",
        INVOICE_BANK_ACCOUNT_NUMBER="31926819",
    )
    employer = option2_employer(1)
    services.run_billing(programme, now=NOW)
    sign_in(client, coordinator)
    text = _pdf_text(client, _invoice(employer))
    assert "online" not in text.lower() and "link" not in text.lower()
    for expected in (
        "Payee: Test NHS Trust",
        "Sort code: 60-16-13",
        "Account number: 31926819",
        "Reference: ASYE-2026-0001",
    ):
        assert expected in text, expected


def test_8_amounts_with_more_than_two_decimals_are_refused(
    client: FlaskClient,
    coordinator: User,
    programme: Programme,
    option2_employer: Callable[..., Employer],
) -> None:
    employer = option2_employer(2)
    services.run_billing(programme, now=NOW)
    invoice = _invoice(employer)
    sign_in(client, coordinator)
    for typed in ("500.005", "1e3", "12,34", "-5", "£"):
        response = client.post(
            f"/coordinator/invoices/{invoice.id}/payments",
            data={"amount": typed, "reference": "BACS", "paid_on": "2026-11-20"},
        )
        assert response.status_code == 400, typed
        assert "at most two" in response.text or "more than £0" in response.text, typed
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 0
    ok = client.post(
        f"/coordinator/invoices/{invoice.id}/payments",
        data={
            "amount": "£1,000.5",
            "reference": "BACS",
            "paid_on": "2026-11-20",
            "overpayment": "y",
        },
    )
    assert ok.status_code == 302
    assert _invoice(employer).paid_pence == 100050


def test_8_the_billing_message_has_one_full_stop_and_the_page_unique_ids(
    client: FlaskClient,
    coordinator: User,
    programme: Programme,
    option2_employer: Callable[..., Employer],
) -> None:
    option2_employer(1, po_required=True, po_number="", name="Needs PO Council")
    option2_employer(1)
    report = services.run_billing(programme, now=NOW)
    assert ".." not in report.summary()
    assert report.summary().endswith("before invoicing.")
    invoice = db.session.scalars(select(Invoice)).one()
    sign_in(client, coordinator)
    page = client.get(f"/coordinator/invoices/{invoice.id}").text
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert [i for i in set(ids) if ids.count(i) > 1] == []


# Signed but malformed webhook bodies --------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "{not json",
        "[1, 2]",
        '{"type": "invoice.paid", "data": {"object": {"object": "invoice", "id": "in_1"}}}',
        '{"id": "evt_1", "type": "invoice.paid", "data": {"object": "in_1"}}',
        '{"id": "evt_1", "type": "invoice.paid", "data": {"object": {"object": "invoice"}}}',
        '{"id": "evt_1", "type": "refund.created", "data": {"object": {"object": "refund", "id": "re_1", "amount": "12", "status": "succeeded"}}}',
        '{"id": 7, "type": "invoice.paid", "data": {"object": {"object": "invoice", "id": "in_1"}}}',
    ],
)
def test_signed_but_malformed_bodies_answer_400_with_a_message_and_change_nothing(
    stripe_on: FakeStripe, client: FlaskClient, body: str
) -> None:
    header = stripe.WebhookSignature.generate_signature_header(body, stripe_on.webhook_secret)
    status, answer = _post(client, body, header)
    assert status == 400
    assert answer["error"] == "MalformedEvent" and answer["message"]
    assert db.session.scalar(select(func.count()).select_from(WebhookEvent)) == 0


def test_a_webhook_arriving_while_stripe_cannot_be_asked_is_answered_503_and_kept_for_later(
    stripe_on: FakeStripe,
    client: FlaskClient,
    programme: Programme,
    option2_employer: Callable[..., Employer],
) -> None:
    employer = option2_employer(1)
    services.run_billing(programme, now=NOW)
    sid = _invoice(employer).stripe_invoice_id
    stripe_on.pay_hosted(sid)
    event = stripe_on.event("invoice.paid", sid)
    stripe_on.fail_next("GET /v1/invoice_payments", 500)
    status, body = _post(client, *event)
    assert status == 503 and body["error"] == "StripeUnavailable"
    assert db.session.scalar(select(func.count()).select_from(WebhookEvent)) == 0
    assert _post(client, *event) == (200, {"outcome": "paid: £350.00"})
    assert json.loads(event[0])["id"] == db.session.scalars(select(WebhookEvent.event_id)).one()
