"""WTForms for the coordinator's invoicing actions."""

from __future__ import annotations

from decimal import Decimal

from flask_wtf import FlaskForm
from wtforms import DateField, DecimalField, SelectMultipleField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange
from wtforms.widgets import CheckboxInput, ListWidget


class PaymentForm(FlaskForm):
    amount = DecimalField(
        "Amount received, in pounds",
        places=2,
        validators=[
            InputRequired("Enter the amount received"),
            NumberRange(min=Decimal("0.01"), message="Enter an amount more than £0"),
        ],
    )
    reference = StringField(
        "Bank transfer reference",
        validators=[DataRequired("Enter the bank transfer's reference"), Length(max=200)],
    )
    paid_on = DateField(
        "Date received", validators=[InputRequired("Enter the date, like 2026-11-23")]
    )


class VoidForm(FlaskForm):
    reason = TextAreaField(
        "Why is this invoice void?",
        validators=[DataRequired("Say why the invoice is void"), Length(max=500)],
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
    )


class PurchaseOrderForm(FlaskForm):
    po_number = StringField(
        "Purchase order number",
        validators=[DataRequired("Enter the purchase order number"), Length(max=80)],
    )
