"""Cheap proved bounds from a network-flow relaxation.

Dropping clashes and protected time leaves a transportation problem (requests to
sessions, sessions limited by their free places), which a flow solves exactly. Its
maximum flow bounds the placements of any allocation; its cheapest flow of a given
size bounds the preference cost of any allocation with that many placements.
"""

from __future__ import annotations

from dataclasses import dataclass

from ortools.graph.python import max_flow, min_cost_flow

from scheduler.ledger import Ledger
from scheduler.problem import Problem
from scheduler.rules import EPSILON


@dataclass(frozen=True)
class Candidates:
    """The sessions each open request could still take, given the fixed placements."""

    requests: tuple[int, ...]  # indices into problem.requests
    sessions: tuple[tuple[int, ...], ...]  # aligned with ``requests``
    costs: tuple[tuple[int, ...], ...]
    free: tuple[int, ...]  # per session: places left after fixed placements
    fixed_placed: int
    fixed_cost: int


def candidates(problem: Problem) -> Candidates:
    """Return, per unfixed request, the sessions that fit alongside the fixed placements."""
    ledger = Ledger(problem)
    reqs: list[int] = []
    sessions: list[tuple[int, ...]] = []
    costs: list[tuple[int, ...]] = []
    room = [s.capacity - t for s, t in zip(problem.sessions, ledger.taken, strict=True)]
    days = [problem.days_of(i) for i in range(len(problem.sessions))]
    for ri, req in enumerate(problem.requests):
        if req.fixed is not None:
            continue
        if ledger.held[req.learner]:
            ok = [
                (si, c)
                for si, c in zip(req.sessions, req.costs, strict=True)
                if ledger.fits(req.learner, si)
            ]
        else:
            # Nothing held: a date fits when it has room and is no longer than the cap.
            cap = ledger.caps[req.learner] + EPSILON
            ok = [
                (si, c)
                for si, c in zip(req.sessions, req.costs, strict=True)
                if room[si] > 0 and days[si] <= cap
            ]
        reqs.append(ri)
        sessions.append(tuple(si for si, _ in ok))
        costs.append(tuple(c for _, c in ok))
    free = tuple(
        max(0, s.capacity - t) for s, t in zip(problem.sessions, ledger.taken, strict=True)
    )
    return Candidates(
        tuple(reqs), tuple(sessions), tuple(costs), free, ledger.placed(), ledger.preference_cost()
    )


def _network(cand: Candidates) -> tuple[list[int], list[int], list[int], list[int], int, int]:
    n_req = len(cand.requests)
    source, sink = 0, 1
    tails: list[int] = []
    heads: list[int] = []
    caps: list[int] = []
    costs: list[int] = []
    for k, (ss, cs) in enumerate(zip(cand.sessions, cand.costs, strict=True)):
        if not ss:
            continue
        tails.append(source)
        heads.append(2 + k)
        caps.append(1)
        costs.append(0)
        for si, c in zip(ss, cs, strict=True):
            tails.append(2 + k)
            heads.append(2 + n_req + si)
            caps.append(1)
            costs.append(c)
    for si, f in enumerate(cand.free):
        if f > 0:
            tails.append(2 + n_req + si)
            heads.append(sink)
            caps.append(f)
            costs.append(0)
    return tails, heads, caps, costs, source, sink


def placed_bound(cand: Candidates) -> int:
    """Return an upper bound on placements (fixed ones included)."""
    tails, heads, caps, _, source, sink = _network(cand)
    if not tails:
        return cand.fixed_placed
    flow = max_flow.SimpleMaxFlow()
    for t, h, c in zip(tails, heads, caps, strict=True):
        flow.add_arc_with_capacity(t, h, c)
    if flow.solve(source, sink) != flow.OPTIMAL:
        raise RuntimeError("max flow failed")
    return cand.fixed_placed + int(flow.optimal_flow())


def cost_bound(cand: Candidates, placed: int) -> int:
    """Return a lower bound on the preference cost of any allocation placing ``placed``."""
    amount = placed - cand.fixed_placed
    if amount <= 0:
        return cand.fixed_cost
    tails, heads, caps, costs, source, sink = _network(cand)
    if not tails:
        return cand.fixed_cost
    flow = min_cost_flow.SimpleMinCostFlow()
    for t, h, c, w in zip(tails, heads, caps, costs, strict=True):
        flow.add_arc_with_capacity_and_unit_cost(t, h, c, w)
    flow.set_node_supply(source, amount)
    flow.set_node_supply(sink, -amount)
    if flow.solve() != flow.OPTIMAL:
        # More placements than the relaxation allows: no such allocation exists at all.
        return cand.fixed_cost
    return cand.fixed_cost + int(flow.optimal_cost())
