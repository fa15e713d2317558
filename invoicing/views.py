"""Invoice pages for employers and coordinators, and the Stripe webhook endpoint."""

from __future__ import annotations

from datetime import date

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
from booking.models import Employer, EmployerOption, Programme, Role, london_today
from booking.views import form_status, refusals_shown_on, require_role

from . import gateway, pdf, reports, services, stripe_sync, webhooks
from .forms import (
    CreditForm,
    PaymentForm,
    PurchaseOrderForm,
    RefundForm,
    UncollectibleForm,
    VoidForm,
)
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
        overview=reports.invoices_for(current_user.employer_id),
        employer=current_user.employer,
        invoiced=current_user.employer.option is EmployerOption.TRAINING_ONLY,
        form=form,
        today=london_today(),
    ), form_status(form)


@bp.post("/employer/invoices/purchase-order")
@require_role(Role.EMPLOYER_CONTACT)
def employer_purchase_order() -> ResponseReturnValue:
    employer = current_user.employer
    if employer is None or employer.option is not EmployerOption.TRAINING_ONLY:
        abort(403)  # Option 1 employers are not invoiced, so have no purchase order to give
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
    return render_template(
        "invoicing/invoice.html",
        invoice=invoice,
        today=london_today(),
        stripe_on=gateway.enabled(),
    )


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


def _chosen_programme() -> Programme | None:
    programme_id = request.args.get("programme_id", type=int)
    if programme_id is not None:
        return db.session.get(Programme, programme_id)
    return services.programme_to_bill()


def _parse_day(name: str, errors: dict[str, str]) -> date | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors[name] = "Enter a date like 2026-04-01"
        return None


def _coordinator_list(errors: dict[str, str] | None = None) -> ResponseReturnValue:
    return render_template(
        "invoicing/coordinator_list.html",
        overview=reports.invoices_for(),
        ledger=reports.ledger(),
        programmes=catalogue.all_programmes(),
        chosen=_chosen_programme(),
        form=ConfirmForm(),
        stripe_on=gateway.enabled(),
        awaiting_po=services.employers_awaiting_po(),
        today=london_today(),
        finance_errors=errors or {},
        finance_args=request.args,
    ), (400 if errors else 200)


@bp.get("/coordinator/invoices")
@require_role(Role.COORDINATOR)
def all_invoices() -> ResponseReturnValue:
    return _coordinator_list()


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


def _preview_page(programme: Programme, *, status: int = 200) -> ResponseReturnValue:
    return render_template(
        "invoicing/billing_preview.html",
        programme=programme,
        preview=services.preview_billing(programme),
        form=ConfirmForm(),
    ), status


@bp.get("/coordinator/invoices/run")
@require_role(Role.COORDINATOR)
def preview_billing() -> ResponseReturnValue:
    programme_id = request.args.get("programme_id", type=int)
    if programme_id is None:
        return redirect(url_for("invoicing.all_invoices"))
    return _preview_page(db.get_or_404(Programme, programme_id))


@bp.post("/coordinator/invoices/run")
@require_role(Role.COORDINATOR)
def run_billing() -> ResponseReturnValue:
    programme = db.get_or_404(Programme, request.form.get("programme_id", type=int))
    fingerprint = request.form.get("fingerprint", "")
    if not ConfirmForm().validate_on_submit() or not fingerprint:
        # Nothing is issued without the preview's confirmation.
        return _preview_page(programme, status=400)
    try:
        report = services.run_billing(programme, expected=fingerprint)
    except services.PreviewOutdated as error:
        flash(error.message, "error")
        return _preview_page(programme, status=409)
    flash(f"Billing run: {report.summary()}", "error" if report.skipped else "success")
    return redirect(url_for("invoicing.all_invoices", programme_id=programme.id))


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
        report = stripe_sync.sync_stripe()
        flash(
            f"{report.synced} invoice(s) up to date with Stripe, {report.failed} still failing.",
            "error" if report.failed else "success",
        )
    return redirect(request.referrer or url_for("invoicing.all_invoices"))


@bp.get("/coordinator/invoices.csv")
@require_role(Role.COORDINATOR)
def export_csv() -> ResponseReturnValue:
    stamp = london_today().isoformat()
    return Response(
        reports.export_csv(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="invoices-{stamp}.csv"'},
    )


@bp.get("/coordinator/invoices/finance.csv")
@require_role(Role.COORDINATOR)
def finance_export() -> ResponseReturnValue:
    errors: dict[str, str] = {}
    start, end = _parse_day("from", errors), _parse_day("to", errors)
    if start and end and start > end:
        errors["to"] = "The end date must be on or after the start date"
    if errors:
        return _coordinator_list(errors)
    name = f"finance-{start or 'start'}-to-{end or london_today()}.csv"
    return Response(
        reports.finance_report(start, end).csv(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _coordinator_page(
    invoice: Invoice,
    *,
    payment: PaymentForm | None = None,
    refund: RefundForm | None = None,
    void: VoidForm | None = None,
    credit: CreditForm | None = None,
    uncollectible: UncollectibleForm | None = None,
) -> ResponseReturnValue:
    payment = payment or PaymentForm(
        formdata=None,
        amount=services.pence_as_decimal(invoice.owed_pence) if invoice.owed_pence else "",
        paid_on=london_today(),
    )
    refund = refund or RefundForm(
        formdata=None,
        amount=services.pence_as_decimal(invoice.overpaid_pence) if invoice.overpaid_pence else "",
        refunded_on=london_today(),
    )
    void = void or VoidForm(formdata=None)
    uncollectible = uncollectible or UncollectibleForm(formdata=None)
    credit = credit or CreditForm(formdata=None)
    credit.lines.choices = _creditable(invoice)
    forms = (payment, refund, void, credit, uncollectible)
    return render_template(
        "invoicing/invoice.html",
        invoice=invoice,
        payment_form=payment,
        refund_form=refund,
        void_form=void,
        credit_form=credit,
        uncollectible_form=uncollectible,
        confirm_form=ConfirmForm(),
        stripe_refundable=services.stripe_refundable(invoice),
        today=london_today(),
        stripe_on=gateway.enabled(),
    ), (400 if any(form.errors for form in forms) else 200)


def _creditable(invoice: Invoice) -> list[tuple[int, str]]:
    credited = {
        line.invoice_line_id
        for note in invoice.live_credit_notes
        for line in note.lines
        if not line.voided
    }
    return [
        (line.id, f"{line.description} ({services.format_pence(line.amount_pence)})")
        for line in invoice.lines
        if line.id not in credited
    ]


@bp.get("/coordinator/invoices/<int:invoice_id>")
@require_role(Role.COORDINATOR)
def coordinator_invoice(invoice_id: int) -> ResponseReturnValue:
    return _coordinator_page(db.get_or_404(Invoice, invoice_id))


def _back(invoice: Invoice) -> ResponseReturnValue:
    return redirect(url_for("invoicing.coordinator_invoice", invoice_id=invoice.id))


@bp.post("/coordinator/invoices/<int:invoice_id>/payments")
@require_role(Role.COORDINATOR)
def record_payment(invoice_id: int) -> ResponseReturnValue:
    invoice = db.get_or_404(Invoice, invoice_id)
    form = PaymentForm()
    if form.validate_on_submit():
        with refusals_shown_on(form):
            services.record_payment(
                invoice,
                amount_pence=form.amount.pence,
                reference=form.reference.data,
                paid_on=form.paid_on.data,
                overpayment=form.overpayment.data,
                by=current_user,
            )
            flash(f"Payment recorded against {invoice.number}.", "success")
            return _back(invoice)
    return _coordinator_page(invoice, payment=form)


@bp.post("/coordinator/invoices/<int:invoice_id>/refunds")
@require_role(Role.COORDINATOR)
def record_refund(invoice_id: int) -> ResponseReturnValue:
    invoice = db.get_or_404(Invoice, invoice_id)
    form = RefundForm()
    if form.validate_on_submit():
        with refusals_shown_on(form):
            services.record_refund(
                invoice,
                amount_pence=form.amount.pence,
                through_stripe=form.method.data == "stripe",
                reference=form.reference.data or "",
                refunded_on=form.refunded_on.data,
                by=current_user,
            )
            flash(f"Refund recorded against {invoice.number}.", "success")
            return _back(invoice)
    return _coordinator_page(invoice, refund=form)


@bp.post("/coordinator/invoices/<int:invoice_id>/carry-forward")
@require_role(Role.COORDINATOR)
def carry_forward(invoice_id: int) -> ResponseReturnValue:
    invoice = db.get_or_404(Invoice, invoice_id)
    if ConfirmForm().validate_on_submit():
        applied = services.carry_forward(invoice, by=current_user)
        message = f"The overpayment on {invoice.number} is kept as credit on account."
        if applied:
            message += f" {services.format_pence(applied)} of it paid the employer's open invoices."
        flash(message, "success")
    return _back(invoice)


@bp.post("/coordinator/invoices/<int:invoice_id>/void")
@require_role(Role.COORDINATOR)
def void_invoice(invoice_id: int) -> ResponseReturnValue:
    invoice = db.get_or_404(Invoice, invoice_id)
    form = VoidForm()
    if form.validate_on_submit():
        with refusals_shown_on(form):
            services.void_invoice(invoice, form.reason.data, by=current_user)
            flash(f"Invoice {invoice.number} is void.", "success")
            return _back(invoice)
    return _coordinator_page(invoice, void=form)


@bp.post("/coordinator/invoices/<int:invoice_id>/uncollectible")
@require_role(Role.COORDINATOR)
def mark_uncollectible(invoice_id: int) -> ResponseReturnValue:
    invoice = db.get_or_404(Invoice, invoice_id)
    form = UncollectibleForm()
    if form.validate_on_submit():
        with refusals_shown_on(form):
            services.mark_uncollectible(invoice, form.reason.data, by=current_user)
            flash(f"Invoice {invoice.number} is marked uncollectible.", "success")
            return _back(invoice)
    return _coordinator_page(invoice, uncollectible=form)


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
            return _back(invoice)
    return _coordinator_page(invoice, credit=form)


# Stripe ------------------------------------------------------------------------------


@bp.post("/stripe/webhook")
@csrf.exempt
def stripe_webhook() -> ResponseReturnValue:
    # Stripe delivers again any answer but 2xx (for up to three days): a 400 for a body
    # that can never be read is final in effect, a 503 asks for a later try.
    try:
        event = gateway.parse_event(request.get_data(), request.headers.get("Stripe-Signature"))
    except gateway.BadSignature as error:
        return jsonify(error="BadSignature", message=error.message), 400
    except gateway.MalformedEvent as error:
        return jsonify(error="MalformedEvent", message=error.message), 400
    try:
        outcome = webhooks.apply_stripe_event(event)
    except gateway.GatewayError as error:
        db.session.rollback()
        return jsonify(error="StripeUnavailable", message=error.message), 503
    return jsonify(outcome=outcome), 200
