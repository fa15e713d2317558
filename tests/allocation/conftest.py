"""Small allocation scenarios built through the ordinary factories."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from booking.extensions import db
from booking.models import (
    NQSW,
    AllocationProposal,
    Booking,
    BookingStatus,
    Course,
    OutboxMessage,
    Programme,
    Session,
)
from tests.conftest import FUTURE


@dataclass
class Scene:
    """One core course with an early and a late date, and a few NQSWs."""

    programme: Programme
    course: Course
    early: Session
    late: Session
    nqsws: list[NQSW]


@pytest.fixture
def scene(
    programme: Programme,
    make_course: Callable[..., Course],
    make_session: Callable[..., Session],
    make_nqsw: Callable[..., NQSW],
) -> Callable[..., Scene]:
    def make(people: int = 3, capacity: int = 2) -> Scene:
        course = make_course(code="MCA", title="Mental Capacity Act in Practice")
        early = make_session(course, day=FUTURE, capacity=capacity)
        late = make_session(course, day=FUTURE + timedelta(days=42), capacity=capacity)
        nqsws = [make_nqsw(name=f"Person {k}") for k in range(people)]
        return Scene(programme, course, early, late, nqsws)

    return make


def live_bookings() -> list[Booking]:
    """Return every live booking, oldest first."""
    return list(
        db.session.scalars(
            select(Booking).where(Booking.status == BookingStatus.BOOKED).order_by(Booking.id)
        )
    )


def outbox_count(kind: str) -> int:
    """Return how many messages of ``kind`` are in the outbox."""
    return db.session.scalar(
        select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == kind)
    )


def proposal_count() -> int:
    """Return how many proposals exist."""
    return db.session.scalar(select(func.count()).select_from(AllocationProposal))
