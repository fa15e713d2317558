"""Why a request was left unplaced, in words a coordinator can act on.

Each reason is ``"<code>: <text>"``; the codes are stable and listed in FORMAT.md.
Reasons are read off the final allocation: a date counts as blocked when, with
everyone else's places as they are, the learner could not take it.
"""

from __future__ import annotations

from scheduler.ledger import Ledger
from scheduler.problem import Problem, Request, UnplacedRequest

CODES = (
    "no-date",
    "no-group",
    "unavailable",
    "avoid",
    "protected-time",
    "clash",
    "capacity",
    "contention",
    "unallocated",
)


def reason(problem: Problem, ledger: Ledger, req: Request) -> str:
    """Return the ``code: text`` reason that ``req`` is unplaced in ``ledger``."""
    learner = problem.learners[req.learner]
    rules = problem.rules
    if req.in_year == 0:
        if req.offered == 0:
            return "no-date: the course has no dates"
        return (
            f"no-date: no date falls within the ASYE year"
            f" ({learner.start.isoformat()} to {learner.end.isoformat()})"
        )
    if req.open_to_learner == 0:
        return "no-group: no date in the ASYE year is open to the learner's groups"
    if req.available == 0:
        return "unavailable: unavailable on every date in the ASYE year"
    if not req.sessions:
        return (
            f"avoid: every remaining date ({req.available}) is one the learner must not be"
            " placed on (a cancelled place or a declined offer)"
        )
    cap = rules.cap_days(learner.fte)
    days = problem.course_by_id[req.course].days
    window = f"{rules.window_weeks} weeks"
    if days > cap + 1e-9:
        return (
            f"protected-time: the course takes {days:g} days but the cap is {cap:g} days"
            f" in any {window}"
        )
    blocked = [set(ledger.blocks(req.learner, si)) for si in req.sessions]
    if any(not b for b in blocked):
        return "unallocated: a date still has room; the run stopped before placing it"
    if all("capacity" in b for b in blocked):
        return "capacity: every eligible date is full"
    if all("protected-time" in b for b in blocked):
        return (
            f"protected-time: every eligible date would take the learner over {cap:g} days"
            f" in {window}"
        )
    if all("clash" in b for b in blocked):
        return "clash: every eligible date overlaps another of the learner's sessions"
    full = sum("capacity" in b for b in blocked)
    return (
        f"contention: {full} eligible date(s) full, {len(blocked) - full} blocked by the"
        " learner's other sessions (clash or protected time)"
    )


def unplaced_requests(problem: Problem, ledger: Ledger) -> tuple[UnplacedRequest, ...]:
    """Return every request the ledger leaves unplaced, with its reason."""
    out: list[UnplacedRequest] = []
    for req in problem.requests:
        if req.course not in ledger.held[req.learner]:
            learner = problem.learners[req.learner]
            out.append(UnplacedRequest(learner.id, req.course, reason(problem, ledger, req)))
    return tuple(out)
