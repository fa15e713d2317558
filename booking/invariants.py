"""The service's invariants, checked by ``flask check``, the worker and the test suite.

Each check is a function that returns a list of problems (empty when all is well).
Packages that plug in (invoicing) register their own checks with :func:`invariant`,
so booking never imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select

from .extensions import db
from .models import Booking, BookingStatus, Session, WaitlistEntry, WaitStatus

Check = Callable[[], list[str]]

CHECKS: dict[str, Check] = {}


@dataclass(frozen=True)
class Problem:
    check: str
    detail: str

    def __str__(self) -> str:
        return f"{self.check}: {self.detail}"


def invariant(name: str) -> Callable[[Check], Check]:
    """Register a check under ``name``."""

    def decorator(check: Check) -> Check:
        CHECKS[name] = check
        return check

    return decorator


def run_checks() -> list[Problem]:
    """Run every registered check and return what is broken."""
    return [Problem(name, detail) for name, check in CHECKS.items() for detail in check()]


@invariant("session places")
def session_places() -> list[str]:
    """taken == live bookings + held offers <= capacity, for every session."""
    live = (
        select(func.count())
        .where(Booking.session_id == Session.id, Booking.status == BookingStatus.BOOKED)
        .scalar_subquery()
    )
    held = (
        select(func.count())
        .where(WaitlistEntry.session_id == Session.id, WaitlistEntry.status == WaitStatus.OFFERED)
        .scalar_subquery()
    )
    rows = db.session.execute(
        select(Session.id, Session.taken, Session.capacity, live, held).where(
            (Session.taken != live + held) | (Session.taken > Session.capacity)
        )
    ).all()
    return [
        f"session {sid}: taken {taken}, capacity {capacity}, "
        f"{n_live} live booking(s) and {n_held} held offer(s)"
        for sid, taken, capacity, n_live, n_held in rows
    ]
