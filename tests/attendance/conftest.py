"""Factories for attendance tests: bookings written directly, NQSWs with known emails."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from booking.extensions import db
from booking.models import NQSW, Booking, BookingStatus, Session

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def make_booking(app: Flask) -> Callable[..., Booking]:
    def make(nqsw: NQSW, session: Session, **overrides: Any) -> Booking:
        fields: dict[str, Any] = {
            "nqsw": nqsw,
            "session": session,
            "course_id": session.course_id,
            "status": BookingStatus.BOOKED,
        }
        fields.update(overrides)
        booking = Booking(**fields)
        db.session.add(booking)
        db.session.commit()
        return booking

    return make


@pytest.fixture
def nqsw_with_email(make_nqsw: Callable[..., NQSW]) -> Callable[..., NQSW]:
    def make(email: str, name: str, **overrides: Any) -> NQSW:
        nqsw = make_nqsw(name=name, **overrides)
        nqsw.user.email = email
        db.session.commit()
        return nqsw

    return make
