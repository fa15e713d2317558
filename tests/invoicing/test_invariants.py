"""Invoicing's invariants, as ``flask check`` runs them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select, update

from booking.extensions import db
from booking.models import Employer, Programme
from invoicing import services
from invoicing.models import (
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Payment,
    PaymentMethod,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_flask_check_passes_on_sound_invoices_and_names_each_broken_one(
    runner, programme: Programme, option2_employer: Callable[..., Employer]
) -> None:
    option2_employer(2)
    option2_employer(1)
    services.run_billing(programme, now=NOW)
    first, second = db.session.scalars(select(Invoice).order_by(Invoice.id)).all()
    services.record_payment(first, amount_pence=10000, reference="B1", paid_on=NOW.date(), now=NOW)
    assert runner.invoke(args=["check"]).exit_code == 0

    # Break each rule behind the services' back, as a bad import or a hand edit would.
    nqsw_id = first.lines[0].nqsw_id
    db.session.add(
        InvoiceLine(invoice_id=second.id, nqsw_id=nqsw_id, description="copy", amount_pence=35000)
    )
    db.session.add(
        Payment(
            invoice_id=second.id,
            amount_pence=99999,
            method=PaymentMethod.BANK_TRANSFER,
            reference="X",
            paid_on=NOW.date(),
        )
    )
    db.session.commit()
    result = runner.invoke(args=["check"])
    assert result.exit_code == 1
    out = result.output
    assert f"NQSW {nqsw_id} is on 2 live invoices for programme {programme.id}" in out
    assert f"invoice {second.number}: lines 70000 + VAT 0, subtotal 35000, total 35000" in out
    assert f"invoice {second.number}: status issued with balance" in out

    # An invoice paid beyond its total passes once it is shown as overpaid.
    db.session.execute(
        update(Invoice).where(Invoice.id == second.id).values(status=InvoiceStatus.OVERPAID)
    )
    db.session.commit()
    assert f"invoice {second.number}: status" not in runner.invoke(args=["check"]).output
