"""Fixtures for invoicing: the fake Stripe server and Option 2 employers with NQSWs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from booking.models import NQSW, Employer, EmployerOption, Role, User

from .fake_stripe import FakeStripe, FakeStripeServer


@pytest.fixture
def fake_stripe() -> Iterator[FakeStripe]:
    with FakeStripeServer() as fake:
        yield fake


@pytest.fixture
def stripe_on(app: Flask, fake_stripe: FakeStripe) -> FakeStripe:
    """Point the app's Stripe client at the fake server."""
    app.config.update(
        STRIPE_SECRET_KEY="sk_test_fake",
        STRIPE_WEBHOOK_SECRET=fake_stripe.webhook_secret,
        STRIPE_API_BASE=fake_stripe.url,
        STRIPE_MAX_NETWORK_RETRIES=0,
    )
    return fake_stripe


@pytest.fixture
def option2_employer(
    make_employer: Callable[..., Employer], make_nqsw: Callable[..., NQSW]
) -> Callable[..., Employer]:
    """Make an Option 2 employer with ``count`` enrolled NQSWs."""

    def make(count: int = 2, **overrides: Any) -> Employer:
        fields: dict[str, Any] = {
            "option": EmployerOption.TRAINING_ONLY,
            "billing_name": "Finance, Example NHS Trust",
            "billing_address": "1 High Street\nLondon E1 1AA",
            "billing_email": "ap@trust.example",
            "po_number": "PO-4471",
        }
        fields.update(overrides)
        employer = make_employer(**fields)
        for n in range(count):
            make_nqsw(employer, name=f"NQSW {n + 1} of {employer.name}")
        return employer

    return make


@pytest.fixture
def contact_for(make_user: Callable[..., User]) -> Callable[[Employer], User]:
    def make(employer: Employer) -> User:
        return make_user(Role.EMPLOYER_CONTACT, employer=employer, name="Erin Employer")

    return make
