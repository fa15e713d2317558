"""Stripe Invoicing against the local fake server, and signed webhooks."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

from flask.testing import FlaskClient
from sqlalchemy import func, select

from booking.extensions import db
from booking.models import Employer, OutboxMessage, Programme
from invoicing import gateway, services, stripe_sync
from invoicing.models import (
    BilledEnrolment,
    GatewayState,
    Invoice,
    InvoiceStatus,
    InvoicingSetting,
    Payment,
    PaymentMethod,
    StripeCustomer,
    WebhookEvent,
)

from .fake_stripe import FakeStripe
from .test_billing import assert_ledger_adds_up

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _only_invoice(employer: Employer) -> Invoice:
    return db.session.scalars(select(Invoice).where(Invoice.employer_id == employer.id)).one()


def _post(client: FlaskClient, payload: str, header: str) -> tuple[int, dict]:
    response = client.post(
        "/stripe/webhook",
        data=payload,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )
    return response.status_code, response.get_json()


def test_issue_creates_customer_items_and_a_sent_invoice_with_po_and_payment_methods(
    stripe_on: FakeStripe, programme: Programme, option2_employer: Callable[..., Employer]
) -> None:
    employer = option2_employer(2)
    report = services.run_billing(programme, now=NOW)
    assert report.stripe_errors == []
    invoice = _only_invoice(employer)
    assert invoice.gateway_state is GatewayState.SYNCED
    remote = stripe_on.invoices[invoice.stripe_invoice_id]
    assert remote["status"] == "open" and remote["sent"] is True
    assert remote["collection_method"] == "send_invoice"
    assert remote["days_until_due"] == 30
    assert remote["custom_fields"] == [{"name": "PO number", "value": "PO-4471"}]
    assert set(remote["payment_settings"]["payment_method_types"]) == {"card", "customer_balance"}
    assert remote["metadata"]["asye_invoice_id"] == str(invoice.id)
    assert remote["amount_due"] == remote["amount_remaining"] == invoice.total_pence == 70000
    assert invoice.hosted_invoice_url == f"{stripe_on.url}/hosted/{invoice.stripe_invoice_id}"
    assert len(stripe_on.customers) == 1
    # Every change carries an idempotency key namespaced by this deployment.
    deployment = stripe_sync.deployment_id()
    posts = [c for c in stripe_on.calls if c.method == "POST"]
    assert posts and all(c.idempotency_key.startswith(f"asye-{deployment}-") for c in posts)


def test_every_request_sends_the_pinned_api_version(
    stripe_on: FakeStripe, programme: Programme, option2_employer: Callable[..., Employer]
) -> None:
    import stripe

    # The installed package's own default is the version the code is written against.
    assert stripe.api_version == gateway.API_VERSION == "2026-10-28.endive"
    option2_employer(1)
    services.run_billing(programme, now=NOW)
    assert stripe_on.calls
    assert {c.stripe_version for c in stripe_on.calls} == {gateway.API_VERSION}


def test_the_fake_models_invoices_without_the_fields_basil_removed(
    stripe_on: FakeStripe, programme: Programme, option2_employer: Callable[..., Employer]
) -> None:
    employer = option2_employer(1)
    services.run_billing(programme, now=NOW)
    remote = stripe_on.invoices[_only_invoice(employer).stripe_invoice_id]
    for removed in ("paid_out_of_band", "paid", "charge", "payment_intent"):
        assert removed not in remote
    for field in ("amount_paid", "amount_remaining", "amount_overpaid"):
        assert isinstance(remote[field], int)


def test_stripe_failure_halfway_leaves_a_state_that_a_retry_completes(
    stripe_on: FakeStripe,
    programme: Programme,
    option2_employer: Callable[..., Employer],
    runner,
) -> None:
    employer = option2_employer(3)
    stripe_on.fail_next("/v1/invoiceitems")
    report = services.run_billing(programme, now=NOW)
    assert len(report.stripe_errors) == 1
    invoice = _only_invoice(employer)
    # Our invoice is issued and numbered whatever Stripe did.
    assert invoice.status is InvoiceStatus.ISSUED and invoice.number == "ASYE-2026-0001"
    assert invoice.gateway_state is GatewayState.PENDING
    assert "Simulated Stripe failure" in invoice.gateway_error
    assert invoice.stripe_invoice_id is not None
    assert stripe_on.invoices[invoice.stripe_invoice_id]["status"] == "draft"

    stripe_on.fail_next("/finalize")
    assert stripe_sync.sync_stripe().failed == 1
    assert invoice.gateway_state is GatewayState.PENDING

    result = runner.invoke(args=["invoicing", "sync"])
    assert result.exit_code == 0, result.output
    db.session.refresh(invoice)
    assert invoice.gateway_state is GatewayState.SYNCED
    assert invoice.gateway_error == ""
    remote = stripe_on.invoices[invoice.stripe_invoice_id]
    assert remote["status"] == "open" and remote.get("sent") is True
    assert len(stripe_on.invoices) == 1
    assert len(stripe_on.customers) == 1
    assert len(stripe_on.items) == 3
    assert remote["amount_due"] == 105000


def test_a_stored_5xx_is_not_replayed_for_a_day_the_retry_uses_a_fresh_key(
    stripe_on: FakeStripe, programme: Programme, option2_employer: Callable[..., Employer]
) -> None:
    """Defect 4: Stripe replays a stored 500 for the same key; the retry must not reuse it."""
    employer = option2_employer(1)
    stripe_on.fail_next("/finalize")
    services.run_billing(programme, now=NOW)
    invoice = _only_invoice(employer)
    assert invoice.gateway_state is GatewayState.PENDING
    first = stripe_on.calls_to("/finalize")[-1].idempotency_key

    assert stripe_sync.sync_stripe().synced == 1
    retry = stripe_on.calls_to("/finalize")[-1]
    assert retry.idempotency_key == f"{first}-r1" and not retry.replayed
    assert stripe_on.invoices[invoice.stripe_invoice_id]["status"] == "open"


def test_a_create_that_succeeded_behind_an_error_is_found_by_metadata_not_made_twice(
    stripe_on: FakeStripe, programme: Programme, option2_employer: Callable[..., Employer]
) -> None:
    employer = option2_employer(2)
    # Stripe made the invoice but the answer was an error: the retry must adopt it.
    stripe_on.fail_next("/v1/invoices", after_effect=True)
    stripe_on.fail_next("/v1/invoiceitems", after_effect=True)
    services.run_billing(programme, now=NOW)
    stripe_sync.sync_stripe()
    stripe_sync.sync_stripe()
    invoice = _only_invoice(employer)
    assert invoice.gateway_state is GatewayState.SYNCED
    assert len(stripe_on.invoices) == 1
    assert len(stripe_on.items) == 2
    assert stripe_on.invoices[invoice.stripe_invoice_id]["amount_due"] == 70000


def test_two_deployments_sharing_a_stripe_account_do_not_collide(
    app,
    stripe_on: FakeStripe,
    programme: Programme,
    option2_employer: Callable[..., Employer],
) -> None:
    """Defect 4: ids alone (asye-invoice-1-create) collide across deployments."""
    employer = option2_employer(1)
    app.config["STRIPE_DEPLOYMENT_ID"] = "staging"
    services.run_billing(programme, now=NOW)
    staging = _only_invoice(employer)
    staging_sid = staging.stripe_invoice_id
    # Production: the same database ids, another deployment id, the same Stripe account.
    services.void_invoice(staging, "Staging test")
    db.session.execute(
        Invoice.__table__.update().where(Invoice.id == staging.id).values(stripe_invoice_id=None)
    )
    db.session.execute(StripeCustomer.__table__.delete())
    db.session.commit()
    app.config["STRIPE_DEPLOYMENT_ID"] = "production"
    services.run_billing(programme, now=NOW)
    production = db.session.scalars(
        select(Invoice).where(Invoice.status == InvoiceStatus.ISSUED)
    ).one()
    assert production.stripe_invoice_id not in (None, staging_sid)
    assert len(stripe_on.customers) == 2
    keys = [c.idempotency_key for c in stripe_on.calls if c.idempotency_key]
    assert any(k.startswith("asye-staging-") for k in keys)
    assert any(k.startswith("asye-production-") for k in keys)
    assert not [c for c in stripe_on.calls if c.replayed]


def test_deployment_id_defaults_to_one_stored_in_the_database(app) -> None:
    first = stripe_sync.deployment_id()
    assert len(first) == 12 and stripe_sync.deployment_id() == first
    assert db.session.get(InvoicingSetting, "deployment_id").value == first


def test_webhooks_apply_once_in_any_order(
    stripe_on: FakeStripe,
    client: FlaskClient,
    programme: Programme,
    option2_employer: Callable[..., Employer],
) -> None:
    employer = option2_employer(2)
    services.run_billing(programme, now=NOW)
    invoice = _only_invoice(employer)
    sid = invoice.stripe_invoice_id
    stripe_on.pay_hosted(sid)  # no webhook URL: the events are delivered by hand below

    # Paid arrives before finalized, twice.
    paid = stripe_on.event("invoice.paid", sid)
    assert _post(client, *paid) == (200, {"outcome": "paid: £700.00"})
    assert _post(client, *paid) == (200, {"outcome": "duplicate"})
    late_finalized = stripe_on.event("invoice.finalized", sid)
    assert _post(client, *late_finalized)[0] == 200
    failed = stripe_on.event("invoice.payment_failed", sid)
    assert _post(client, *failed)[1]["outcome"].startswith("ignored")
    voided = stripe_on.event("invoice.voided", sid, status="void")
    assert _post(client, *voided)[1]["outcome"].startswith("ignored")
    # A second, different paid event (Stripe retries with a new id) adds no money.
    paid_again = stripe_on.event("invoice.paid", sid)
    assert _post(client, *paid_again)[1]["outcome"].startswith("already recorded")
    (payment,) = [p for p in stripe_on.invoice_payments.values() if p["status"] == "paid"]
    assert _post(client, *stripe_on.event_for("invoice_payment.paid", payment))[1][
        "outcome"
    ].startswith("already recorded")

    db.session.refresh(invoice)
    assert invoice.status is InvoiceStatus.PAID
    assert [(p.method, p.amount_pence) for p in invoice.payments] == [(PaymentMethod.STRIPE, 70000)]
    assert db.session.scalar(select(func.count()).select_from(WebhookEvent)) == 6
    assert (
        db.session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.kind == "invoice_paid")
        )
        == 1
    )
    assert_ledger_adds_up()


def test_voided_then_paid_out_of_order_keeps_void_and_releases_nqsws(
    stripe_on: FakeStripe,
    client: FlaskClient,
    programme: Programme,
    option2_employer: Callable[..., Employer],
) -> None:
    employer = option2_employer(1)
    services.run_billing(programme, now=NOW)
    invoice = _only_invoice(employer)
    sid = invoice.stripe_invoice_id
    failed = stripe_on.event("invoice.payment_failed", sid)
    assert _post(client, *failed)[1] == {"outcome": "payment failure noted"}
    assert _post(client, *stripe_on.event("invoice.voided", sid, status="void"))[0] == 200
    assert _post(client, *stripe_on.event("invoice.finalized", sid))[0] == 200
    assert _post(client, *stripe_on.event("invoice.paid", sid))[1]["outcome"].startswith(
        "already recorded"
    )
    db.session.refresh(invoice)
    assert invoice.status is InvoiceStatus.VOID
    assert invoice.payment_failed_at is not None
    assert db.session.scalar(select(func.count()).select_from(BilledEnrolment)) == 0
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 0


def test_bad_signature_is_refused_and_changes_nothing(
    stripe_on: FakeStripe,
    client: FlaskClient,
    programme: Programme,
    option2_employer: Callable[..., Employer],
) -> None:
    employer = option2_employer(1)
    services.run_billing(programme, now=NOW)
    invoice = _only_invoice(employer)
    payload, header = stripe_on.event("invoice.paid", invoice.stripe_invoice_id, amount_paid=35000)
    tampered = json.loads(payload)
    tampered["data"]["object"]["amount_paid"] = 1
    status, body = _post(client, json.dumps(tampered), header)
    assert status == 400 and body["error"] == "BadSignature"
    assert _post(client, payload, "t=1,v1=deadbeef")[0] == 400
    assert client.post("/stripe/webhook", data=payload).status_code == 400
    assert db.session.scalar(select(func.count()).select_from(WebhookEvent)) == 0
    db.session.refresh(invoice)
    assert invoice.status is InvoiceStatus.ISSUED


def test_without_stripe_keys_nothing_is_sent(
    app, programme: Programme, option2_employer: Callable[..., Employer], client: FlaskClient
) -> None:
    employer = option2_employer(1)
    services.run_billing(programme, now=NOW)
    invoice = _only_invoice(employer)
    assert invoice.gateway_state is GatewayState.LOCAL
    assert invoice.hosted_invoice_url == ""
    assert stripe_sync.sync_stripe().synced == 0
    assert client.post("/stripe/webhook", data="{}").status_code == 400


def test_credit_and_void_while_stripe_is_behind_are_finished_by_a_retry(
    stripe_on: FakeStripe, programme: Programme, option2_employer: Callable[..., Employer]
) -> None:
    credited, voided = option2_employer(2), option2_employer(1)
    stripe_on.fail_next("/finalize")
    stripe_on.fail_next("/finalize")
    report = services.run_billing(programme, now=NOW)
    assert len(report.stripe_errors) == 2
    to_credit, to_void = _only_invoice(credited), _only_invoice(voided)
    draft_id = to_void.stripe_invoice_id
    assert stripe_on.invoices[draft_id]["status"] == "draft"

    services.credit_invoice(to_credit, [to_credit.lines[0].id], "Withdrawn", now=NOW)
    services.void_invoice(to_void, "Raised in error")
    assert to_credit.gateway_state is GatewayState.SYNCED  # the retry ran after the change
    remote = stripe_on.invoices[to_credit.stripe_invoice_id]
    assert remote["status"] == "open" and remote["amount_remaining"] == 35000
    assert to_void.gateway_state is GatewayState.SYNCED
    assert draft_id not in stripe_on.invoices  # the draft never sent is deleted
    assert len(stripe_on.calls_to("/v1/customers")) == 2
    assert_ledger_adds_up()


def test_credit_note_reduces_what_stripe_collects_and_void_reaches_stripe(
    stripe_on: FakeStripe,
    client: FlaskClient,
    programme: Programme,
    option2_employer: Callable[..., Employer],
) -> None:
    employer = option2_employer(2)
    other = option2_employer(1)
    services.run_billing(programme, now=NOW)
    invoice = _only_invoice(employer)
    services.credit_invoice(invoice, [invoice.lines[0].id], "Withdrawn", now=NOW)
    remote = stripe_on.invoices[invoice.stripe_invoice_id]
    assert remote["amount_remaining"] == 35000
    assert invoice.credit_notes[0].stripe_credit_note_id in stripe_on.credit_notes

    stripe_on.pay_hosted(invoice.stripe_invoice_id)
    paid = stripe_on.event("invoice.paid", invoice.stripe_invoice_id)
    assert _post(client, *paid)[1] == {"outcome": "paid: £350.00"}
    db.session.refresh(invoice)
    assert invoice.status is InvoiceStatus.PAID
    assert (invoice.paid_pence, invoice.credited_pence, invoice.balance_pence) == (35000, 35000, 0)

    other_invoice = _only_invoice(other)
    services.void_invoice(other_invoice, "Raised in error")
    assert stripe_on.invoices[other_invoice.stripe_invoice_id]["status"] == "void"
    assert other_invoice.gateway_state is GatewayState.SYNCED
    assert _post(client, *stripe_on.event("invoice.voided", other_invoice.stripe_invoice_id))[1][
        "outcome"
    ].startswith("ignored")
    assert_ledger_adds_up()


def test_payments_recorded_outside_stripe_are_counted_once_whoever_recorded_them(
    stripe_on: FakeStripe,
    client: FlaskClient,
    programme: Programme,
    option2_employer: Callable[..., Employer],
) -> None:
    employer = option2_employer(2)
    services.run_billing(programme, now=NOW)
    invoice = _only_invoice(employer)
    sid = invoice.stripe_invoice_id
    ours = services.record_payment(
        invoice, amount_pence=10000, reference="BACS-1", paid_on=NOW.date(), now=NOW
    )
    assert stripe_on.invoices[sid]["amount_remaining"] == 60000
    # Our PaymentRecord's id was lost before we saved it (a crash after Stripe answered).
    db.session.execute(
        Payment.__table__.update()
        .where(Payment.id == ours.id)
        .values(stripe_payment_record_id=None)
    )
    db.session.commit()
    # Finance records £100 paid by cheque in Stripe's Dashboard; then the rest is paid online.
    stripe_on.dashboard_record_payment(sid, 10000)
    stripe_on.pay_hosted(sid)
    assert _post(client, *stripe_on.event("invoice.paid", sid))[1] == {"outcome": "paid: £600.00"}
    invoice = _only_invoice(employer)
    assert sorted((p.method.value, p.amount_pence) for p in invoice.payments) == [
        ("bank_transfer", 10000),
        ("bank_transfer", 10000),
        ("stripe", 50000),
    ]
    assert invoice.balance_pence == 0 and invoice.status is InvoiceStatus.PAID
    assert db.session.get(Payment, ours.id).stripe_payment_record_id is not None
    assert_ledger_adds_up()
