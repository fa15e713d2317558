"""End to end in Chromium: an employer receives, opens, downloads and pays an invoice."""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Page, expect, sync_playwright
from pypdf import PdfReader
from sqlalchemy import select

from booking import accounts
from booking.config import ROOT
from booking.extensions import db
from booking.models import Employer, OutboxMessage, Programme, User
from invoicing import services
from invoicing.models import Invoice, InvoiceStatus, PaymentMethod

from .fake_stripe import FakeStripe
from .test_billing import assert_ledger_adds_up

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]


def assert_accessible(page: Page) -> None:
    """Run axe-core's WCAG 2.2 AA rules on the page and fail on any violation."""
    if not AXE.exists():
        pytest.skip("axe-core is not installed (npm install)")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", WCAG
    )
    problems = [(v["id"], [n["target"] for n in v["nodes"]]) for v in result["violations"]]
    assert problems == [], f"{page.url}: {problems}"


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


def test_employer_receives_opens_downloads_and_pays_an_invoice(
    app: Flask,
    stripe_on: FakeStripe,
    live_server: str,
    programme: Programme,
    option2_employer: Callable[..., Employer],
    contact_for: Callable[[Employer], User],
    tmp_path: Path,
) -> None:

    employer = option2_employer(2)
    contact = contact_for(employer)
    services.run_billing(programme)
    invoice = db.session.scalars(select(Invoice)).one()
    invoice_id, number = invoice.id, invoice.number
    mail = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "invoice_issued")
    ).one()
    assert mail.recipient_list == ["ap@trust.example"]
    link = re.search(r"http://asye\.test(/employer/invoices/\d+)", mail.text_body)
    assert link is not None
    token = accounts.issue_sign_in_link(contact)
    db.session.commit()
    stripe_on.webhook_url = f"{live_server}/stripe/webhook"
    stripe_on.return_url = f"{live_server}{link.group(1)}"
    db.session.remove()  # the server's threads need the database to themselves

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            page.goto(f"{live_server}/sign-in/{token}")
            page.get_by_role("button", name="Continue to sign in").click()
            page.get_by_role("link", name="Invoices").first.click()
            page.wait_for_url(f"{live_server}/employer/invoices")
            expect(page.get_by_role("link", name=number, exact=True)).to_have_count(1)
            assert_accessible(page)
            page.goto(f"{live_server}{link.group(1)}")  # the link in the emailed invoice
            assert page.get_by_role("heading", level=1).inner_text() == f"Invoice {number}"
            assert page.locator("#invoice-status").inner_text() == "Issued"
            assert page.locator("#balance").inner_text() == "£700.00"
            assert_accessible(page)

            pdf_href = page.locator("#pdf-link").get_attribute("href")
            download = page.request.get(f"{live_server}{pdf_href}")
            assert download.ok and download.headers["content-type"] == "application/pdf"
            saved = tmp_path / f"{number}.pdf"
            saved.write_bytes(download.body())
            text = PdfReader(saved).pages[0].extract_text()
            assert number in text and "£700.00" in text

            page.get_by_role("link", name=re.compile(r"^Pay £700\.00 online")).click()
            assert "Amount due: £700.00" in page.locator("#amount").inner_text()
            page.get_by_role("button", name="Pay now").click()
            page.wait_for_url(f"{live_server}{link.group(1)}")
            expect(page.locator("#invoice-status")).to_have_text("Paid")
            expect(page.locator("#balance")).to_have_text("£0.00")
            expect(page.get_by_role("link", name=re.compile("^Pay"))).to_have_count(0)
            assert_accessible(page)
        finally:
            browser.close()

    paid = db.session.get_one(Invoice, invoice_id)
    assert paid.status is InvoiceStatus.PAID
    assert [(p.method, p.amount_pence) for p in paid.payments] == [(PaymentMethod.STRIPE, 70000)]
    assert_ledger_adds_up()


def test_coordinator_invoice_pages_are_accessible(
    app: Flask,
    live_server: str,
    coordinator: User,
    programme: Programme,
    option2_employer: Callable[..., Employer],
) -> None:
    option2_employer(2)
    services.run_billing(programme)
    option2_employer(1, name="Late Council")  # enrolled since: the next run's preview lists it
    token = accounts.issue_sign_in_link(coordinator)
    db.session.commit()
    db.session.remove()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            page.goto(f"{live_server}/sign-in/{token}")
            page.get_by_role("button", name="Continue to sign in").click()
            page.wait_for_url(re.compile(r"/coordinator/"))
            page.goto(f"{live_server}/coordinator/invoices")
            assert_accessible(page)
            page.get_by_role("button", name="Preview billing run").click()
            expect(page.get_by_role("heading", level=1)).to_have_text(
                "Billing run: check before issuing"
            )
            expect(page.locator("table")).to_contain_text("Late Council")
            assert_accessible(page)
            page.goto(f"{live_server}/coordinator/invoices")
            page.get_by_role("link", name="ASYE-2026-0001", exact=True).click()
            expect(page.get_by_role("heading", level=1)).to_have_text("Invoice ASYE-2026-0001")
            assert_accessible(page)
            # A form sent back with errors: the summary and the field messages.
            page.get_by_label("Amount received, in pounds").fill("5000")
            page.get_by_label("Bank transfer reference").fill("BACS-1")
            page.get_by_label("Date received").fill("2026-11-20")
            page.get_by_role("button", name="Record payment").click()
            expect(page.locator(".nhsuk-error-summary")).to_contain_text("still owed")
            assert_accessible(page)
            page.get_by_label("Bank transfer reference").fill("BACS-1")
            page.get_by_label("Amount received, in pounds").fill("700.00")
            page.get_by_role("button", name="Record payment").click()
            expect(page.locator("#invoice-status")).to_have_text("Paid")
            assert_accessible(page)
            # Paid again by mistake: recorded as an overpayment, then refunded.
            page.get_by_label("Amount received, in pounds").fill("50.00")
            page.get_by_label("Bank transfer reference").fill("BACS-2")
            page.get_by_label("Date received").fill("2026-11-21")
            page.get_by_label("record the excess as an overpayment").check()
            page.get_by_role("button", name="Record payment").click()
            expect(page.locator("#invoice-status")).to_have_text("Refund due")
            expect(page.locator("#balance")).to_have_text("£50.00")
            assert_accessible(page)
            page.get_by_label("Bank transfer reference (for a bank transfer)").fill("REFUND-1")
            page.get_by_role("button", name="Record refund").click()
            expect(page.locator("#invoice-status")).to_have_text("Paid")
            expect(page.locator("#balance")).to_have_text("£0.00")
        finally:
            browser.close()
