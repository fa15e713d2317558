"""The protected-time rule, shared by the booking service and the allocation solver.

NQSWs get 10% of their working time for development: half a day a week, pro rata
for part-time. Training may not crowd into one stretch, so the rule is checked over
every run of ``window_weeks`` consecutive weeks that starts on a Monday.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

# Day lengths are halves and FTEs two decimals; this absorbs float noise only.
EPSILON = 1e-9


@dataclass(frozen=True)
class ProtectedTime:
    """Programme settings for protected development time."""

    protected_days_per_week: float = 0.5
    window_weeks: int = 4
    training_share: float = 1.0

    def __post_init__(self) -> None:
        if self.protected_days_per_week < 0:
            raise ValueError("protected_days_per_week must not be negative")
        if self.window_weeks < 1:
            raise ValueError("window_weeks must be at least 1")
        if not 0 <= self.training_share <= 1:
            raise ValueError("training_share must be between 0 and 1")

    def cap_days(self, fte: float) -> float:
        """Return the training days allowed in one window for a worker of this FTE."""
        return self.protected_days_per_week * self.window_weeks * fte * self.training_share


@dataclass(frozen=True)
class TrainingDay(Generic[K]):
    """One booked (or proposed) session: a key for the caller, its local date and length."""

    key: K
    day: date
    days: float


@dataclass(frozen=True)
class Breach(Generic[K]):
    """A window whose training days exceed the cap."""

    window_start: date
    window_end: date  # inclusive: the Sunday that closes the window
    used: float
    cap: float
    keys: tuple[K, ...]


def monday_of(day: date) -> date:
    """Return the Monday of the week holding ``day``."""
    return day - timedelta(days=day.weekday())


def windows_containing(day: date, window_weeks: int) -> list[date]:
    """Return the Monday starts of every window that contains ``day``."""
    first = monday_of(day)
    return [first - timedelta(weeks=k) for k in range(window_weeks)]


def breaches(rules: ProtectedTime, fte: float, items: Iterable[TrainingDay[K]]) -> list[Breach[K]]:
    """Return every window in which ``items`` exceed the protected-time cap, earliest first."""
    cap = rules.cap_days(fte)
    by_window: dict[date, list[TrainingDay[K]]] = {}
    for item in items:
        for start in windows_containing(item.day, rules.window_weeks):
            by_window.setdefault(start, []).append(item)
    found: list[Breach[K]] = []
    for start in sorted(by_window):
        members = sorted(by_window[start], key=lambda i: i.day)
        used = sum(i.days for i in members)
        if used > cap + EPSILON:
            found.append(
                Breach(
                    window_start=start,
                    window_end=start + timedelta(weeks=rules.window_weeks, days=-1),
                    used=used,
                    cap=cap,
                    keys=tuple(i.key for i in members),
                )
            )
    return found


def fits(rules: ProtectedTime, fte: float, items: Sequence[TrainingDay[K]]) -> bool:
    """Return True when no window breaks the cap."""
    return not breaches(rules, fte, items)
