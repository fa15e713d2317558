"""First come, first served: the yardstick the solver has to beat.

Learners are taken in file order and, for each, courses in ``needs`` order; each
request takes the first session that still fits (preferences in the order listed,
then the rest by start time). Its bound comes from the flow relaxation in
``scheduler.bounds``, so it is a real proof, and the greedy answer is called optimal
only when it meets that bound.
"""

from __future__ import annotations

import time

from scheduler.bounds import candidates, cost_bound, placed_bound
from scheduler.ledger import Ledger
from scheduler.problem import Allocation, Problem
from scheduler.reasons import unplaced_requests


def greedy_ledger(problem: Problem) -> Ledger:
    """Return the placements first come, first served makes."""
    ledger = Ledger(problem)
    for req in problem.requests:
        if req.fixed is None:
            ledger.try_place(req)
    return ledger


def greedy(problem: Problem) -> Allocation:
    """Allocate first come, first served and bound the result."""
    began = time.perf_counter()
    ledger = greedy_ledger(problem)
    cand = candidates(problem)
    placed, cost = ledger.placed(), ledger.preference_cost()
    bound_placed = max(placed, placed_bound(cand))
    bound_cost = min(cost, cost_bound(cand, placed))
    return Allocation(
        status="optimal" if (placed, cost) == (bound_placed, bound_cost) else "feasible",
        placed=placed,
        unplaced=len(problem.requests) - placed,
        preference_cost=cost,
        bound_placed=bound_placed,
        bound_preference_cost=bound_cost,
        seconds=time.perf_counter() - began,
        assignments=ledger.assignments(),
        unplaced_requests=unplaced_requests(problem, ledger),
        warnings=problem.fixed_warnings,
    )
