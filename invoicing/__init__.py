"""Invoicing Option 2 employers and taking payment: a plug-in to the booking app.

``booking`` never imports this package: ``create_app`` loads it by name from the
``ASYE_PLUGINS`` setting and calls ``init_app``.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, request, url_for
from flask_login import current_user

from booking.jobs import register_job
from booking.models import LONDON, EmployerOption

DEFAULTS: dict[str, Any] = {
    # Days between reminders for one overdue invoice.
    "INVOICE_REMINDER_INTERVAL_DAYS": int(os.environ.get("INVOICE_REMINDER_INTERVAL_DAYS", "7")),
    # Credit an NQSW who withdrew before their first session (on the next billing run).
    "INVOICE_CREDIT_WITHDRAWN_BEFORE_FIRST_SESSION": os.environ.get(
        "INVOICE_CREDIT_WITHDRAWN_BEFORE_FIRST_SESSION", "1"
    ).lower()
    in {"1", "true", "yes", "on"},
    # Printed under "How to pay" on every invoice with money owed: the bank details...
    "INVOICE_BANK_PAYEE": os.environ.get("INVOICE_BANK_PAYEE", ""),
    "INVOICE_BANK_SORT_CODE": os.environ.get("INVOICE_BANK_SORT_CODE", ""),
    "INVOICE_BANK_ACCOUNT_NUMBER": os.environ.get("INVOICE_BANK_ACCOUNT_NUMBER", ""),
    # ...and any further words (remittance address, who to ask).
    "INVOICE_PAYMENT_INSTRUCTIONS": os.environ.get("INVOICE_PAYMENT_INSTRUCTIONS", ""),
    # Namespaces Stripe idempotency keys and metadata, so deployments sharing one Stripe
    # account never collide; unset, an id made at first use and kept in the database.
    "STRIPE_DEPLOYMENT_ID": os.environ.get("STRIPE_DEPLOYMENT_ID", ""),
    # A custom payment method type (cpmt_...) for bank transfers reported to Stripe.
    "STRIPE_CUSTOM_PAYMENT_METHOD_TYPE": os.environ.get("STRIPE_CUSTOM_PAYMENT_METHOD_TYPE", ""),
    "STRIPE_MAX_NETWORK_RETRIES": int(os.environ.get("STRIPE_MAX_NETWORK_RETRIES", "2")),
}


def _in_london(moment: datetime) -> datetime:
    return moment.astimezone(LONDON)


def _send_reminders() -> str:
    # Like init_app's imports: invoicing's modules load once the app has the plug-in.
    from .services import send_reminders

    return f"{send_reminders()} overdue-invoice reminder(s) queued."


def init_app(app: Flask) -> None:
    """Attach invoicing's settings, pages, webhook, commands and navigation to the app."""
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)
    from . import invariants, models  # noqa: F401  (registers tables and checks)
    from .cli import invoicing_cli
    from .services import format_pence
    from .views import bp

    app.register_blueprint(bp)
    register_job(
        app,
        "invoice_reminders",
        title="Remind employers of overdue invoices",
        every=timedelta(days=1),
        run=_send_reminders,
    )
    app.add_template_filter(format_pence, "pence")
    app.add_template_filter(_in_london, "london")
    app.cli.add_command(invoicing_cli)

    @app.context_processor
    def _navigation() -> dict[str, Any]:
        def nav_extra() -> list[dict[str, Any]]:
            if not current_user.is_authenticated:
                return []
            endpoint = {
                "coordinator": "invoicing.all_invoices",
                "employer_contact": "invoicing.employer_invoices",
            }.get(current_user.role.value)
            if endpoint is None:
                return []
            employer = current_user.employer
            if employer is not None and employer.option is not EmployerOption.TRAINING_ONLY:
                return []  # Option 1 employers are not invoiced
            current = request.blueprint == "invoicing"
            return [{"href": url_for(endpoint), "text": "Invoices", "current": current}]

        return {"nav_extra": nav_extra}
