"""WTForms for the coordinator's invoicing actions."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    RadioField,
    SelectChoice,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, Optional, StopValidation
from wtforms.widgets import CheckboxInput, ListWidget

from .services import parse_pounds


class PoundsField(StringField):
    """An amount typed in pounds and pence, kept as whole pence in ``pence``."""

    pence: int = 0

    def __init__(self, label: str, *, required: str, **kwargs: Any) -> None:
        super().__init__(label, **kwargs)
        self.required = required

    def pre_validate(self, form: Any) -> None:
        text = (self.data or "").strip()
        if not text:
            raise StopValidation(self.required)
        try:
            self.pence = parse_pounds(text)
        except ValueError:
            raise StopValidation(
                "Enter an amount in pounds and pence, like 350.00, with at most two decimal places"
            ) from None
        if self.pence <= 0:
            raise StopValidation("Enter an amount more than £0")


class PaymentForm(FlaskForm):
    amount = PoundsField("Amount received, in pounds", required="Enter the amount received")
    reference = StringField(
        "Bank transfer reference",
        validators=[DataRequired("Enter the bank transfer's reference"), Length(max=200)],
    )
    paid_on = DateField(
        "Date received", validators=[InputRequired("Enter the date, like 2026-11-23")]
    )
    overpayment = BooleanField(
        "The employer paid more than is owed: record the excess as an overpayment"
    )


class RefundForm(FlaskForm):
    amount = PoundsField(
        "Amount to give back, in pounds",
        required="Enter the amount to give back",
        id="refund-amount",
    )
    method = RadioField(
        "How is it given back?",
        choices=[
            SelectChoice("stripe", "Through Stripe, to the card or account that paid"),
            SelectChoice("bank_transfer", "By bank transfer (already made)"),
        ],
        default="bank_transfer",
        validators=[InputRequired("Choose how the money is given back")],
    )
    reference = StringField(
        "Bank transfer reference (for a bank transfer)",
        validators=[Optional(), Length(max=200)],
        id="refund-reference",
    )
    refunded_on = DateField("Date of the transfer", validators=[Optional()], id="refund-date")


class VoidForm(FlaskForm):
    reason = TextAreaField(
        "Why is this invoice void?",
        validators=[DataRequired("Say why the invoice is void"), Length(max=500)],
        id="void-reason",
    )


class UncollectibleForm(FlaskForm):
    reason = TextAreaField(
        "Why can it not be collected?",
        validators=[DataRequired("Say why the invoice cannot be collected"), Length(max=500)],
        id="uncollectible-reason",
    )


class CreditForm(FlaskForm):
    lines = SelectMultipleField(
        "Lines to credit",
        coerce=int,
        widget=ListWidget(prefix_label=False),
        option_widget=CheckboxInput(),
        validators=[DataRequired("Choose at least one line to credit")],
    )
    reason = TextAreaField(
        "Reason for the credit",
        validators=[DataRequired("Say why the invoice is credited"), Length(max=500)],
        id="credit-reason",
    )


class PurchaseOrderForm(FlaskForm):
    po_number = StringField(
        "Purchase order number",
        validators=[DataRequired("Enter the purchase order number"), Length(max=80)],
    )
