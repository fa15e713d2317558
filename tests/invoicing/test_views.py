"""Invoice pages: who sees what, the coordinator's actions, PDFs and the CSV export."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import UTC, date, datetime

from flask import g
from flask.testing import FlaskClient
from pypdf import PdfReader
from sqlalchemy import select

from booking.extensions import db
from booking.models import Employer, Programme, Role, User
from invoicing import services
from invoicing.models import Invoice, InvoiceStatus, PaymentMethod

from ..conftest import sign_in

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _invoice_of(employer: Employer) -> Invoice:
    return db.session.scalars(select(Invoice).where(Invoice.employer_id == employer.id)).one()


def confirm_billing_run(client: FlaskClient, programme: Programme):
    """Open the billing run's preview and confirm it, as the coordinator does."""
    preview = client.get(f"/coordinator/invoices/run?programme_id={programme.id}")
    assert preview.status_code == 200
    fingerprint = re.search(r'name="fingerprint" value="([0-9a-f]+)"', preview.text)
    assert fingerprint is not None, preview.text
    return client.post(
        "/coordinator/invoices/run",
        data={"programme_id": programme.id, "fingerprint": fingerprint.group(1)},
        follow_redirects=True,
    )


def _pdf_text(body: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(body)).pages)


def test_employer_contact_sees_only_their_own_invoices_and_pdfs(
    client: FlaskClient,
    programme: Programme,
    option2_employer: Callable[..., Employer],
    contact_for: Callable[[Employer], User],
) -> None:
    mine, theirs = option2_employer(2), option2_employer(1, name="Other Council")
    services.run_billing(programme, now=NOW)
    own, other = _invoice_of(mine), _invoice_of(theirs)
    sign_in(client, contact_for(mine))

    listing = client.get("/employer/invoices")
    assert listing.status_code == 200
    assert own.number in listing.text and other.number not in listing.text
    assert "£700.00" in listing.text
    assert '<caption class="nhsuk-table__caption">Your invoices</caption>' in listing.text

    detail = client.get(f"/employer/invoices/{own.id}")
    assert detail.status_code == 200
    assert "PO-4471" in detail.text and "Record a bank transfer" not in detail.text
    assert client.get(f"/employer/invoices/{other.id}").status_code == 404
    assert client.get(f"/invoices/{other.id}.pdf").status_code == 404
    other_note = services.credit_invoice(other, [other.lines[0].id], "Withdrawn", now=NOW)
    assert client.get(f"/credit-notes/{other_note.id}.pdf").status_code == 404
    assert client.get("/coordinator/invoices").status_code == 403

    pdf = client.get(f"/invoices/{own.id}.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    text = _pdf_text(pdf.data)
    for expected in (
        "Invoice ASYE-2026-0001",
        programme.host_name,
        "Finance, Example NHS Trust",
        "Purchase order: PO-4471",
        f"NQSW 1 of {mine.name}",
        "£350.00",
        "Balance due",
        "£700.00",
        "Due date: 23 December 2026",
        "How to pay",
        "VAT",
    ):
        assert expected in text, expected


def test_nqsw_cannot_see_invoices(
    client: FlaskClient, make_user: Callable[..., User], programme: Programme
) -> None:
    sign_in(client, make_user(Role.NQSW))
    assert client.get("/employer/invoices").status_code == 403
    assert client.get("/coordinator/invoices").status_code == 403


def test_coordinator_runs_billing_records_payment_credits_and_voids(
    client: FlaskClient,
    coordinator: User,
    programme: Programme,
    option2_employer: Callable[..., Employer],
) -> None:
    trust = option2_employer(2)
    council = option2_employer(1, name="Council")
    sign_in(client, coordinator)
    page = client.get("/coordinator/invoices")
    assert page.status_code == 200 and "No invoices have been issued" in page.text

    ran = confirm_billing_run(client, programme)
    assert "2 invoice(s) issued" in ran.text
    invoice, council_invoice = _invoice_of(trust), _invoice_of(council)
    page = client.get("/coordinator/invoices")
    assert 'id="outstanding-total">£1,050.00<' in page.text
    assert invoice.number in page.text and "Ledger by employer" in page.text

    bad = client.post(
        f"/coordinator/invoices/{invoice.id}/payments",
        data={"amount": "900.00", "reference": "BACS1", "paid_on": "2026-11-20"},
    )
    assert bad.status_code == 400 and "still owed" in bad.text
    good = client.post(
        f"/coordinator/invoices/{invoice.id}/payments",
        data={"amount": "350.00", "reference": "BACS1", "paid_on": "2026-11-20"},
        follow_redirects=True,
    )
    assert good.status_code == 200 and "Payment recorded" in good.text
    db.session.refresh(invoice)
    (payment,) = invoice.payments
    assert (payment.amount_pence, payment.method, payment.reference, payment.paid_on) == (
        35000,
        PaymentMethod.BANK_TRANSFER,
        "BACS1",
        date(2026, 11, 20),
    )
    assert payment.recorded_by_id == coordinator.id

    credited = client.post(
        f"/coordinator/invoices/{invoice.id}/credit",
        data={"lines": [str(invoice.lines[1].id)], "reason": "Withdrew in week one"},
        follow_redirects=True,
    )
    assert "Credit note ASYE-CN-" in credited.text
    db.session.refresh(invoice)
    assert invoice.status is InvoiceStatus.PAID
    note = invoice.credit_notes[0]
    note_pdf = client.get(f"/credit-notes/{note.id}.pdf")
    assert "Total credited" in _pdf_text(note_pdf.data)
    assert "Withdrew in week one" in _pdf_text(note_pdf.data)

    missing_reason = client.post(f"/coordinator/invoices/{council_invoice.id}/void", data={})
    assert missing_reason.status_code == 400
    voided = client.post(
        f"/coordinator/invoices/{council_invoice.id}/void",
        data={"reason": "Wrong employer"},
        follow_redirects=True,
    )
    assert "is void" in voided.text
    db.session.refresh(council_invoice)
    assert council_invoice.status is InvoiceStatus.VOID
    assert "(VOID)" in _pdf_text(client.get(f"/invoices/{council_invoice.id}.pdf").data)

    export = client.get("/coordinator/invoices.csv")
    assert export.mimetype == "text/csv"
    assert "ASYE-CN-2026-0001" in export.text and "ASYE-2026-0002" in export.text

    reminded = client.post("/coordinator/invoices/remind", follow_redirects=True)
    assert "0 reminder(s) queued" in reminded.text


def test_overdue_totals_on_the_coordinator_page(
    client: FlaskClient,
    coordinator: User,
    programme: Programme,
    option2_employer: Callable[..., Employer],
) -> None:
    option2_employer(1)
    services.run_billing(programme, now=datetime(2025, 1, 6, 12, tzinfo=UTC))
    option2_employer(1)
    services.run_billing(programme)
    sign_in(client, coordinator)
    page = client.get("/coordinator/invoices")
    assert 'id="outstanding-total">£700.00<' in page.text
    assert 'id="overdue-total">£350.00 (1 invoice)<' in page.text
    assert "Overdue" in page.text


def test_pdf_falls_back_to_a_core_font_without_dejavu(
    monkeypatch,
    client: FlaskClient,
    coordinator: User,
    programme: Programme,
    option2_employer: Callable[..., Employer],
    tmp_path,
) -> None:
    from invoicing import pdf

    monkeypatch.setattr(pdf, "DEJAVU", tmp_path)  # no fonts there
    employer = option2_employer(1)
    employer.nqsws[0].user.name = "Łukasz Nowak"  # outside Latin-1
    db.session.commit()
    services.run_billing(programme, now=NOW)
    sign_in(client, coordinator)
    text = _pdf_text(client.get(f"/invoices/{_invoice_of(employer).id}.pdf").data)
    assert "£350.00" in text and "?ukasz Nowak" in text


def test_purchase_order_numbers_can_be_given_by_the_employer_or_the_coordinator(
    client: FlaskClient,
    coordinator: User,
    programme: Programme,
    option2_employer: Callable[..., Employer],
    contact_for: Callable[[Employer], User],
) -> None:
    council = option2_employer(1, name="Needs PO Council", po_required=True, po_number="")
    trust = option2_employer(1, name="Needs PO Trust", po_required=True, po_number="")
    sign_in(client, coordinator)
    page = client.get("/coordinator/invoices")
    assert "Purchase order number for Needs PO Council" in page.text
    client.post(
        f"/coordinator/invoices/employers/{trust.id}/purchase-order", data={"po_number": "PO-T1"}
    )
    # The test's app context outlives requests, so Flask-Login's cached user must go.
    g.pop("_login_user", None)
    client = sign_in(client.application.test_client(), contact_for(council))
    empty = client.post("/employer/invoices/purchase-order", data={"po_number": " "})
    assert empty.status_code == 400
    assert "Enter the purchase order number" in empty.text
    saved = client.post(
        "/employer/invoices/purchase-order", data={"po_number": "PO-C9"}, follow_redirects=True
    )
    assert "saved for your next invoice" in saved.text

    report = services.run_billing(programme, now=NOW)
    assert report.skipped == []
    assert {_invoice_of(council).po_number, _invoice_of(trust).po_number} == {"PO-C9", "PO-T1"}
