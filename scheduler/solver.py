"""Optimal allocation: a 0/1 model solved by MIP (SCIP) or CP-SAT, with proved bounds.

Formulation (the measurements behind each choice are in benchmarks/RESULTS.md):

* one 0/1 variable per (request, session) pair that survives the static rules and
  fits alongside the learner's fixed placements;
* at most one session per request; capacity only on sessions that more requests
  could use than have places (the rest can never bind);
* clashes as one "at most one" per maximal set of sessions sharing an instant (in an
  interval graph these are the sets live at some session's start), cut to each learner;
* protected time as one knapsack row per window that could actually overflow, in whole
  units of the smallest day fraction, dropping windows that another one implies;
* learners only interact through capacity rows that can bind, so the model splits into
  independent parts. Each part is its own task with its own share of the time (in
  proportion to its size; time a task leaves unused flows on to the next), solved on
  ``workers`` threads side by side when every part fits a MIP, one at a time when some
  part is improved in Python (which holds the interpreter lock); parts not proved
  optimal then share the time left. Only tiny parts are batched, to save solver starts.
* the greedy answer is every part's start and floor: by default no part ends with
  fewer placements or a higher preference cost than greedy's answer in it.
* the time limit counts from the caller's clock (``began``) and covers building,
  solving, checking and explaining: stages start only when their measured cost fits
  (``STAGE_RATE``, ``MIP_RATE``), and ``_reserve`` keeps back the final phase.

Engines, per batch:

* ``mip`` (default): SCIP (through pywraplp, which builds big models several times
  faster than MathOpt here), lexicographic in two phases: maximise placements, then
  hold that count as a floor and minimise preference cost, each phase hinted with the
  best answer so far. Its LP relaxation is close to the integer optimum on these
  instances; CP-SAT with two workers found good answers but proved weak bounds.
* batches above ``LARGE_VARIABLES`` (one MIP would not finish in time), when the
  learners fall into groups joined only by sessions open to all (regions and national
  online dates): ``_linked``. PDLP solves the LP of one weighted objective
  (``PLACEMENT_WEIGHT`` per placement less its cost); its values share the open
  sessions' places among the groups, and one exact MIP per group (HiGHS) gives the
  answer. The proof is a Lagrangian bound: the same groups with the open sessions
  priced by the LP's duals instead of limited. Group MIPs run on ``workers`` threads.
* other big batches, and parts whose share of time is too short for a MIP
  (``MIP_RATE``): ``_large``. Where learners gather into few classes (alike in cap,
  fixed places and open dates), column generation (a master LP over patterns of
  sessions, priced by each class's exact MIP) finds patterns that fit together within
  capacity, shared out by min-cost flow and filled; otherwise greedy's answer is the
  start. Then each course in turn is re-assigned
  for everyone at once by min-cost flow (``_sweep``), the learners who pay most are
  re-solved one at a time, and neighbourhoods of ``NEIGHBOURHOOD`` learners are
  re-solved exactly until the time is up. The bound is the lower of the transport
  relaxation (a min-cost flow) with each learner capped at their class's maximum and
  the column generation's Lagrangian bound.
* ``cp-sat``: the same model in CP-SAT, kept for comparison.

The greedy answer is always the starting point and the floor: ``solve`` never returns
fewer placements than ``scheduler.baseline``, nor (``within_greedy_cost``, the default)
a higher preference cost.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from ortools.graph.python import min_cost_flow
from ortools.linear_solver import pywraplp
from ortools.sat.python import cp_model

from scheduler.baseline import greedy_ledger
from scheduler.bounds import Candidates, candidates, cost_bound
from scheduler.check import violations
from scheduler.ledger import Ledger
from scheduler.problem import Allocation, Problem
from scheduler.reasons import unplaced_requests
from scheduler.rules import EPSILON, windows_containing

log = logging.getLogger(__name__)

Engine = Literal["mip", "cp-sat"]

# Parts smaller than this many variables are solved together in one model, so
# thousands of one-learner parts do not each pay for a solver start.
BATCH_VARIABLES = 20000
# Above this a batch is too big for one MIP in a minute on two cores: start from the
# transport relaxation instead (see ``_large``).
LARGE_VARIABLES = 40000
# Above this many distinct learner shapes, skip the per-learner caps on the transport.
PERSONAL_CLASSES = 3000
# A MIP gets a part only with at least a second per this many variables: SCIP cannot be
# stopped inside its root LP, which took 30 s for 30,000 variables on a loaded machine
# (benchmarks/RESULTS.md); with less time the part is improved by local search.
MIP_RATE = 3000
# Building a part's rows, a transport flow, or a sweep's or a neighbourhood search's
# indexes each take about a second per this many variables in Python on a loaded
# machine (measured on the regional family, benchmarks/RESULTS.md). A stage starts only
# when that fits before its part's time is up, so the time limit holds.
STAGE_RATE = 15000
# Column generation runs only when classes hold this many learners on average.
CLASS_SIZE = 5
# ... and when there are at most this many: each round prices every class by a MIP, and
# 3 rounds over the online family's classes took 51 s under load without beating greedy.
MOST_CLASSES = 200
# Learners re-solved together in each improvement step of a large batch.
NEIGHBOURHOOD = 30
# The group MIPs of ``_linked``: HiGHS solved every national region of two seeds in at
# most 8 s; SCIP stalled on one for 40 s (benchmarks/RESULTS.md).
GROUP_ENGINE = "HIGHS"
# Groups of learners smaller than this are solved together in ``_linked``.
GROUP_VARIABLES = BATCH_VARIABLES // 10
# One placement is worth this much preference cost in the weighted objective of
# ``_linked``; its bounds hold for any weight.
PLACEMENT_WEIGHT = 100


@dataclass(frozen=True)
class Progress:
    """A report from a running solve, in whole-problem figures."""

    phase: str  # "placements" or "preferences": which figure is being improved now
    objective: float  # placements or preference cost, after ``phase``
    bound: float  # the proved bound on that figure so far
    seconds: float  # since the run began
    placed: int = 0
    placed_bound: int = 0
    preference_cost: int = 0
    cost_bound: int = 0  # the least cost at these placements, proved so far
    greedy_placed: int = 0  # first come, first served, for comparison
    greedy_cost: int = 0
    time_limit: float = 0.0


ProgressFn = Callable[[Progress], None]


@dataclass
class _Var:
    request: int  # index into Candidates.requests
    session: int
    cost: int


@dataclass
class _Part:
    """Learners that share no binding session with anyone outside the part."""

    learners: list[int]
    variables: list[_Var] = field(default_factory=list)


@dataclass
class _Rows:
    """An engine-neutral 0/1 model: at-most-one sets and ``sum(coef * x) <= rhs`` rows."""

    vars: list[_Var]
    amo: list[list[int]]
    le: list[tuple[list[int], list[int], int]]
    # Which ``le`` rows are session capacities, and of which session.
    capacity: dict[int, int] = field(default_factory=dict)


@dataclass
class _Outcome:
    values: list[bool]
    count: int
    count_bound: int
    cost: int
    cost_bound: int


def _scale(problem: Problem) -> int:
    """Return the smallest factor that turns every course length into whole units."""
    for k in (1, 2, 4, 8, 10, 20, 40, 100, 1000):
        if all(abs(c.days * k - round(c.days * k)) < 1e-6 for c in problem.courses):
            return k
    return 1000


class _Context:
    """Per-problem data the row builder needs for every batch."""

    def __init__(self, problem: Problem, cand: Candidates) -> None:
        self.problem = problem
        self.cand = cand
        scale = _scale(problem)
        weeks = problem.rules.window_weeks
        self.units = [round(problem.days_of(i) * scale) for i in range(len(problem.sessions))]
        by_day: dict[date, tuple[date, ...]] = {}
        self.windows = [
            by_day.setdefault(s.day, tuple(windows_containing(s.day, weeks)))
            for s in problem.sessions
        ]
        self.caps = [
            math.floor((problem.rules.cap_days(lr.fte) + EPSILON) * scale)
            for lr in problem.learners
        ]
        self.fixed_units: list[dict[date, int]] = [{} for _ in problem.learners]
        for req in problem.requests:
            if req.fixed is not None:
                used = self.fixed_units[req.learner]
                for w in self.windows[req.fixed]:
                    used[w] = used.get(w, 0) + self.units[req.fixed]
        self.learner_of = [problem.requests[ri].learner for ri in cand.requests]
        # Maximal sets of sessions live at one instant, found once for everyone.
        # One sweep over start times, keeping the sessions still running.
        sessions = problem.sessions
        starting: dict[Any, list[int]] = {}
        for i, s in enumerate(sessions):
            starting.setdefault(s.start, []).append(i)
        cliques: set[frozenset[int]] = set()
        running: list[int] = []
        for t in sorted(starting):
            running = [j for j in running if sessions[j].end > t] + starting[t]
            if len(running) > 1:
                cliques.add(frozenset(running))
        self.cliques = [c for c in cliques if not any(c < d for d in cliques)]
        self.cliques_of: dict[int, list[int]] = {}
        for k, c in enumerate(self.cliques):
            for si in c:
                self.cliques_of.setdefault(si, []).append(k)

    def rows(self, parts: Sequence[_Part]) -> _Rows:
        """Return the model rows for the variables of ``parts``."""
        cand = self.cand
        variables = [v for part in parts for v in part.variables]
        rows = _Rows(variables, [], [])
        by_request: dict[int, list[int]] = {}
        by_session: dict[int, list[int]] = {}
        by_learner: dict[int, list[int]] = {}
        for i, v in enumerate(variables):
            by_request.setdefault(v.request, []).append(i)
            by_session.setdefault(v.session, []).append(i)
            by_learner.setdefault(self.learner_of[v.request], []).append(i)
        rows.amo.extend(idx for idx in by_request.values() if len(idx) > 1)
        for si, idx in by_session.items():
            if len(idx) > cand.free[si]:
                rows.capacity[len(rows.le)] = si
                rows.le.append((idx, [1] * len(idx), cand.free[si]))
        for li, idx in by_learner.items():
            self._clashes(rows, idx)
            self._windows(rows, li, idx)
        return rows

    def _clashes(self, rows: _Rows, idx: list[int]) -> None:
        touched: dict[int, list[int]] = {}
        for i in idx:
            for k in self.cliques_of.get(rows.vars[i].session, ()):
                touched.setdefault(k, []).append(i)
        seen: set[frozenset[int]] = set()
        for members in touched.values():
            if len({rows.vars[i].request for i in members}) < 2:
                continue
            key = frozenset(members)
            if key not in seen:
                seen.add(key)
                rows.amo.append(members)

    def _windows(self, rows: _Rows, learner: int, idx: list[int]) -> None:
        p = self.problem
        cap = self.caps[learner]
        fixed = self.fixed_units[learner]
        ordered = sorted(idx, key=lambda i: p.sessions[rows.vars[i].session].day)
        span: dict[date, list[int]] = {}  # window -> [first, last] position in ``ordered``
        for pos, i in enumerate(ordered):
            for w in self.windows[rows.vars[i].session]:
                if w in span:
                    span[w][1] = pos
                else:
                    span[w] = [pos, pos]
        best: dict[tuple[int, int], int] = {}
        for w, (a, b) in span.items():
            rhs = cap - fixed.get(w, 0)
            # A window binds only if one session per request could overflow it.
            most: dict[int, int] = {}
            for i in ordered[a : b + 1]:
                r = rows.vars[i].request
                most[r] = max(most.get(r, 0), self.units[rows.vars[i].session])
            if sum(most.values()) <= rhs:
                continue
            best[(a, b)] = min(best.get((a, b), rhs), rhs)
        # Windows have one length, so a window's members can only sit inside another's
        # when the two share a first or a last member.
        by_a: dict[int, list[tuple[int, int]]] = {}
        by_b: dict[int, list[tuple[int, int]]] = {}
        for a, b in best:
            by_a.setdefault(a, []).append((a, b))
            by_b.setdefault(b, []).append((a, b))
        for (a, b), rhs in best.items():
            wider = [k for k in by_a[a] if k[1] > b] + [k for k in by_b[b] if k[0] < a]
            if any(best[k] <= rhs for k in wider):
                continue
            members = ordered[a : b + 1]
            rows.le.append((members, [self.units[rows.vars[i].session] for i in members], rhs))


def _split(problem: Problem, cand: Candidates) -> list[_Part]:
    """Return the independent parts: learners joined by sessions that can fill up."""
    parent = list(range(len(problem.learners)))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    users: dict[int, list[int]] = {}
    for k, ss in enumerate(cand.sessions):
        li = problem.requests[cand.requests[k]].learner
        for si in ss:
            users.setdefault(si, []).append(li)
    for si, lis in users.items():
        if len(lis) > cand.free[si]:
            root = find(lis[0])
            for li in lis[1:]:
                other = find(li)
                if other != root:
                    parent[other] = root
    parts: dict[int, _Part] = {}
    for k, (ss, cs) in enumerate(zip(cand.sessions, cand.costs, strict=True)):
        li = problem.requests[cand.requests[k]].learner
        part = parts.setdefault(find(li), _Part([]))
        if not part.learners or part.learners[-1] != li:
            part.learners.append(li)
        part.variables.extend(_Var(k, si, c) for si, c in zip(ss, cs, strict=True))
    return [p for p in parts.values() if p.variables]


def _batches(parts: list[_Part]) -> list[list[_Part]]:
    parts = sorted(parts, key=lambda p: -len(p.variables))
    out: list[list[_Part]] = []
    small: list[_Part] = []
    size = 0
    for part in parts:
        if len(part.variables) >= BATCH_VARIABLES:
            out.append([part])
            continue
        small.append(part)
        size += len(part.variables)
        if size >= BATCH_VARIABLES:
            out.append(small)
            small, size = [], 0
    if small:
        out.append(small)
    return out


@dataclass
class _Totals:
    """Where one task's progress goes: its own figures, posted to the run's board.

    The functions below report part figures as ``base + value`` (the bases are 0 here);
    the board adds every task's latest figures up into whole-problem progress.
    """

    placed: int
    placed_bound: int
    cost: int
    cost_bound: int
    began: float
    on_progress: ProgressFn | None
    board: _Board | None = None
    task: int = 0

    def report(self, phase: str, objective: float, bound: float) -> None:
        if self.board is not None:
            self.board.post(self.task, phase, objective, bound)


class _Board:
    """Whole-problem progress from the latest figures of every task, safe across threads."""

    def __init__(
        self,
        fixed: tuple[int, int],
        tasks: Sequence[tuple[int, int, int]],
        greedy: tuple[int, int],
        began: float,
        time_limit: float,
        on_progress: ProgressFn | None,
    ) -> None:
        self.fixed = fixed
        # Per task: [placed, placed bound, cost, cost bound], from greedy's answer.
        self.figures = [[count, bound, cost, 0] for count, bound, cost in tasks]
        self.greedy = greedy
        self.began = began
        self.time_limit = time_limit
        self.on_progress = on_progress
        self.lock = threading.Lock()

    def post(self, task: int, phase: str, objective: float, bound: float) -> None:
        with self.lock:
            row = self.figures[task]
            if phase == "placements":
                row[0], row[1] = round(objective), max(round(objective), math.floor(bound))
            else:
                row[2], row[3] = round(objective), max(0, min(round(objective), math.ceil(bound)))
            self.emit(phase)

    def settle(self, task: int, out: _Outcome) -> None:
        with self.lock:
            self.figures[task] = [out.count, out.count_bound, out.cost, out.cost_bound]
            self.emit("placements" if out.count < out.count_bound else "preferences")

    def emit(self, phase: str) -> None:
        if self.on_progress is None:
            return
        placed = self.fixed[0] + sum(r[0] for r in self.figures)
        cost = self.fixed[1] + sum(r[2] for r in self.figures)
        self.on_progress(
            Progress(
                phase=phase,
                objective=placed if phase == "placements" else cost,
                bound=self.fixed[0] + sum(r[1] for r in self.figures)
                if phase == "placements"
                else self.fixed[1] + sum(r[3] for r in self.figures),
                seconds=time.perf_counter() - self.began,
                placed=placed,
                placed_bound=self.fixed[0] + sum(r[1] for r in self.figures),
                preference_cost=cost,
                cost_bound=self.fixed[1] + sum(r[3] for r in self.figures),
                greedy_placed=self.greedy[0],
                greedy_cost=self.greedy[1],
                time_limit=self.time_limit,
            )
        )


@dataclass
class _Task:
    """One independent part (or a few tiny ones) to solve within its share of the time."""

    parts: list[_Part]
    size: int
    greedy: list[bool] = field(default_factory=list)
    greedy_cost: int = 0
    requests: int = 0
    variables: list[_Var] = field(default_factory=list)
    capped: bool = True  # never above greedy's cost in this part
    rows: _Rows | None = None
    out: _Outcome | None = None
    seconds: float = 0.0

    @property
    def proved(self) -> bool:
        out = self.out
        return out is not None and out.count >= out.count_bound and out.cost <= out.cost_bound


def _reserve(problem: Problem) -> float:
    """Return the seconds kept back for merging, checking and explaining both answers.

    Measured on the regional family under load (benchmarks/RESULTS.md): the check,
    the fill pass and the reasons for the solver's and greedy's answers took 10 s for
    30,000 requests at a load average of 6; the constant covers parts that overrun.
    """
    return 0.4 + 3e-4 * len(problem.requests)


def solve(
    problem: Problem,
    *,
    time_limit: float = 60.0,
    workers: int = 2,
    on_progress: ProgressFn | None = None,
    engine: Engine = "mip",
    began: float | None = None,
    within_greedy_cost: bool = True,
) -> Allocation:
    """Allocate to maximise placements, then minimise preference cost, within the rules.

    Never fewer placements than first come, first served (``scheduler.baseline``),
    and with ``within_greedy_cost`` never a higher preference cost either: each part
    starts from greedy's answer and only improves on it. Without it the objective is
    purely lexicographic (a caller whose costs price moving a booked place wants
    that: greedy moves nobody). ``workers`` is how many parts (or group MIPs, or
    CP-SAT workers) run at once.
    The whole call, building and explaining included, ends within ``time_limit``
    seconds of ``began`` (a ``time.perf_counter()`` reading; default: now), so a
    caller that loaded the problem first can count that time too.
    """
    return solve_with_baseline(
        problem,
        time_limit=time_limit,
        workers=workers,
        on_progress=on_progress,
        engine=engine,
        began=began,
        within_greedy_cost=within_greedy_cost,
    )[0]


def solve_with_baseline(
    problem: Problem,
    *,
    time_limit: float = 60.0,
    workers: int = 2,
    on_progress: ProgressFn | None = None,
    engine: Engine = "mip",
    began: float | None = None,
    within_greedy_cost: bool = True,
) -> tuple[Allocation, Allocation]:
    """Return ``solve``'s allocation and greedy's, both with the bounds the solve proved."""
    began = time.perf_counter() if began is None else began
    end = began + time_limit
    building = time.perf_counter()
    cand = candidates(problem)
    start = greedy_ledger(problem)
    hint: set[tuple[int, int]] = set()
    for k, ri in enumerate(cand.requests):
        req = problem.requests[ri]
        held = start.held[req.learner].get(req.course)
        if held is not None:
            hint.add((k, held))

    ctx = _Context(problem, cand)
    tasks = [
        _Task(batch, sum(len(p.variables) for p in batch))
        for batch in _batches(_split(problem, cand))
    ]
    for task in tasks:
        variables = task.variables = [v for p in task.parts for v in p.variables]
        task.greedy = [(v.request, v.session) in hint for v in variables]
        task.greedy_cost = sum(v.cost for v, on in zip(variables, task.greedy, strict=True) if on)
        task.requests = len({v.request for v in variables})
    greedy_figures = (start.placed(), start.preference_cost())
    board = _Board(
        (cand.fixed_placed, cand.fixed_cost),
        [(sum(t.greedy), t.requests, t.greedy_cost) for t in tasks],
        greedy_figures,
        began,
        time_limit,
        on_progress,
    )
    board.emit("placements")  # greedy's figures: the first progress to show
    # 5% of the limit more for solver calls that stop a little after being told to.
    # The final phase does about as much Python work as building did (checking every
    # place, the reasons for both answers), so on a loaded machine, where building
    # took longer, keep back as much as building took.
    reserve = max(_reserve(problem), time.perf_counter() - building)
    deadline = end - reserve - 0.05 * time_limit
    for task in tasks:
        task.capped = within_greedy_cost
    _run_tasks(tasks, ctx, board, deadline, workers, engine)
    # Time left by parts that finished early goes to those not yet proved.
    hard = [t for t in tasks if not t.proved]
    if hard and deadline - time.perf_counter() > 1.0:
        _run_tasks(hard, ctx, board, deadline, workers, engine, again=True)

    chosen: dict[int, int] = {}
    count_bound = cand.fixed_placed
    cost_bound_sum = cand.fixed_cost
    counts_proven = True
    for task in tasks:
        out = task.out
        assert out is not None
        count_bound += out.count_bound
        cost_bound_sum += min(out.cost_bound, out.cost)
        counts_proven = counts_proven and out.count == out.count_bound
        chosen.update(
            (v.request, v.session) for v, val in zip(task.variables, out.values, strict=True) if val
        )

    ledger = Ledger(problem)
    for k, si in chosen.items():
        ledger.place(problem.requests[cand.requests[k]], si)
    placed_tasks = ledger.placed()
    # After a timeout a request may still fit somewhere; place it rather than report it,
    # as long as the cost stays within greedy's.
    spare: float = greedy_figures[1] - ledger.preference_cost() if within_greedy_cost else math.inf
    for k, ri in enumerate(cand.requests):
        req = problem.requests[ri]
        if req.course in ledger.held[req.learner]:
            continue
        affordable = [
            si for si, c in zip(cand.sessions[k], cand.costs[k], strict=True) if c <= spare
        ]
        took = ledger.try_place(req, affordable)
        if took is not None:
            spare -= cand.costs[k][cand.sessions[k].index(took)]
    placed, cost = ledger.placed(), ledger.preference_cost()
    broken = violations(problem, ledger.assignments())
    if broken:  # pragma: no cover - a solver bug; never hand out a wrong allocation
        log.error("solver answer breaks %d rules (first: %s); using greedy", len(broken), broken[0])
        placed, cost = -1, 0
    if (placed, -cost) < (greedy_figures[0], -greedy_figures[1]) or (
        within_greedy_cost and cost > greedy_figures[1]
    ):
        ledger, placed, cost = start, greedy_figures[0], greedy_figures[1]
    bound_placed = max(placed, count_bound)
    arcs = sum(len(ss) for ss in cand.sessions)
    if placed == placed_tasks and counts_proven:
        bound_cost = cost_bound_sum
    elif time.perf_counter() + arcs / STAGE_RATE + reserve / 2 < end:
        bound_cost = cost_bound(cand, placed)
    else:
        bound_cost = cand.fixed_cost  # no time for the transport: the trivial bound
    bound_cost = min(bound_cost, cost)
    optimal = placed == bound_placed and cost == bound_cost
    seconds = time.perf_counter() - began
    result = Allocation(
        status="optimal" if optimal else "feasible",
        placed=placed,
        unplaced=len(problem.requests) - placed,
        preference_cost=cost,
        bound_placed=bound_placed,
        bound_preference_cost=bound_cost,
        seconds=seconds,
        assignments=ledger.assignments(),
        unplaced_requests=unplaced_requests(problem, ledger),
        warnings=problem.fixed_warnings,
    )
    g_placed, g_cost = greedy_figures
    g_bound_cost = min(g_cost, bound_cost) if g_placed == placed else min(g_cost, cand.fixed_cost)
    baseline = Allocation(
        status="optimal" if (g_placed, g_cost) == (bound_placed, g_bound_cost) else "feasible",
        placed=g_placed,
        unplaced=len(problem.requests) - g_placed,
        preference_cost=g_cost,
        bound_placed=bound_placed,
        bound_preference_cost=g_bound_cost,
        seconds=seconds,
        assignments=start.assignments(),
        unplaced_requests=unplaced_requests(problem, start)
        if ledger is not start
        else result.unplaced_requests,
        warnings=problem.fixed_warnings,
    )
    log.info("solve: %.2f s of %.2f s", time.perf_counter() - began, time_limit)
    return result, baseline


def _run_tasks(
    tasks: list[_Task],
    ctx: _Context,
    board: _Board,
    deadline: float,
    workers: int,
    engine: Engine,
    again: bool = False,
) -> None:
    """Solve the tasks on ``workers`` threads, biggest first, each within its share of time.

    A task's share is the time the workers have left, less what running tasks were
    promised, in proportion to its size among the tasks not yet started; so time a
    task leaves unused flows on to the ones after it.
    """
    lock = threading.Lock()
    queue = sorted(range(len(tasks)), key=lambda i: -tasks[i].size)
    promised: dict[int, float] = {}
    left = sum(tasks[i].size for i in queue) or 1
    # Parts too big for one MIP are improved in Python, which holds the interpreter
    # lock: side by side they would each get half the promised speed, so they go one
    # at a time, each with all the workers for its own MIPs.
    python = any(tasks[i].size > LARGE_VARIABLES for i in queue)
    lanes = 1 if python else max(1, min(workers, len(queue)))
    # With parts side by side each runs on one thread; a lone part gets them all.
    inner = 1 if lanes > 1 else max(1, workers)

    def take() -> tuple[int, float] | None:
        nonlocal left
        with lock:
            if not queue:
                return None
            i = queue.pop(0)
            now = time.perf_counter()
            room = lanes * max(0.0, deadline - now)
            room -= sum(max(0.0, u - now) for u in promised.values())
            share = room * tasks[i].size / max(1, left)
            left -= tasks[i].size
            until = min(deadline, now + max(0.05, share))
            promised[i] = until
            return i, until

    def work() -> None:
        while (got := take()) is not None:
            i, until = got
            t0 = time.perf_counter()
            log.info("part %d (%d variables): %.1f s", i, tasks[i].size, until - t0)
            _solve_task(tasks[i], i, ctx, board, until, engine, again, inner)
            tasks[i].seconds += time.perf_counter() - t0
            log.info(
                "part %d done in %.1f s (%.1f s over)",
                i,
                time.perf_counter() - t0,
                time.perf_counter() - until,
            )
            with lock:
                promised.pop(i, None)

    if lanes == 1:
        work()
        return
    with ThreadPoolExecutor(max_workers=lanes) as pool:
        for job in [pool.submit(work) for _ in range(lanes)]:
            job.result()


def _solve_task(
    task: _Task,
    index: int,
    ctx: _Context,
    board: _Board,
    until: float,
    engine: Engine,
    again: bool,
    workers: int,
) -> None:
    """Solve (or, ``again``, keep improving) one task, never leaving it worse than greedy."""
    totals = _Totals(0, 0, 0, 0, board.began, None, board, index)
    if task.rows is None:
        if time.perf_counter() + task.size / STAGE_RATE > until:
            # No time even to build the part: greedy's answer stands, bounds trivial.
            task.out = _Outcome(
                list(task.greedy), sum(task.greedy), task.requests, task.greedy_cost, 0
            )
            board.settle(index, task.out)
            return
        task.rows = ctx.rows(task.parts)
    rows = task.rows
    budget = max(0.05, until - time.perf_counter())
    before = task.out
    if before is not None:
        # More time for a part not yet proved: carry on from its answer.
        if (
            len(rows.vars) > LARGE_VARIABLES
            or engine == "cp-sat"
            or budget < len(rows.vars) / MIP_RATE
        ):
            values = _polish(rows, before.values, ctx, totals, before.count_bound, until, until)
            out = _Outcome(
                values, sum(values), before.count_bound, _cost(rows, values), before.cost_bound
            )
        else:
            out = _mip(rows, before.values, budget, totals)
            # Each cost bound holds for any count at least the one it was proved at.
            out.count_bound = min(out.count_bound, before.count_bound)
            out.cost_bound = min(out.cost, max(out.cost_bound, before.cost_bound))
    elif engine == "cp-sat":
        out = _cpsat(rows, task.greedy, budget, workers, totals)
    elif len(rows.vars) > LARGE_VARIABLES or budget < len(rows.vars) / MIP_RATE:
        out = _linked(rows, task.greedy, budget, totals, ctx, workers) or _large(
            rows, task.greedy, max(0.05, until - time.perf_counter()), totals, ctx
        )
    else:
        out = _mip(rows, task.greedy, budget, totals)
    task.out = _dominant(rows, out, task, ctx, totals, until)
    board.settle(index, task.out)


def _dominant(
    rows: _Rows, out: _Outcome, task: _Task, ctx: _Context, totals: _Totals, until: float
) -> _Outcome:
    """Return ``out``, or an answer no worse than greedy's on placements and on cost.

    Greedy is the floor on both counts. An answer with more placements but a higher
    cost is replaced by greedy's improved under a cost cap (greedy's own cost).
    """
    greedy = task.greedy
    count, cost = sum(greedy), task.greedy_cost
    if out.count >= count and out.cost <= cost:
        return out
    if not task.capped and (out.count, -out.cost) >= (count, -cost):
        return out
    left = until - time.perf_counter()
    if task.capped and out.count > count and left > len(rows.vars) / MIP_RATE:
        capped = _mip(rows, greedy, left, totals, cost_cap=cost)
        if capped.count >= count and capped.cost <= cost:
            greedy = capped.values
    elif task.capped and out.count > count and left > 0.5:
        values = _improve(
            rows,
            greedy,
            ctx.learner_of,
            until,
            lambda vs: totals.report("placements", sum(vs), out.count_bound),
            out.count_bound,
            cost_cap=cost,
        )
        if sum(values) >= count and _cost(rows, values) <= cost:
            greedy = values
    log.info("part kept within greedy's cost: %d placed, cost %d", sum(greedy), _cost(rows, greedy))
    # A cost bound proved at a higher count says nothing about a lower one.
    at = out.cost_bound if sum(greedy) >= out.count else 0
    return _Outcome(
        greedy, sum(greedy), out.count_bound, _cost(rows, greedy), min(at, _cost(rows, greedy))
    )


def _worth(rows: _Rows) -> list[int]:
    """Return each variable's value in the weighted objective: a placement less its cost."""
    return [PLACEMENT_WEIGHT - v.cost for v in rows.vars]


def _cost(rows: _Rows, values: Sequence[bool]) -> int:
    return sum(v.cost for v, val in zip(rows.vars, values, strict=True) if val)


# --- MIP and LP through pywraplp ----------------------------------------------------
# pywraplp rather than MathOpt: building the national model took 1.2 s against 4-10 s.


def _linear(
    rows: _Rows, solver_name: str, integer: bool
) -> tuple[pywraplp.Solver, list[pywraplp.Variable], list[pywraplp.Constraint]]:
    solver = pywraplp.Solver.CreateSolver(solver_name)
    if solver is None:  # pragma: no cover - every OR-Tools wheel ships SCIP
        raise RuntimeError(f"OR-Tools has no {solver_name}")
    x = [solver.IntVar(0, 1, "") if integer else solver.NumVar(0, 1, "") for _ in rows.vars]
    cons: list[pywraplp.Constraint] = []
    for members in rows.amo:
        c = solver.Constraint(-solver.infinity(), 1)
        for i in members:
            c.SetCoefficient(x[i], 1)
        cons.append(c)
    for members, coefs, rhs in rows.le:
        c = solver.Constraint(-solver.infinity(), rhs)
        for i, co in zip(members, coefs, strict=True):
            c.SetCoefficient(x[i], co)
        cons.append(c)
    return solver, x, cons


def _objective(
    solver: pywraplp.Solver, x: list[pywraplp.Variable], weights: Sequence[float], maximize: bool
) -> None:
    obj = solver.Objective()
    obj.Clear()
    for xi, w in zip(x, weights, strict=True):
        if w:
            obj.SetCoefficient(xi, w)
    if maximize:
        obj.SetMaximization()
    else:
        obj.SetMinimization()


def _at_least(
    solver: pywraplp.Solver, x: list[pywraplp.Variable], count: int, exact: bool = False
) -> None:
    floor = solver.Constraint(count, count if exact else solver.infinity())
    for xi in x:
        floor.SetCoefficient(xi, 1)


# Objectives are whole numbers: stop only when the gap is below one. HiGHS also prints
# a banner on standard output unless told not to, which would corrupt the CLI's JSON.
_EXACT = {
    "SCIP": "limits/absgap = 0.5\nlimits/gap = 0\n",
    "HIGHS": "output_flag = false\nmip_rel_gap = 0\nmip_abs_gap = 0.5\n",
}


def _run_mip(
    solver: pywraplp.Solver,
    x: list[pywraplp.Variable],
    hint: Sequence[bool] | None,
    seconds: float,
    engine: str = "SCIP",
) -> tuple[list[bool] | None, float]:
    """Solve; return the values found (or None) and the proved bound."""
    if seconds < 0.1:
        # No time left: do not start (a solver told "50 ms" may take seconds to stop).
        return None, math.inf if solver.Objective().maximization() else -math.inf
    if engine == "HIGHS":
        # HiGHS overran its limit by 10-15% on the loaded machine; ask for less.
        seconds *= 0.8
    solver.SetTimeLimit(max(50, int(seconds * 1000)))
    if hint is not None:
        solver.SetHint(x, [float(h) for h in hint])
    solver.SetSolverSpecificParametersAsString(_EXACT[engine])
    status = solver.Solve()
    if status not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        # Stopped before any answer: what BestBound says then is no proof (HiGHS gave 0
        # for a maximisation, which "proved" greedy optimal on a loaded machine).
        return None, math.inf if solver.Objective().maximization() else -math.inf
    return [xi.solution_value() > 0.5 for xi in x], solver.Objective().BestBound()


def _mip(
    rows: _Rows,
    hint: list[bool],
    budget: float,
    totals: _Totals,
    lazy_cost: bool = False,
    cost_cap: int | None = None,
) -> _Outcome:
    """Solve a batch with SCIP, placements first, then preference cost.

    With ``lazy_cost`` the cost phase runs only when the hint's count cannot be beaten,
    which is what a neighbourhood search wants: more places first, cheaper ones after.
    With ``cost_cap`` only answers costing at most that are allowed (the hint must be
    one), so the count bound is then for those answers only.
    """
    t0 = time.perf_counter()
    solver, x, _ = _linear(rows, "SCIP", integer=True)
    if cost_cap is not None:
        cap = solver.Constraint(-solver.infinity(), cost_cap)
        for xi, v in zip(x, rows.vars, strict=True):
            if v.cost:
                cap.SetCoefficient(xi, v.cost)
    _objective(solver, x, [1] * len(x), maximize=True)
    values, bound = _run_mip(solver, x, hint, budget * 0.6 - (time.perf_counter() - t0))
    if values is None or sum(values) < sum(hint):
        values = list(hint)
    count = sum(values)
    n_requests = len({v.request for v in rows.vars})
    count_bound = math.floor(bound + 1e-6) if math.isfinite(bound) else n_requests
    count_bound = max(min(count_bound, n_requests), count)
    totals.report("placements", totals.placed + count, totals.placed_bound + count_bound)
    if lazy_cost and count > sum(hint):
        return _Outcome(values, count, count_bound, _cost(rows, values), 0)

    # With the count proved maximal, holding it exactly prunes more than a floor.
    _at_least(solver, x, count, exact=count == count_bound)
    _objective(solver, x, [v.cost for v in rows.vars], maximize=False)
    cost = _cost(rows, values)
    better, bound = _run_mip(solver, x, values, budget - (time.perf_counter() - t0))
    if better is not None and sum(better) >= count and _cost(rows, better) <= cost:
        values, cost = better, _cost(rows, better)
    cost_lb = math.ceil(bound - 1e-6) if math.isfinite(bound) else 0
    cost_lb = min(max(cost_lb, 0), cost)
    totals.report("preferences", totals.cost + cost, totals.cost_bound + cost_lb)
    return _Outcome(values, count, count_bound, cost, cost_lb)


def _fits_fixed(ctx: _Context, learner: int, session: int) -> bool:
    """Return True when ``session`` alone fits ``learner``'s cap beside their fixed places."""
    used = ctx.fixed_units[learner]
    cap = ctx.caps[learner]
    return all(used.get(w, 0) + ctx.units[session] <= cap for w in ctx.windows[session])


@dataclass
class _Class:
    """Learners alike in cap, fixed protected time and open dates (absences aside).

    ``model`` is their own rows on a relaxation (unavailability and clashes with fixed
    places dropped), kept built so the column generation can re-price it. Sessions
    that cannot fit beside the fixed places' protected time are left out of the
    options (the learner's own candidates never include them); without that, a fixed
    place already over the cap made the model infeasible, and its meaningless bound of
    0 capped a learner who could still be placed elsewhere.
    """

    members: list[int]
    requests: int
    model: _Rows
    solver: pywraplp.Solver
    x: list[pywraplp.Variable]
    cap: int = 0  # the most placements the model allows, proved
    pattern: tuple[int, ...] = ()  # sessions of one allocation reaching ``cap``

    def best(self, price: dict[int, float]) -> tuple[tuple[int, ...], float, float] | None:
        """Return the best sessions at these prices, their value and the proved bound."""
        weights = [1 - price.get(v.session, 0.0) for v in self.model.vars]
        _objective(self.solver, self.x, weights, maximize=True)
        self.solver.SetTimeLimit(2000)
        if self.solver.Solve() not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
            return None
        on = [
            v.session
            for v, xi in zip(self.model.vars, self.x, strict=True)
            if xi.solution_value() > 0.5
        ]
        chosen = tuple(sorted(on))
        return chosen, self.solver.Objective().Value(), self.solver.Objective().BestBound()


def _classes(ctx: _Context, rows: _Rows, most: int = PERSONAL_CLASSES) -> list[_Class] | None:
    """Return the learners of ``rows`` in classes, each with its cap; None if over ``most``."""
    p = ctx.problem
    by_course: dict[str, list[int]] = {}
    for si, s in enumerate(p.sessions):
        by_course.setdefault(s.course, []).append(si)
    courses: dict[int, set[str]] = {}
    for v in rows.vars:
        li = ctx.learner_of[v.request]
        courses.setdefault(li, set()).add(p.requests[ctx.cand.requests[v.request]].course)
    keyed: dict[tuple[Any, ...], list[int]] = {}
    for li, wanted in courses.items():
        learner = p.learners[li]
        options = tuple(
            tuple(
                si
                for si in by_course[c]
                if learner.start <= p.sessions[si].day <= learner.end
                and (p.sessions[si].group is None or p.sessions[si].group in learner.groups)
                and ctx.cand.free[si] > 0
                and _fits_fixed(ctx, li, si)
            )
            for c in sorted(wanted)
        )
        key = (ctx.caps[li], tuple(sorted(ctx.fixed_units[li].items())), options)
        keyed.setdefault(key, []).append(li)
        if len(keyed) > most:
            return None
    out: list[_Class] = []
    for (_, _, options), members in keyed.items():
        one = _Rows([_Var(j, si, 0) for j, ss in enumerate(options) for si in ss], [], [])
        idx = list(range(len(one.vars)))
        by_request: dict[int, list[int]] = {}
        for i, v in enumerate(one.vars):
            by_request.setdefault(v.request, []).append(i)
        one.amo.extend(m for m in by_request.values() if len(m) > 1)
        ctx._clashes(one, idx)
        ctx._windows(one, members[0], idx)
        solver, x, _ = _linear(one, "SCIP", integer=True)
        cls = _Class(members, len(options), one, solver, x, cap=len(options))
        found = cls.best({})
        # Only a solved model's bound is proved; otherwise keep the request count.
        if found is not None:
            cls.pattern = found[0]
            cls.cap = min(cls.cap, max(0, math.floor(found[2] + 1e-6)))
        out.append(cls)
    return out


def _columns(
    ctx: _Context, rows: _Rows, classes: list[_Class], until: float
) -> tuple[list[bool], float]:
    """Return an allocation built from whole patterns of sessions, and a proved bound.

    Column generation over classes: a master LP chooses how many learners of each
    class take each pattern within session capacity; each class's exact MIP, priced by
    the master's capacity duals, proposes a better pattern while one exists. The LP's
    whole parts are then shared out within each class by min-cost flow, each learner
    to the pattern that keeps most of their places (a pattern may use a date they are
    away), and what is left is filled first come, first served.

    The bound is Lagrangian: for any prices ``p >= 0`` on places, no allocation places
    more than ``sum(p * places)`` plus, per learner, their class's best priced pattern
    (class models relax each learner's own rows). The lowest over the rounds is kept.
    """
    master = pywraplp.Solver.CreateSolver("GLOP")
    if master is None:  # pragma: no cover - every OR-Tools wheel ships GLOP
        raise RuntimeError("OR-Tools has no GLOP")
    inf = master.infinity()
    objective = master.Objective()
    objective.SetMaximization()
    convex = [master.Constraint(-inf, len(c.members)) for c in classes]
    room = {
        si: master.Constraint(-inf, ctx.cand.free[si])
        for si in sorted({v.session for v in rows.vars})
    }
    columns: list[tuple[int, tuple[int, ...], pywraplp.Variable]] = []
    seen: set[tuple[int, tuple[int, ...]]] = set()

    def add(c: int, pattern: tuple[int, ...]) -> bool:
        if (c, pattern) in seen:
            return False
        seen.add((c, pattern))
        y = master.NumVar(0, inf, "")
        convex[c].SetCoefficient(y, 1)
        for si in pattern:
            room[si].SetCoefficient(y, 1)
        objective.SetCoefficient(y, len(pattern))
        columns.append((c, pattern, y))
        return True

    for c, cls in enumerate(classes):
        add(c, cls.pattern)
    bound = float(sum(len(c.members) * c.cap for c in classes))  # the bound at no prices
    rounds = 0
    while True:
        master.Solve()
        rounds += 1
        if time.perf_counter() > until:
            break
        price = {si: max(0.0, con.dual_value()) for si, con in room.items()}
        # Read every dual before a new column changes the model.
        share = [con.dual_value() for con in convex]
        added = 0
        priced = sum(p * ctx.cand.free[si] for si, p in price.items())
        for c, cls in enumerate(classes):
            found = cls.best(price)
            best = float(cls.requests) if found is None else found[2]
            priced += len(cls.members) * max(0.0, best)
            if found is not None and found[1] - share[c] > 1e-6:
                added += add(c, found[0])
        bound = min(bound, priced)
        if not added:
            break
    log.info(
        "column generation: %d rounds, %d patterns, LP %.1f, bound %.1f",
        rounds,
        len(columns),
        objective.Value(),
        bound,
    )
    var_of = {(ctx.learner_of[v.request], v.session): i for i, v in enumerate(rows.vars)}
    slots: dict[int, list[tuple[tuple[int, ...], int]]] = {}
    for c, pattern, y in columns:
        whole = math.floor(y.solution_value() + 1e-6)
        if whole > 0:
            slots.setdefault(c, []).append((pattern, whole))
    values = [False] * len(rows.vars)
    for c, offered in slots.items():
        for li, pattern in _share(classes[c].members, offered, var_of, rows):
            for si in pattern:
                i = var_of.get((li, si))
                if i is not None:
                    values[i] = True
    return _fill(rows, values), bound


def _share(
    members: list[int],
    offered: list[tuple[tuple[int, ...], int]],
    var_of: dict[tuple[int, int], int],
    rows: _Rows,
) -> list[tuple[int, tuple[int, ...]]]:
    """Give learners patterns (each offered so many times), keeping most places, cheapest."""
    worth = _worth(rows)
    flow = min_cost_flow.SimpleMinCostFlow()
    first = 2 + len(members)
    for k, li in enumerate(members):
        flow.add_arc_with_capacity_and_unit_cost(0, 2 + k, 1, 0)
        for j, (pattern, _) in enumerate(offered):
            kept = [var_of[(li, si)] for si in pattern if (li, si) in var_of]
            flow.add_arc_with_capacity_and_unit_cost(
                2 + k, first + j, 1, -sum(worth[i] for i in kept)
            )
    for j, (_, times) in enumerate(offered):
        flow.add_arc_with_capacity_and_unit_cost(first + j, 1, times, 0)
    flow.set_node_supply(0, len(members))
    flow.set_node_supply(1, -len(members))
    if flow.solve_max_flow_with_min_cost() != flow.OPTIMAL:  # pragma: no cover
        return []
    out: list[tuple[int, tuple[int, ...]]] = []
    for a in range(flow.num_arcs()):
        if flow.flow(a) > 0 and flow.tail(a) >= 2 and flow.head(a) >= first:
            out.append((members[flow.tail(a) - 2], offered[flow.head(a) - first][0]))
    return out


def _flow(
    rows: _Rows,
    free: Sequence[int],
    amount: int | None,
    learner_of: Sequence[int],
    personal: dict[int, int] | None,
) -> tuple[list[bool], int] | None:
    """Return the cheapest integral transport (all of it, or ``amount``) and its cost.

    Without clashes and protected time the model is a transportation problem, solved
    exactly by min-cost flow: its size bounds the placements and its cost the
    preference cost of any allocation with that many.
    """
    requests = sorted({v.request for v in rows.vars})
    node = {r: 2 + k for k, r in enumerate(requests)}
    sessions = sorted({v.session for v in rows.vars})
    snode = {s: 2 + len(requests) + k for k, s in enumerate(sessions)}
    learners = sorted({learner_of[r] for r in requests})
    lnode = {li: 2 + len(requests) + len(sessions) + k for k, li in enumerate(learners)}
    flow = min_cost_flow.SimpleMinCostFlow()
    arcs = [
        flow.add_arc_with_capacity_and_unit_cost(node[v.request], snode[v.session], 1, v.cost)
        for v in rows.vars
    ]
    for r in requests:
        if personal is None:
            flow.add_arc_with_capacity_and_unit_cost(0, node[r], 1, 0)
        else:
            flow.add_arc_with_capacity_and_unit_cost(lnode[learner_of[r]], node[r], 1, 0)
    if personal is not None:
        for li in learners:
            flow.add_arc_with_capacity_and_unit_cost(0, lnode[li], personal[li], 0)
    for s in sessions:
        flow.add_arc_with_capacity_and_unit_cost(snode[s], 1, free[s], 0)
    supply = len(requests) if amount is None else amount
    flow.set_node_supply(0, supply)
    flow.set_node_supply(1, -supply)
    status = flow.solve_max_flow_with_min_cost() if amount is None else flow.solve()
    if status != flow.OPTIMAL:
        return None
    return [flow.flow(a) > 0 for a in arcs], flow.optimal_cost()


def _rows_of(rows: _Rows) -> list[list[int]]:
    """Return, per variable, the rows it appears in (at-most-one rows first)."""
    row_of: list[list[int]] = [[] for _ in rows.vars]
    for r, members in enumerate(rows.amo):
        for i in members:
            row_of[i].append(r)
    for r, (members, _, _) in enumerate(rows.le):
        for i in members:
            row_of[i].append(len(rows.amo) + r)
    return row_of


def _fill(rows: _Rows, values: list[bool]) -> list[bool]:
    """Return ``values`` plus every further variable that fits, in variable order."""
    values = list(values)
    row_of = _rows_of(rows)
    n_amo = len(rows.amo)
    room = [1 - sum(values[i] for i in m) for m in rows.amo]
    coef: list[dict[int, int]] = []
    for members, coefs, rhs in rows.le:
        coef.append(dict(zip(members, coefs, strict=True)))
        room.append(rhs - sum(c for i, c in zip(members, coefs, strict=True) if values[i]))
    placed = {v.request for v, val in zip(rows.vars, values, strict=True) if val}
    for i, v in enumerate(rows.vars):
        if values[i] or v.request in placed:
            continue
        need = [(r, 1 if r < n_amo else coef[r - n_amo][i]) for r in row_of[i]]
        if all(room[r] >= c for r, c in need):
            values[i] = True
            placed.add(v.request)
            for r, c in need:
                room[r] -= c
    return values


def _terms(rows: _Rows) -> tuple[list[list[tuple[int, int]]], list[int]]:
    """Return, per variable, its (row, coefficient) pairs, and each row's limit.

    Rows are numbered at-most-one rows first, then ``le`` rows.
    """
    n_amo = len(rows.amo)
    terms: list[list[tuple[int, int]]] = [[] for _ in rows.vars]
    for r, members in enumerate(rows.amo):
        for i in members:
            terms[i].append((r, 1))
    for r, (members, coefs, _) in enumerate(rows.le):
        for i, c in zip(members, coefs, strict=True):
            terms[i].append((n_amo + r, c))
    return terms, [1] * n_amo + [r for _, _, r in rows.le]


def _usage(terms: list[list[tuple[int, int]]], n_rows: int, values: Sequence[bool]) -> list[int]:
    usage = [0] * n_rows
    for i, val in enumerate(values):
        if val:
            for r, c in terms[i]:
                usage[r] += c
    return usage


def _sweep(rows: _Rows, values: list[bool], course_of: Sequence[str], until: float) -> list[bool]:
    """Re-assign one course at a time for everyone at once, exactly, until nothing improves.

    With every learner's other courses held, each learner's dates of this course are
    independent of one another but for session capacity, so placing everyone on it is a
    transportation problem: a min-cost flow, most placements first, then the cheapest.
    Nobody placed loses the place (their current date stays open to them).
    """
    values = list(values)
    terms, rhs = _terms(rows)
    usage = _usage(terms, len(rhs), values)
    n_amo = len(rows.amo)
    capacity_of = {si: n_amo + k for k, si in rows.capacity.items()}
    by_course: dict[str, dict[int, list[int]]] = {}
    for i, v in enumerate(rows.vars):
        by_course.setdefault(course_of[i], {}).setdefault(v.request, []).append(i)
    worth = _worth(rows)
    best = sum(worth[i] for i, val in enumerate(values) if val)
    sweeps = 0
    while time.perf_counter() < until:
        sweeps += 1
        before = best
        for requests in by_course.values():
            if time.perf_counter() >= until:
                break
            for idx in requests.values():
                for i in idx:
                    if values[i]:
                        values[i] = False
                        for r, c in terms[i]:
                            usage[r] -= c
            flow = min_cost_flow.SimpleMinCostFlow()
            session_node: dict[int, int] = {}
            arcs: list[tuple[int, int]] = []
            for k, idx in enumerate(requests.values()):
                flow.add_arc_with_capacity_and_unit_cost(0, 2 + k, 1, 0)
                for i in idx:
                    si = rows.vars[i].session
                    shared = capacity_of.get(si)
                    if any(usage[r] + c > rhs[r] for r, c in terms[i] if r != shared):
                        continue
                    node = session_node.setdefault(si, 2 + len(requests) + len(session_node))
                    arc = flow.add_arc_with_capacity_and_unit_cost(2 + k, node, 1, -worth[i])
                    arcs.append((i, arc))
            for si, node in session_node.items():
                row = capacity_of.get(si)
                flow.add_arc_with_capacity_and_unit_cost(
                    node, 1, len(requests) if row is None else rhs[row] - usage[row], 0
                )
            flow.set_node_supply(0, len(requests))
            flow.set_node_supply(1, -len(requests))
            if flow.solve_max_flow_with_min_cost() != flow.OPTIMAL:  # pragma: no cover
                raise RuntimeError("course sweep: flow failed")
            for i, a in arcs:
                if flow.flow(a) > 0:
                    values[i] = True
                    for r, c in terms[i]:
                        usage[r] += c
        best = sum(worth[i] for i, val in enumerate(values) if val)
        if best <= before:
            break
    log.info("course sweeps: %d", sweeps)
    return values


def _improve(
    rows: _Rows,
    values: list[bool],
    learner_of: Sequence[int],
    until: float,
    report: Callable[[list[bool]], None],
    count_bound: int,
    alone: Sequence[int] = (),
    cost_cap: int | None = None,
) -> list[bool]:
    """Re-solve neighbourhoods of learners exactly, everyone else held, until ``until``.

    The learners in ``alone`` are re-solved one at a time first (placements, then
    preference cost), in that order; then random neighbourhoods. With ``cost_cap``,
    a change is kept only if the total preference cost stays within it.
    """
    values = list(values)
    n_amo = len(rows.amo)
    terms, rhs = _terms(rows)
    # Each row's left-hand side now, kept up to date so a neighbourhood's model is built
    # from its own variables only.
    usage = _usage(terms, len(rhs), values)
    by_learner: dict[int, list[int]] = {}
    by_session: dict[int, set[int]] = {}
    for i, v in enumerate(rows.vars):
        by_learner.setdefault(learner_of[v.request], []).append(i)
        by_session.setdefault(v.session, set()).add(learner_of[v.request])
    rng = random.Random(0)
    began = time.perf_counter()
    close = sum(values) >= 0.995 * count_bound
    sessions = sorted(by_session)
    quiet = _Totals(0, 0, 0, 0, time.perf_counter(), None)
    rounds = better = 0
    total = _cost(rows, values)
    queue = list(reversed(alone))
    while time.perf_counter() < until - 1:
        learners: set[int] = set()
        if queue:
            learners.add(queue.pop())
        else:
            # Learners around two sessions, so places can swap between them.
            for s in rng.sample(sessions, min(2, len(sessions))):
                pool = sorted(by_session[s])
                learners.update(rng.sample(pool, min(len(pool), NEIGHBOURHOOD // 2)))
        group = sorted(i for li in learners for i in by_learner[li])
        by_row: dict[int, list[tuple[int, int]]] = {}
        for k, i in enumerate(group):
            for r, c in terms[i]:
                by_row.setdefault(r, []).append((k, c))
        sub = _Rows([rows.vars[i] for i in group], [], [])
        for r, pairs in by_row.items():
            inside = sum(c for k, c in pairs if values[group[k]])
            room = rhs[r] - (usage[r] - inside)
            if r < n_amo and room >= 1:
                if len(pairs) > 1:
                    sub.amo.append([k for k, _ in pairs])
            elif sum(c for _, c in pairs) > room:
                sub.le.append(([k for k, _ in pairs], [c for _, c in pairs], room))
        before = [values[i] for i in group]
        if len(learners) == 1:
            # One learner's preference costs sum to far less than one placement's weight,
            # so the weighted objective is lexicographic here: one solve, not two.
            after = _weighted(sub, min(time.perf_counter() + 1.0, until))
        else:
            # Near the count bound, spend the last 60% polishing preferences as well.
            polish = close and time.perf_counter() > until - (until - began) * 0.6
            budget = min(3.0, until - time.perf_counter())
            after = _mip(sub, before, budget, quiet, lazy_cost=not polish).values
        rounds += 1
        change = _cost(sub, after) - _cost(sub, before)
        if cost_cap is not None and total + change > cost_cap:
            continue
        if (sum(after), -_cost(sub, after)) > (sum(before), -_cost(sub, before)):
            total += change
            better += 1
            for i, old, new in zip(group, before, after, strict=True):
                if old != new:
                    values[i] = new
                    for r, c in terms[i]:
                        usage[r] += c if new else -c
            report(values)
    log.info("%d neighbourhoods re-solved, %d improved", rounds, better)
    return values


def _large(
    rows: _Rows, hint: list[bool], budget: float, totals: _Totals, ctx: _Context
) -> _Outcome:
    """Improve a big batch from greedy's answer (or learners' whole patterns).

    When learners fall into few classes (at most ``MOST_CLASSES``, ``CLASS_SIZE`` each on
    average), the start is the column generation's (``_columns``) if it beats greedy's;
    otherwise greedy's answer. Then course sweeps, the learners who pay most re-solved
    one at a time, and neighbourhood search until the time is up, each stage only when
    it fits. The bound is the lower of the transport's size (each learner capped at
    their class's maximum when there are classes) and the column generation's
    Lagrangian bound; the cost bound is the transport's cheapest flow of our count.
    """
    t0 = time.perf_counter()
    stage = len(rows.vars) / STAGE_RATE
    if t0 + stage > t0 + budget:
        return _Outcome(
            list(hint), sum(hint), len({v.request for v in rows.vars}), _cost(rows, hint), 0
        )
    # Patterns pay only when classes gather many learners (stress: 161 for 6,000); with
    # a class per learner their models took the whole budget (benchmarks/RESULTS.md).
    learners = len({ctx.learner_of[v.request] for v in rows.vars})
    classes = _classes(ctx, rows, min(PERSONAL_CLASSES, learners // CLASS_SIZE, MOST_CLASSES))
    personal = None
    if classes is not None:
        personal = {li: c.cap for c in classes for li in c.members}
    transport = _flow(rows, ctx.cand.free, None, ctx.learner_of, personal)
    if transport is None:  # pragma: no cover - the network always has a feasible flow
        return _mip(rows, hint, budget, totals)
    chosen = transport[0]
    count_bound = sum(chosen)
    totals.report("placements", totals.placed + sum(hint), totals.placed_bound + count_bound)
    values = list(hint)
    if classes is not None:
        values, priced = _columns(ctx, rows, classes, t0 + budget * 0.4)
        count_bound = min(count_bound, math.floor(priced + 1e-6))
    if (sum(values), -_cost(rows, values)) < (sum(hint), -_cost(rows, hint)):
        values = list(hint)

    def cost_floor(count: int) -> int:
        cheapest = _flow(rows, ctx.cand.free, count, ctx.learner_of, personal)
        return 0 if cheapest is None else cheapest[1]

    count, cost = sum(values), _cost(rows, values)
    log.info("start: %d placed (at most %d), cost %d", count, count_bound, cost)
    until = t0 + budget
    if (count < count_bound or cost > 0) and time.perf_counter() + 2 * stage < until:
        # Leave a stage for the cost bound at the end.
        sweep_until = time.perf_counter() + (until - stage - time.perf_counter()) * 0.45
        values = _polish(rows, values, ctx, totals, count_bound, sweep_until, until - stage)
        count, cost = sum(values), _cost(rows, values)
    cost_lb = min(cost_floor(count), cost) if time.perf_counter() + stage < until else 0
    totals.report("placements", totals.placed + count, totals.placed_bound + count_bound)
    totals.report("preferences", totals.cost + cost, totals.cost_bound + cost_lb)
    return _Outcome(values, count, max(count, count_bound), cost, cost_lb)


def _polish(
    rows: _Rows,
    values: list[bool],
    ctx: _Context,
    totals: _Totals,
    count_bound: int,
    sweep_until: float,
    until: float,
) -> list[bool]:
    """Improve an answer not yet proved, until ``until``.

    First course sweeps (until ``sweep_until``). A sweep moves one course at a time, so
    a learner whose better date needs another course moved too is re-solved alone next,
    those who pay most first; random neighbourhoods take the time left.
    """
    stage = len(rows.vars) / STAGE_RATE
    course_of = [ctx.problem.sessions[v.session].course for v in rows.vars]
    if time.perf_counter() + stage < sweep_until:
        values = _sweep(rows, values, course_of, sweep_until)
    if time.perf_counter() + stage > until:
        return values
    paid: dict[int, int] = {}
    for v, on in zip(rows.vars, values, strict=True):
        if on and v.cost:
            li = ctx.learner_of[v.request]
            paid[li] = paid.get(li, 0) + v.cost
    return _improve(
        rows,
        values,
        ctx.learner_of,
        until,
        lambda vs: totals.report(
            "placements", totals.placed + sum(vs), totals.placed_bound + count_bound
        ),
        count_bound,
        alone=sorted(paid, key=lambda li: -paid[li]),
    )


# --- Groups joined by sessions open to all ---------------------------------------------


def _groups(ctx: _Context, rows: _Rows) -> tuple[list[list[int]], dict[int, int]] | None:
    """Return the variables of each group of learners and the rows that link groups.

    Learners fall into groups joined by the capacity of sessions restricted to a group
    (a region's dates); sessions open to all (national online dates) link the groups.
    None unless the split is worth it: no more binding open sessions than group ones, and
    at least half the variables belong to learners who share a group date with others.
    """
    sessions = ctx.problem.sessions
    linking = {k: si for k, si in rows.capacity.items() if sessions[si].group is None}
    if not linking or len(rows.capacity) - len(linking) < len(linking):
        return None
    parent: dict[int, int] = {}

    def find(a: int) -> int:
        parent.setdefault(a, a)
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for k in rows.capacity:
        if k in linking:
            continue
        members = rows.le[k][0]
        root = find(ctx.learner_of[rows.vars[members[0]].request])
        for i in members[1:]:
            other = find(ctx.learner_of[rows.vars[i].request])
            if other != root:
                parent[other] = root
    parts: dict[int, list[int]] = {}
    people: dict[int, set[int]] = {}
    for i, v in enumerate(rows.vars):
        li = ctx.learner_of[v.request]
        parts.setdefault(find(li), []).append(i)
        people.setdefault(find(li), set()).add(li)
    # Most learners must share a group's date with someone; otherwise the groups would
    # be batches of strangers, which the patterns of ``_large`` serve better.
    joined = sum(len(idx) for root, idx in parts.items() if len(people[root]) > 1)
    if len(parts) < 2 or 2 * joined < len(rows.vars):
        return None
    # Small groups are solved together (they stay independent), so each model is worth
    # a solver start.
    groups: list[list[int]] = []
    loose: list[int] = []
    for idx in sorted(parts.values(), key=len, reverse=True):
        if len(idx) >= GROUP_VARIABLES:
            groups.append(idx)
        else:
            loose.extend(idx)
            if len(loose) >= GROUP_VARIABLES:
                groups.append(sorted(loose))
                loose = []
    if loose:
        groups.append(sorted(loose))
    return (groups, linking) if len(groups) > 1 else None


def _restrict(rows: _Rows, idx: list[int], linking: dict[int, int], rhs: dict[int, int]) -> _Rows:
    """Return the model of variables ``idx``: linking rows get ``rhs`` or, without it, go."""
    pos = {i: k for k, i in enumerate(idx)}
    sub = _Rows([rows.vars[i] for i in idx], [], [])
    for members in rows.amo:
        if members[0] in pos:  # at-most-one rows never leave a learner
            sub.amo.append([pos[i] for i in members])
    for k, (members, coefs, limit) in enumerate(rows.le):
        pairs = [(pos[i], c) for i, c in zip(members, coefs, strict=True) if i in pos]
        if not pairs:
            continue
        if k in linking:
            if k not in rhs:
                continue
            limit = rhs[k]
        if sum(c for _, c in pairs) > limit:
            sub.le.append(([i for i, _ in pairs], [c for _, c in pairs], limit))
    return sub


def _quotas(
    rows: _Rows, lp: Sequence[float], groups: list[list[int]], linking: dict[int, int]
) -> list[dict[int, int]]:
    """Share each linking session's places among the groups as the LP uses them."""
    group_of: dict[int, int] = {}
    for g, idx in enumerate(groups):
        group_of.update((i, g) for i in idx)
    quotas: list[dict[int, int]] = [{} for _ in groups]
    for k in linking:
        members, _, places = rows.le[k]
        use: dict[int, float] = {}
        for i in members:
            use[group_of[i]] = use.get(group_of[i], 0.0) + lp[i]
        share = {g: math.floor(u + 1e-6) for g, u in use.items()}
        left = places - sum(share.values())
        for g in sorted(use, key=lambda g: share[g] - use[g]):  # largest remainder first
            if left <= 0 or use[g] - share[g] <= 1e-6:
                break
            share[g] += 1
            left -= 1
        for g, q in share.items():
            quotas[g][k] = q
    return quotas


def _weighted(rows: _Rows, until: float) -> list[bool]:
    """Return the allocation of ``rows`` best by placements less cost, or none at all."""
    solver, x, _ = _linear(rows, GROUP_ENGINE, integer=True)
    _objective(solver, x, _worth(rows), maximize=True)
    got, _ = _run_mip(solver, x, None, until - time.perf_counter(), GROUP_ENGINE)
    return got if got is not None else [False] * len(x)


def _group_bound(
    rows: _Rows,
    idx: list[int],
    linking: dict[int, int],
    worth: Sequence[float],
    price: dict[int, float],
    until: float,
) -> float:
    """Return a proved bound on group ``idx``'s objective ``worth``, linking rows priced."""
    charge: dict[int, float] = {}
    for k, p in price.items():
        charge.update((i, p) for i in rows.le[k][0])
    sub = _restrict(rows, idx, linking, {})
    solver, x, _ = _linear(sub, GROUP_ENGINE, integer=True)
    weights = [worth[i] - charge.get(i, 0.0) for i in idx]
    _objective(solver, x, weights, maximize=True)
    _, bound = _run_mip(solver, x, None, until - time.perf_counter(), GROUP_ENGINE)
    return bound if math.isfinite(bound) else sum(max(0.0, w) for w in weights)


def _upper(rows: _Rows, price: dict[int, float], group_bounds: Sequence[float]) -> float:
    """Return the Lagrangian bound: priced places plus each group's priced maximum."""
    return sum(p * rows.le[k][2] for k, p in price.items()) + sum(group_bounds)


def _linked(
    rows: _Rows, hint: list[bool], budget: float, totals: _Totals, ctx: _Context, workers: int
) -> _Outcome | None:
    """Solve a big batch group by group, sharing the linking sessions by LP, with a proof.

    One weighted objective, ``PLACEMENT_WEIGHT`` per placement less its preference cost,
    stands for the lexicographic pair. First-order LP (PDLP) solves its relaxation in
    seconds; its duals price the linking sessions and its values share their places
    among the groups. Then, one exact MIP per group and job, on ``workers`` threads:

    * the answer: each group within its share of the linking sessions;
    * the proofs: each group with the linking sessions priced instead of limited. For
      any prices ``p >= 0``, ``sum(p * places) + sum(group maxima)`` bounds the objective
      of every allocation (Lagrangian relaxation). Once with the weighted objective, so
      an allocation with ``n`` placements costs at least ``PLACEMENT_WEIGHT * n - bound``;
      once counting placements alone, at the same prices scaled down by the weight,
      which bounds the count (the weighted one cannot: a placement may be worth less
      than what it costs others).

    Returns None when the batch does not split into groups or the LP fails.
    """
    t0 = time.perf_counter()
    until = t0 + budget
    split = _groups(ctx, rows)
    if split is None:
        return None
    groups, linking = split
    weight = PLACEMENT_WEIGHT
    worth = _worth(rows)
    lp, x, cons = _linear(rows, "PDLP", integer=False)
    _objective(lp, x, worth, maximize=True)
    lp.SetTimeLimit(int(max(1.0, budget * 0.3) * 1000))
    if lp.Solve() not in (pywraplp.Solver.OPTIMAL, pywraplp.Solver.FEASIBLE):
        return None
    values_lp = [xi.solution_value() for xi in x]
    n_amo = len(rows.amo)
    # Any prices >= 0 give a valid bound; rounding keeps the group objectives tidy.
    price = {k: max(0.0, round(cons[n_amo + k].dual_value(), 6)) for k in linking}
    quotas = _quotas(rows, values_lp, groups, linking)
    log.info(
        "%d groups, %d linking sessions; LP %.1f in %.1f s",
        len(groups),
        len(linking),
        lp.Objective().Value(),
        time.perf_counter() - t0,
    )
    # Three MIPs per group share the workers' time: each gets its own slice from when
    # it starts, so jobs late in the queue are not left with nothing (they then proved
    # nothing and the whole answer fell back to greedy's on a loaded machine).
    slice_ = max(0.1, (until - time.perf_counter()) * max(1, workers) / (3 * len(groups)))

    def due() -> float:
        return min(until, time.perf_counter() + slice_)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        # The answer: each group at its best within its share of the linking rows.
        answers = [
            pool.submit(lambda sub: _weighted(sub, due()), _restrict(rows, idx, linking, quota))
            for idx, quota in zip(groups, quotas, strict=True)
        ]
        count_price = {k: p / weight for k, p in price.items()}
        ones = [1.0] * len(rows.vars)
        counts = [
            pool.submit(lambda idx: _group_bound(rows, idx, linking, ones, count_price, due()), idx)
            for idx in groups
        ]
        bounds = [
            pool.submit(lambda idx: _group_bound(rows, idx, linking, worth, price, due()), idx)
            for idx in groups
        ]
        values = [False] * len(rows.vars)
        for idx, job in zip(groups, answers, strict=True):
            for i, val in zip(idx, job.result(), strict=True):
                values[i] = val
        upper = _upper(rows, price, [job.result() for job in bounds])
        most = _upper(rows, count_price, [job.result() for job in counts])
    if (sum(values), -_cost(rows, values)) < (sum(hint), -_cost(rows, hint)):
        values = list(hint)
    transport = _flow(rows, ctx.cand.free, None, ctx.learner_of, None)
    count_bound = len(rows.vars) if transport is None else sum(transport[0])
    count_bound = min(count_bound, math.floor(most + 1e-4))

    def cost_floor(count: int) -> int:
        # Weighted objectives are whole numbers, so allow for solver round-off.
        return max(0, math.ceil(weight * count - upper - 1e-4))

    count, cost = sum(values), _cost(rows, values)
    totals.report("placements", totals.placed + count, totals.placed_bound + count_bound)
    totals.report("preferences", totals.cost + cost, totals.cost_bound + cost_floor(count))
    if (count < count_bound or cost > cost_floor(count)) and time.perf_counter() < until - 1:
        values = _polish(rows, values, ctx, totals, count_bound, until, until)
        count, cost = sum(values), _cost(rows, values)
    log.info(
        "groups: %d placed (bound %d), cost %d (bound %d)",
        count,
        count_bound,
        cost,
        cost_floor(count),
    )
    return _Outcome(values, count, max(count, count_bound), cost, min(cost, cost_floor(count)))


# --- CP-SAT -----------------------------------------------------------------------------


class _Callback(cp_model.CpSolverSolutionCallback):
    def __init__(self, report: Callable[[float, float], None]) -> None:
        super().__init__()
        self._report = report

    def on_solution_callback(self) -> None:
        self._report(self.objective_value, self.best_objective_bound)


def _cpsat(rows: _Rows, hint: list[bool], budget: float, workers: int, totals: _Totals) -> _Outcome:
    """Solve a batch with CP-SAT, placements first, then preference cost."""
    t0 = time.perf_counter()
    model = cp_model.CpModel()
    x = [model.new_bool_var("") for _ in rows.vars]
    for members in rows.amo:
        model.add_at_most_one(x[i] for i in members)
    for members, coefs, rhs in rows.le:
        model.add(cp_model.LinearExpr.weighted_sum([x[i] for i in members], coefs) <= rhs)
    count_expr = cp_model.LinearExpr.sum(x)
    cost_expr = cp_model.LinearExpr.weighted_sum(x, [v.cost for v in rows.vars])
    for xi, h in zip(x, hint, strict=True):
        model.add_hint(xi, h)

    def run(seconds: float, phase: str, base: int) -> tuple[Any, cp_model.CpSolver]:
        solver = cp_model.CpSolver()
        solver.parameters.max_time_in_seconds = max(0.05, seconds)
        solver.parameters.num_workers = max(1, workers)
        cb = _Callback(lambda o, b: totals.report(phase, base + o, base + b))
        return solver.solve(model, cb if totals.on_progress else None), solver

    model.maximize(count_expr)
    status, solver = run(budget * 0.6, "placements", totals.placed)
    values = list(hint)
    count_bound = len({v.request for v in rows.vars})
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        found = [solver.boolean_value(xi) for xi in x]
        if sum(found) >= sum(values):
            values = found
        count_bound = math.floor(solver.best_objective_bound + 1e-6)
    count = sum(values)

    model.clear_hints()
    for xi, v in zip(x, values, strict=True):
        model.add_hint(xi, v)
    model.add(count_expr >= count)
    model.minimize(cost_expr)
    status, solver = run(budget - (time.perf_counter() - t0), "preferences", totals.cost)
    cost = _cost(rows, values)
    cost_lb = 0
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        cost_lb = math.ceil(solver.best_objective_bound - 1e-6)
        found = [solver.boolean_value(xi) for xi in x]
        if _cost(rows, found) <= cost:
            values, cost = found, _cost(rows, found)
    return _Outcome(values, count, max(count_bound, count), cost, min(cost_lb, cost))
