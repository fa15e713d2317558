"""Invoice pages for employers and coordinators, and the Stripe webhook endpoint."""

from __future__ import annotations

from decimal import Decimal

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user

from booking import catalogue
from booking.extensions import csrf, db
from booking.forms import ConfirmForm
from booking.models import Employer, Programme, Role
from booking.views import form_status, refusals_shown_on, require_role

from . import gateway, pdf, services
from .forms import CreditForm, PaymentForm, PurchaseOrderForm, VoidForm
from .models import CreditNote, Invoice

bp = Blueprint("invoicing", __name__)


def _own_invoice(invoice_id: int) -> Invoice:
    invoice = db.get_or_404(Invoice, invoice_id)
    if (
        current_user.role is Role.EMPLOYER_CONTACT
        and invoice.employer_id != current_user.employer_id
    ):
        abort(404)  # not 403: do not reveal another employer's invoice exists
    return invoice


def _pdf(body: bytes, filename: str) -> Response:
    return Response(
        body,
        mimetype="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{filename}"'},
    )


# Employer contacts -------------------------------------------------------------------


@bp.get("/employer/invoices")
@require_role(Role.EMPLOYER_CONTACT)
def employer_invoices() -> ResponseReturnValue:
    if current_user.employer_id is None:
        abort(403)
    return _employer_page(
        PurchaseOrderForm(formdata=None, po_number=current_user.employer.po_number)
    )


def _employer_page(form: PurchaseOrderForm) -> ResponseReturnValue:
    return render_template(
        "invoicing/employer_list.html",
        overview=services.invoices_for(current_user.employer_id),
        employer=current_user.employer,
        form=form,
        today=services.london_today(),
    ), form_status(form)


@bp.post("/employer/invoices/purchase-order")
@require_role(Role.EMPLOYER_CONTACT)
def employer_purchase_order() -> ResponseReturnValue:
    employer = current_user.employer
    if employer is None:
        abort(403)
    form = PurchaseOrderForm()
    if form.validate_on_submit():
        with refusals_shown_on(form):
            services.set_purchase_order(employer, form.po_number.data, by=current_user)
            flash("Your purchase order number is saved for your next invoice.", "success")
            return redirect(url_for("invoicing.employer_invoices"))
    return _employer_page(form)


@bp.get("/employer/invoices/<int:invoice_id>")
@require_role(Role.EMPLOYER_CONTACT)
def employer_invoice(invoice_id: int) -> ResponseReturnValue:
    invoice = _own_invoice(invoice_id)
    return render_template("invoicing/invoice.html", invoice=invoice, today=services.london_today())


@bp.get("/invoices/<int:invoice_id>.pdf")
@require_role(Role.EMPLOYER_CONTACT, Role.COORDINATOR)
def invoice_pdf(invoice_id: int) -> ResponseReturnValue:
    invoice = _own_invoice(invoice_id)
    return _pdf(pdf.invoice_pdf(invoice), f"{invoice.number}.pdf")


@bp.get("/credit-notes/<int:note_id>.pdf")
@require_role(Role.EMPLOYER_CONTACT, Role.COORDINATOR)
def credit_note_pdf(note_id: int) -> ResponseReturnValue:
    note = db.get_or_404(CreditNote, note_id)
    _own_invoice(note.invoice_id)
    return _pdf(pdf.credit_note_pdf(note), f"{note.number}.pdf")


# Coordinators ------------------------------------------------------------------------


@bp.get("/coordinator/invoices")
@require_role(Role.COORDINATOR)
def all_invoices() -> ResponseReturnValue:
    return render_template(
        "invoicing/coordinator_list.html",
        overview=services.invoices_for(),
        ledger=services.ledger(),
        programmes=catalogue.all_programmes(),
        form=ConfirmForm(),
        stripe_on=gateway.enabled(),
        awaiting_po=services.employers_awaiting_po(),
        today=services.london_today(),
    )


@bp.post("/coordinator/invoices/employers/<int:employer_id>/purchase-order")
@require_role(Role.COORDINATOR)
def coordinator_purchase_order(employer_id: int) -> ResponseReturnValue:
    employer = db.get_or_404(Employer, employer_id)
    form = PurchaseOrderForm()
    if form.validate_on_submit():
        services.set_purchase_order(employer, form.po_number.data, by=current_user)
        flash(f"Purchase order number saved for {employer.name}.", "success")
    else:
        flash("Enter a purchase order number of 80 characters or fewer.", "error")
    return redirect(url_for("invoicing.all_invoices"))


@bp.post("/coordinator/invoices/run")
@require_role(Role.COORDINATOR)
def run_billing() -> ResponseReturnValue:
    programme_id = request.form.get("programme_id", type=int)
    if ConfirmForm().validate_on_submit() and programme_id is not None:
        report = services.run_billing(db.get_or_404(Programme, programme_id))
        flash(f"Billing run: {report.summary()}", "error" if report.skipped else "success")
    return redirect(url_for("invoicing.all_invoices"))


@bp.post("/coordinator/invoices/remind")
@require_role(Role.COORDINATOR)
def send_reminders() -> ResponseReturnValue:
    if ConfirmForm().validate_on_submit():
        flash(f"{services.send_reminders()} reminder(s) queued.", "success")
    return redirect(url_for("invoicing.all_invoices"))


@bp.post("/coordinator/invoices/sync")
@require_role(Role.COORDINATOR)
def sync_stripe() -> ResponseReturnValue:
    if ConfirmForm().validate_on_submit():
        report = services.sync_stripe()
        flash(
            f"{report.synced} invoice(s) up to date with Stripe, {report.failed} still failing.",
            "error" if report.failed else "success",
        )
    return redirect(request.referrer or url_for("invoicing.all_invoices"))


@bp.get("/coordinator/invoices.csv")
@require_role(Role.COORDINATOR)
def export_csv() -> ResponseReturnValue:
    stamp = services.london_today().isoformat()
    return Response(
        services.export_csv(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="invoices-{stamp}.csv"'},
    )


def _coordinator_page(
    invoice: Invoice,
    *,
    payment: PaymentForm | None = None,
    void: VoidForm | None = None,
    credit: CreditForm | None = None,
) -> ResponseReturnValue:
    payment = payment or PaymentForm(
        formdata=None,
        amount=Decimal(invoice.balance_pence) / 100,
        paid_on=services.london_today(),
    )
    void = void or VoidForm(formdata=None)
    credit = credit or CreditForm(formdata=None)
    credit.lines.choices = _creditable(invoice)
    failed = any(form.errors for form in (payment, void, credit))
    return render_template(
        "invoicing/invoice.html",
        invoice=invoice,
        payment_form=payment,
        void_form=void,
        credit_form=credit,
        confirm_form=ConfirmForm(),
        today=services.london_today(),
    ), (400 if failed else 200)


def _creditable(invoice: Invoice) -> list[tuple[int, str]]:
    credited = {line.invoice_line_id for note in invoice.credit_notes for line in note.lines}
    return [
        (line.id, f"{line.description} ({services.format_pence(line.amount_pence)})")
        for line in invoice.lines
        if line.id not in credited
    ]


@bp.get("/coordinator/invoices/<int:invoice_id>")
@require_role(Role.COORDINATOR)
def coordinator_invoice(invoice_id: int) -> ResponseReturnValue:
    return _coordinator_page(db.get_or_404(Invoice, invoice_id))


@bp.post("/coordinator/invoices/<int:invoice_id>/payments")
@require_role(Role.COORDINATOR)
def record_payment(invoice_id: int) -> ResponseReturnValue:
    invoice = db.get_or_404(Invoice, invoice_id)
    form = PaymentForm()
    if form.validate_on_submit():
        with refusals_shown_on(form):
            services.record_payment(
                invoice,
                amount_pence=int((form.amount.data * 100).to_integral_value()),
                reference=form.reference.data,
                paid_on=form.paid_on.data,
                by=current_user,
            )
            flash(f"Payment recorded against {invoice.number}.", "success")
            return redirect(url_for("invoicing.coordinator_invoice", invoice_id=invoice.id))
    return _coordinator_page(invoice, payment=form)


@bp.post("/coordinator/invoices/<int:invoice_id>/void")
@require_role(Role.COORDINATOR)
def void_invoice(invoice_id: int) -> ResponseReturnValue:
    invoice = db.get_or_404(Invoice, invoice_id)
    form = VoidForm()
    if form.validate_on_submit():
        with refusals_shown_on(form):
            services.void_invoice(invoice, form.reason.data, by=current_user)
            flash(f"Invoice {invoice.number} is void.", "success")
            return redirect(url_for("invoicing.coordinator_invoice", invoice_id=invoice.id))
    return _coordinator_page(invoice, void=form)


@bp.post("/coordinator/invoices/<int:invoice_id>/credit")
@require_role(Role.COORDINATOR)
def credit_invoice(invoice_id: int) -> ResponseReturnValue:
    invoice = db.get_or_404(Invoice, invoice_id)
    form = CreditForm()
    form.lines.choices = _creditable(invoice)
    if form.validate_on_submit():
        with refusals_shown_on(form):
            note = services.credit_invoice(
                invoice, form.lines.data, form.reason.data, by=current_user
            )
            flash(f"Credit note {note.number} issued.", "success")
            return redirect(url_for("invoicing.coordinator_invoice", invoice_id=invoice.id))
    return _coordinator_page(invoice, credit=form)


# Stripe ------------------------------------------------------------------------------


@bp.post("/stripe/webhook")
@csrf.exempt
def stripe_webhook() -> ResponseReturnValue:
    try:
        event = gateway.parse_event(request.get_data(), request.headers.get("Stripe-Signature"))
    except gateway.BadSignature as error:
        return jsonify(error="BadSignature", message=error.message), 400
    return jsonify(outcome=services.apply_stripe_event(event)), 200
