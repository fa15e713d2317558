"""Invoice and credit note documents as PDF (fpdf2)."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import current_app
from fpdf import FPDF
from fpdf.enums import XPos, YPos

from booking.models import london_today

from . import gateway
from .models import CreditNote, Invoice, InvoiceStatus
from .services import format_pence, vat_label

# DejaVu covers names outside Latin-1; without it the core Helvetica font still has "£".
DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
# fontTools, which fpdf2 uses to embed DejaVu, logs about twenty INFO lines per document.
logging.getLogger("fontTools").setLevel(logging.WARNING)


class _Document(FPDF):
    def __init__(self, title: str) -> None:
        super().__init__(format="A4")
        self.set_title(title)
        self.set_author(current_app.config.get("INVOICE_ISSUER_NAME", "ASYE training"))
        self.set_auto_page_break(auto=True, margin=20)
        if (DEJAVU / "DejaVuSans.ttf").is_file() and (DEJAVU / "DejaVuSans-Bold.ttf").is_file():
            self.add_font("Body", "", str(DEJAVU / "DejaVuSans.ttf"))
            self.add_font("Body", "B", str(DEJAVU / "DejaVuSans-Bold.ttf"))
            self.family_name = "Body"
            self.unicode = True
        else:
            self.family_name = "Helvetica"
            self.unicode = False
        self.add_page()

    def text_safe(self, value: str) -> str:
        if self.unicode:
            return value
        return value.encode("latin-1", "replace").decode("latin-1")

    def write_line(
        self, value: str, *, size: int = 10, bold: bool = False, height: int = 5
    ) -> None:
        self.set_font(self.family_name, "B" if bold else "", size)
        self.multi_cell(
            0, height, self.text_safe(value), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT
        )

    def row(self, left: str, right: str, *, bold: bool = False) -> None:
        self.set_font(self.family_name, "B" if bold else "", 10)
        left = self.text_safe(left)
        # Long descriptions wrap in their column; the amount sits beside the first line.
        lines = self.multi_cell(140, 7, left, align="L", dry_run=True, output="LINES")
        height = 7 * max(len(lines), 1) if isinstance(lines, list) else 7
        if self.will_page_break(height):
            self.add_page()
        self.multi_cell(140, 7, left, border="B", align="L", new_x=XPos.RIGHT, new_y=YPos.TOP)
        self.cell(
            0,
            height,
            self.text_safe(right),
            border="B",
            align="R",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )


def _header(doc: _Document, heading: str, invoice: Invoice) -> None:
    programme = invoice.programme
    doc.write_line(programme.host_name, size=14, bold=True, height=7)
    if programme.host_address:
        doc.write_line(programme.host_address)
    if programme.host_email:
        doc.write_line(programme.host_email)
    doc.ln(6)
    doc.write_line(heading, size=18, bold=True, height=9)
    doc.ln(2)


def _billing(doc: _Document, invoice: Invoice) -> None:
    doc.write_line("Bill to", bold=True)
    doc.write_line(invoice.billing_name)
    if invoice.billing_address:
        doc.write_line(invoice.billing_address)
    if invoice.po_number:
        doc.write_line(f"Purchase order: {invoice.po_number}")
    doc.ln(4)


def invoice_pdf(invoice: Invoice) -> bytes:
    """Return the invoice as a PDF."""
    doc = _Document(f"Invoice {invoice.number}")
    heading = f"Invoice {invoice.number}"
    if invoice.status.value == "void":
        heading += " (VOID)"
    _header(doc, heading, invoice)
    doc.write_line(f"Date of issue: {london_today(invoice.issued_at):%-d %B %Y}")
    doc.write_line(f"Due date: {invoice.due_on:%-d %B %Y}")
    doc.write_line(f"Programme: {invoice.programme.name}")
    doc.ln(4)
    _billing(doc, invoice)
    doc.row("Description", "Amount", bold=True)
    for line in invoice.lines:
        doc.row(line.description, format_pence(line.amount_pence))
    doc.row("Subtotal", format_pence(invoice.subtotal_pence))
    if invoice.vat_rate_basis_points:
        doc.row(
            f"VAT at {vat_label(invoice.vat_rate_basis_points)}", format_pence(invoice.vat_pence)
        )
    else:
        doc.row("VAT", "None charged")
    doc.row("Total", format_pence(invoice.total_pence), bold=True)
    if invoice.credited_pence:
        doc.row("Credited", "-" + format_pence(invoice.credited_pence))
    if invoice.paid_pence:
        doc.row("Paid", "-" + format_pence(invoice.paid_pence))
    if invoice.refunded_pence:
        doc.row("Refunded", format_pence(invoice.refunded_pence))
    balance = invoice.balance_pence
    if balance < 0:
        doc.row(invoice.state_label, format_pence(-balance), bold=True)
    else:
        label = (
            "Written off, still owed"
            if invoice.status is InvoiceStatus.UNCOLLECTIBLE
            else "Balance due"
        )
        doc.row(label, format_pence(balance), bold=True)
    if balance > 0:
        _how_to_pay(doc, invoice)
    return bytes(doc.output())


def _how_to_pay(doc: _Document, invoice: Invoice) -> None:
    config = current_app.config
    doc.ln(6)
    doc.write_line("How to pay", size=12, bold=True, height=7)
    if config.get("INVOICE_BANK_ACCOUNT_NUMBER"):
        doc.write_line("By bank transfer:")
        doc.write_line(f"Payee: {config.get('INVOICE_BANK_PAYEE') or invoice.programme.host_name}")
        doc.write_line(f"Sort code: {config.get('INVOICE_BANK_SORT_CODE', '')}")
        doc.write_line(f"Account number: {config['INVOICE_BANK_ACCOUNT_NUMBER']}")
        doc.write_line(f"Reference: {invoice.number}")
    else:
        doc.write_line(f"Quote invoice number {invoice.number} as the payment reference.")
    if gateway.enabled() and invoice.hosted_invoice_url:
        doc.write_line(f"Or pay online by card or bank transfer: {invoice.hosted_invoice_url}")
    instructions = config.get("INVOICE_PAYMENT_INSTRUCTIONS", "")
    if instructions:
        doc.write_line(instructions)


def credit_note_pdf(note: CreditNote) -> bytes:
    """Return the credit note as a PDF."""
    invoice = note.invoice
    doc = _Document(f"Credit note {note.number}")
    _header(doc, f"Credit note {note.number}", invoice)
    doc.write_line(f"Date of issue: {london_today(note.issued_at):%-d %B %Y}")
    doc.write_line(f"Against invoice: {invoice.number}")
    doc.write_line(f"Reason: {note.reason}")
    doc.ln(4)
    _billing(doc, invoice)
    doc.row("Description", "Credit", bold=True)
    for line in note.lines:
        doc.row(line.description, format_pence(line.amount_pence))
    doc.row("Subtotal", format_pence(note.subtotal_pence))
    if invoice.vat_rate_basis_points:
        doc.row(f"VAT at {vat_label(invoice.vat_rate_basis_points)}", format_pence(note.vat_pence))
    doc.row("Total credited", format_pence(note.total_pence), bold=True)
    return bytes(doc.output())
