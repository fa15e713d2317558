"""Placements built up one at a time, with the checks every placement must pass.

The greedy baseline, the solver's repair pass and the reason finder all place learners
through a Ledger, so they share one reading of capacity, clashes and protected time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from functools import lru_cache
from typing import Literal

from scheduler.problem import Assignment, Problem, Request
from scheduler.rules import EPSILON, windows_containing

Block = Literal["capacity", "clash", "protected-time"]


@lru_cache(maxsize=4096)
def _windows(day: date, weeks: int) -> tuple[date, ...]:
    # Sessions share few dates, and this is on the greedy's hot path.
    return tuple(windows_containing(day, weeks))


class Ledger:
    """Who holds which session, starting from the fixed placements."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.taken = [0] * len(problem.sessions)
        self.held: list[dict[str, int]] = [{} for _ in problem.learners]
        self.used: list[dict[date, float]] = [{} for _ in problem.learners]
        self.caps = [problem.rules.cap_days(lr.fte) for lr in problem.learners]
        for req in problem.requests:
            if req.fixed is not None:
                self.place(req, req.fixed)

    def blocks(self, learner: int, session: int) -> list[Block]:
        """Return what stops ``learner`` taking ``session`` now; empty when it fits."""
        p = self.problem
        s = p.sessions[session]
        found: list[Block] = []
        if self.taken[session] >= s.capacity:
            found.append("capacity")
        if any(s.overlaps(p.sessions[h]) for h in self.held[learner].values()):
            found.append("clash")
        if not self._within_cap(learner, session):
            found.append("protected-time")
        return found

    def fits(self, learner: int, session: int) -> bool:
        """Return True when ``learner`` could take ``session`` now."""
        p = self.problem
        s = p.sessions[session]
        return (
            self.taken[session] < s.capacity
            and self._within_cap(learner, session)
            and not any(s.overlaps(p.sessions[h]) for h in self.held[learner].values())
        )

    def _within_cap(self, learner: int, session: int) -> bool:
        p = self.problem
        days = p.days_of(session)
        used = self.used[learner]
        cap = self.caps[learner] + EPSILON
        return all(
            used.get(w, 0.0) + days <= cap
            for w in _windows(p.sessions[session].day, p.rules.window_weeks)
        )

    def place(self, req: Request, session: int) -> None:
        """Record ``req`` placed on ``session`` without checking it."""
        p = self.problem
        self.taken[session] += 1
        self.held[req.learner][req.course] = session
        used = self.used[req.learner]
        days = p.days_of(session)
        for w in _windows(p.sessions[session].day, p.rules.window_weeks):
            used[w] = used.get(w, 0.0) + days

    def try_place(self, req: Request, order: Iterable[int] | None = None) -> int | None:
        """Place ``req`` on the first session in ``order`` that fits; return it or None."""
        for si in req.sessions if order is None else order:
            if self.fits(req.learner, si):
                self.place(req, si)
                return si
        return None

    def assignments(self) -> tuple[Assignment, ...]:
        """Return every placement, learners in file order, courses in request order."""
        p = self.problem
        out: list[Assignment] = []
        for li, learner in enumerate(p.learners):
            held = self.held[li]
            for course in learner.requests:
                if course in held:
                    out.append(Assignment(learner.id, course, p.sessions[held[course]].id))
        return tuple(out)

    def preference_cost(self) -> int:
        """Return the total preference cost of the placements."""
        p = self.problem
        return sum(
            lr.preference_cost(course, p.sessions[si].id)
            for lr, held in zip(p.learners, self.held, strict=True)
            for course, si in held.items()
        )

    def placed(self) -> int:
        """Return the number of placements, fixed ones included."""
        return sum(len(h) for h in self.held)
