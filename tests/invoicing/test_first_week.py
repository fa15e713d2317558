"""Issue 14 item 11, invoicing's part: Option 1 employers are not shown invoicing; quiet logs."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import pytest
from sqlalchemy import select

from booking.extensions import db
from booking.models import Employer, EmployerOption, Programme, User
from invoicing import pdf, services
from invoicing.models import Invoice

from ..conftest import sign_in


def _listen(monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    """Undo what the migrations' logging set-up did to loggers that already existed.

    Alembic's fileConfig disables every logger created before it runs, which would make
    a test of what gets logged pass whatever is logged.
    """
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if name.startswith(prefix) and isinstance(logger, logging.Logger):
            monkeypatch.setattr(logger, "disabled", False)


@pytest.fixture
def option1_contact(make_employer, contact_for) -> User:
    return contact_for(make_employer(option=EmployerOption.FULL_ACCESS, name="East London NHS FT"))


def test_option1_employers_see_no_invoices_menu_or_purchase_order_form(client, option1_contact):
    sign_in(client, option1_contact)

    home = client.get("/employer/").text
    page = client.get("/employer/invoices").text

    assert 'href="/employer/invoices"' not in home
    assert "Option 1 (full access): the programme does not invoice you" in page
    assert "Purchase order number" not in page
    refused = client.post("/employer/invoices/purchase-order", data={"po_number": "PO-1"})
    assert refused.status_code == 403
    assert db.session.get(Employer, option1_contact.employer_id).po_number == ""


def test_option2_employers_still_have_both(client, option2_employer, contact_for):
    contact = contact_for(option2_employer(1))
    sign_in(client, contact)

    assert 'href="/employer/invoices"' in client.get("/employer/").text
    assert "Purchase order number" in client.get("/employer/invoices").text


def test_rendering_a_pdf_writes_no_font_info_lines(
    app, programme: Programme, option2_employer: Callable[..., Employer], caplog, monkeypatch
):
    option2_employer(2)
    services.run_billing(programme)
    invoice = db.session.scalars(select(Invoice)).one()
    _listen(monkeypatch, "fontTools")
    caplog.set_level(logging.INFO)

    body = pdf.invoice_pdf(invoice)

    assert body.startswith(b"%PDF")
    assert [r for r in caplog.records if r.name.startswith("fontTools")] == []


def test_a_billing_run_from_the_web_logs_no_missing_user(
    client, coordinator, programme: Programme, option2_employer, caplog, monkeypatch
):
    option2_employer(2)
    sign_in(client, coordinator)
    preview = client.get(f"/coordinator/invoices/run?programme_id={programme.id}").text
    fingerprint = re.search(r'name="fingerprint" value="([^"]+)"', preview).group(1)
    _listen(monkeypatch, "invoicing")
    caplog.set_level(logging.INFO, logger="invoicing")

    response = client.post(
        "/coordinator/invoices/run",
        data={"programme_id": str(programme.id), "fingerprint": fingerprint},
    )

    assert response.status_code == 302
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("invoicing")]
    assert any("issued to employer" in line for line in logged), logged
    assert not any("None" in line for line in logged), logged


def test_a_purchase_order_set_by_a_command_does_not_log_user_none(
    app, option2_employer, caplog, monkeypatch
):
    employer = option2_employer(0)
    _listen(monkeypatch, "invoicing")
    caplog.set_level(logging.INFO, logger="invoicing")

    services.set_purchase_order(employer, "PO-9", by=None)

    logged = [r.getMessage() for r in caplog.records if r.name == "invoicing.services"]
    assert logged == [f"employer {employer.id} PO number set by a command"]
