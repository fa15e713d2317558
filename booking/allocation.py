"""Allocation: the one bridge between booking rows and the pure ``scheduler`` package.

``build_problem`` turns a programme's NQSWs, sessions and live bookings into the
scheduler's JSON problem (ids only: ``n<nqsw id>``, ``s<session id>``, course codes) and
fingerprints it. A run solves the stored problem and writes nothing but its proposal
row; ``commit_proposal`` rebuilds the problem, refuses if the fingerprint changed, and
makes the bookings through the booking services, so every rule and every mail applies.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import Flask, current_app
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from scheduler.problem import (
    FORMAT,
    Allocation,
    Problem,
    allocation_from_json,
    allocation_to_json,
    load_problem,
)
from scheduler.solver import Progress, solve_with_baseline

from . import bookings
from .audit.services import record
from .errors import BookingError
from .extensions import db
from .models import (
    NQSW,
    AllocationProposal,
    Booking,
    BookingSource,
    BookingStatus,
    Course,
    CourseWish,
    Programme,
    ProposalStatus,
    Session,
    SessionStatus,
    User,
    WaitlistEntry,
    WaitStatus,
    utcnow,
)

log = logging.getLogger(__name__)

# Progress rows are rewritten at most this often, whatever the solver reports.
PROGRESS_INTERVAL = 0.5
# A run not heard from for this long past its time limit died with its worker.
ABANDON_GRACE_SECONDS = 300
MAX_TIME_LIMIT = 600


class AllocationError(BookingError):
    """An allocation request the rules refuse."""


class StaleProposal(AllocationError):
    """Bookings changed after the proposal was made."""


# --- building the problem -------------------------------------------------------------


def _nid(nqsw_id: int) -> str:
    return f"n{nqsw_id}"


def _sid(session_id: int) -> str:
    return f"s{session_id}"


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _learners(programme: Programme) -> list[NQSW]:
    return list(
        db.session.scalars(
            select(NQSW)
            .where(NQSW.programme_id == programme.id, NQSW.withdrawn_at.is_(None))
            .order_by(NQSW.enrolled_at, NQSW.id)
        )
    )


def _open_sessions(programme: Programme, now: datetime) -> list[Session]:
    return list(
        db.session.scalars(
            select(Session)
            .join(Course)
            .where(
                Course.programme_id == programme.id,
                Session.status == SessionStatus.SCHEDULED,
                Session.starts_at > now,
            )
            .order_by(Session.starts_at, Session.id)
        )
    )


def _live_bookings(programme: Programme) -> list[Booking]:
    return list(
        db.session.scalars(
            select(Booking)
            .join(Course, Booking.course_id == Course.id)
            .where(Course.programme_id == programme.id, Booking.status == BookingStatus.BOOKED)
            .order_by(Booking.id)
        )
    )


def build_problem(
    programme: Programme,
    *,
    allow_moves: bool = False,
    include_optional: bool = False,
    now: datetime | None = None,
) -> tuple[dict[str, Any], str]:
    """Return the programme's allocation problem as scheduler JSON, and its fingerprint."""
    built = _build(programme, allow_moves, include_optional, now or utcnow())
    return built.data, built.fingerprint


@dataclass(frozen=True)
class _Built:
    data: dict[str, Any]
    fingerprint: str
    held: dict[str, dict[str, str]]  # learner -> course code -> session, at build time


def _build(
    programme: Programme, allow_moves: bool, include_optional: bool, now: datetime
) -> _Built:
    courses = list(programme.courses)
    code_of = {c.id: c.code for c in courses}
    sessions = _open_sessions(programme, now)
    open_ids = {s.id for s in sessions}
    learners = _learners(programme)
    in_problem = {n.id for n in learners}

    live = _live_bookings(programme)
    held: dict[int, dict[int, Booking]] = {}
    ours_on: dict[int, int] = {}
    for b in live:
        if b.nqsw_id in in_problem:
            held.setdefault(b.nqsw_id, {})[b.course_id] = b
            ours_on[b.session_id] = ours_on.get(b.session_id, 0) + 1
    # Sessions under way or run still count for protected time at commit (the booking
    # rule counts every live booking in a window), so the solver gets them as fixed.
    past = [b.session for b in live if b.nqsw_id in in_problem and b.session_id not in open_ids]
    past_sessions = sorted({s.id: s for s in past}.values(), key=lambda s: (s.starts_at, s.id))
    waiting: dict[int, dict[int, list[str]]] = {}
    for entry in db.session.scalars(
        select(WaitlistEntry)
        .where(
            WaitlistEntry.status == WaitStatus.WAITING,
            WaitlistEntry.session_id.in_(open_ids),
        )
        .order_by(WaitlistEntry.created_at, WaitlistEntry.id)
    ):
        by_course = waiting.setdefault(entry.nqsw_id, {})
        by_course.setdefault(entry.session.course_id, []).append(_sid(entry.session_id))
    wishes = _wishes(in_problem) if include_optional else {}
    avoided = _avoided(learners, open_ids)

    learner_rows: list[dict[str, Any]] = []
    held_places: dict[str, dict[str, str]] = {}
    for n in learners:
        needs: list[str] = []
        wants: list[str] = []
        fixed: dict[str, str] = {}
        preferences: dict[str, list[str]] = {}
        mine = held.get(n.id, {})
        for course in courses:
            code = course.code
            booking = mine.get(course.id)
            waited = waiting.get(n.id, {}).get(course.id, [])
            asked = course.id in wishes.get(n.id, ()) if course.optional else True
            if booking is None:
                if asked:
                    (wants if course.optional else needs).append(code)
                    if waited:
                        preferences[code] = waited
                continue
            held_places.setdefault(_nid(n.id), {})[code] = _sid(booking.session_id)
            if allow_moves and asked and booking.session_id in open_ids:
                # Staying costs nothing, so the solver moves people only to place others.
                current = _sid(booking.session_id)
                (wants if course.optional else needs).append(code)
                preferences[code] = [current, *[s for s in waited if s != current]]
            else:
                fixed[code] = _sid(booking.session_id)
        holding = {_sid(b.session_id) for b in mine.values()}
        row: dict[str, Any] = {
            "id": _nid(n.id),
            "employer": f"e{n.employer_id}",
            "start": n.asye_start.isoformat(),
            "end": n.asye_end.isoformat(),
            "fte": float(n.fte),
            "needs": needs,
            "preferences": preferences,
            "fixed": fixed,
            "groups": [],
        }
        if wants:
            row["wants"] = wants
        avoid = [sid for sid in avoided.get(n.id, []) if sid not in holding]
        if avoid:
            row["avoid"] = avoid
        learner_rows.append(row)

    data: dict[str, Any] = {
        "format": FORMAT,
        "rules": {
            "protected_days_per_week": float(programme.protected_days_per_week),
            "window_weeks": programme.window_weeks,
            "training_share": 1.0,
        },
        "courses": [
            {"id": c.code, "title": c.title, "days": c.days}
            | ({"optional": True} if c.optional else {})
            for c in courses
        ],
        "sessions": [
            {
                "id": _sid(s.id),
                "course": code_of[s.course_id],
                "start": _stamp(s.starts_at),
                "end": _stamp(s.ends_at),
                # Problem learners' own places count inside the solver; everyone else's
                # (withdrawn NQSWs, held waiting-list offers) simply shrink the session.
                "capacity": max(s.capacity - (s.taken - ours_on.get(s.id, 0)), 0),
                # NQSWs have no region yet and the booking service lets anyone book a
                # regional date, so no session is closed to anyone here either.
                "group": None,
            }
            for s in sessions
        ]
        + [
            {
                "id": _sid(s.id),
                "course": code_of[s.course_id],
                "start": _stamp(s.starts_at),
                "end": _stamp(s.ends_at),
                # Started: only the places already held, so nobody new is put there.
                "capacity": ours_on[s.id],
                "group": None,
            }
            for s in past_sessions
        ],
        "learners": learner_rows,
    }
    state = {"problem": data, "bookings": [b.id for b in live]}
    canonical = json.dumps(state, sort_keys=True, separators=(",", ":"))
    return _Built(data, hashlib.sha256(canonical.encode()).hexdigest(), held_places)


def _wishes(nqsw_ids: set[int]) -> dict[int, set[int]]:
    """Return the optional courses each NQSW asked for."""
    out: dict[int, set[int]] = {}
    for wish in db.session.scalars(select(CourseWish).where(CourseWish.nqsw_id.in_(nqsw_ids))):
        out.setdefault(wish.nqsw_id, set()).add(wish.course_id)
    return out


def _avoided(learners: list[NQSW], open_ids: set[int]) -> dict[int, list[str]]:
    """Return the open sessions each NQSW turned down: cancelled, moved off, or declined.

    A booking cancelled (by the NQSW or for them) or moved to another date, and a
    waiting-list place left or an offer declined, all say "not this date". Anything
    before the coordinator last cleared the NQSW's list is forgotten.
    """
    cleared = {n.id: n.avoid_cleared_at for n in learners}
    out: dict[int, set[int]] = {}

    def note(nqsw_id: int, session_id: int, when: datetime | None) -> None:
        since = cleared.get(nqsw_id)
        if session_id in open_ids and (since is None or when is None or when > since):
            out.setdefault(nqsw_id, set()).add(session_id)

    ids = list(cleared)
    for b in db.session.scalars(
        select(Booking).where(
            Booking.nqsw_id.in_(ids),
            Booking.status.in_([BookingStatus.CANCELLED, BookingStatus.MOVED]),
            Booking.session_id.in_(open_ids),
        )
    ):
        note(b.nqsw_id, b.session_id, b.cancelled_at)
    for entry in db.session.scalars(
        select(WaitlistEntry).where(
            WaitlistEntry.nqsw_id.in_(ids),
            WaitlistEntry.status == WaitStatus.WITHDRAWN,
            WaitlistEntry.session_id.in_(open_ids),
        )
    ):
        note(entry.nqsw_id, entry.session_id, entry.closed_at)
    return {k: [_sid(sid) for sid in sorted(v)] for k, v in out.items()}


def avoided_sessions(nqsw: NQSW, *, now: datetime | None = None) -> list[Session]:
    """Return the dates allocation will not offer this NQSW, soonest first."""
    open_ids = {s.id for s in _open_sessions(nqsw.programme, now or utcnow())}
    held = {b.session_id for b in bookings.live_bookings(nqsw)}
    ids = [int(sid[1:]) for sid in _avoided([nqsw], open_ids).get(nqsw.id, [])]
    found = db.session.scalars(select(Session).where(Session.id.in_(ids))).all()
    return sorted((s for s in found if s.id not in held), key=lambda s: s.starts_at)


def clear_avoided(nqsw: NQSW, *, by: User | None, now: datetime | None = None) -> None:
    """Let allocation offer the NQSW every date again, including ones they turned down."""
    now = now or utcnow()
    before = nqsw.avoid_cleared_at
    nqsw.avoid_cleared_at = now
    record(
        "nqsw.avoid_clear",
        nqsw,
        actor=by,
        before={"avoid_cleared_at": before.isoformat() if before else None},
        after={"avoid_cleared_at": now.isoformat()},
        nqsw_id=nqsw.id,
    )
    db.session.commit()


def set_workshop_wanted(
    nqsw: NQSW, course: Course, wanted: bool, *, by: User | None, now: datetime | None = None
) -> bool:
    """Mark an optional workshop as wanted (or not) for allocation; return True if changed."""
    if not course.optional or course.programme_id != nqsw.programme_id:
        raise AllocationError("Only an optional workshop of the NQSW's programme can be asked for.")
    if nqsw.withdrawn_at is not None:
        raise AllocationError("This NQSW has been withdrawn from the programme.")
    existing = db.session.get(CourseWish, (nqsw.id, course.id))
    if (existing is not None) == wanted:
        return False
    if wanted:
        db.session.add(
            CourseWish(
                nqsw_id=nqsw.id,
                course_id=course.id,
                created_at=now or utcnow(),
                created_by_id=by.id if by else None,
            )
        )
        try:
            db.session.flush()
        except IntegrityError:
            db.session.rollback()  # a second click raced the first: already wanted
            return False
    else:
        db.session.delete(existing)
    record(
        "workshop.want" if wanted else "workshop.unwant",
        nqsw,
        actor=by,
        before={"course_id": course.id, "wanted": not wanted},
        after={"course_id": course.id, "wanted": wanted},
        nqsw_id=nqsw.id,
    )
    db.session.commit()
    return True


def wanted_workshops(nqsw: NQSW) -> set[int]:
    """Return the ids of the optional workshops the NQSW asked for."""
    return _wishes({nqsw.id}).get(nqsw.id, set())


# --- running ---------------------------------------------------------------------------


def create_proposal(
    programme: Programme,
    *,
    by: User | None,
    time_limit: int,
    allow_moves: bool = False,
    include_optional: bool = False,
) -> AllocationProposal:
    """Record a new run for the programme, with its problem and fingerprint."""
    if not 1 <= time_limit <= MAX_TIME_LIMIT:
        raise AllocationError(
            f"The time limit must be between 1 and {MAX_TIME_LIMIT} seconds.", field="time_limit"
        )
    built = _build(programme, allow_moves, include_optional, utcnow())
    if not any(learner["needs"] for learner in built.data["learners"]):
        raise AllocationError("Nobody on this programme has a course left to place.")
    proposal = AllocationProposal(
        programme=programme,
        created_by_id=by.id if by else None,
        fingerprint=built.fingerprint,
        allow_moves=allow_moves,
        include_optional=include_optional,
        time_limit_seconds=time_limit,
        status=ProposalStatus.RUNNING,
        problem_json=json.dumps(built.data, sort_keys=True),
        held_json=json.dumps(built.held, sort_keys=True),
    )
    db.session.add(proposal)
    db.session.commit()
    log.info("allocation proposal %s created for programme %s", proposal.id, programme.id)
    return proposal


class _ProgressWriter:
    """Write solver progress to the proposal row, at most every PROGRESS_INTERVAL seconds.

    CP-SAT calls back from its own threads, outside any app context, so this writes
    through the engine rather than the request-scoped session.
    """

    def __init__(
        self, engine: Engine, proposal_id: int, echo: Callable[[Progress], None] | None
    ) -> None:
        self.engine = engine
        self.proposal_id = proposal_id
        self.echo = echo
        self.last = 0.0
        self.lock = threading.Lock()

    def __call__(self, progress: Progress) -> None:
        if self.echo is not None:
            self.echo(progress)
        with self.lock:
            if time.monotonic() - self.last < PROGRESS_INTERVAL:
                return
            self.last = time.monotonic()
            with self.engine.begin() as connection:
                connection.execute(
                    update(AllocationProposal)
                    .where(
                        AllocationProposal.id == self.proposal_id,
                        AllocationProposal.status == ProposalStatus.RUNNING,
                    )
                    .values(
                        progress_phase=progress.phase,
                        progress_objective=progress.objective,
                        progress_bound=progress.bound,
                        progress_seconds=progress.seconds,
                        progress_json=json.dumps(_figures(progress)),
                        progress_updated_at=utcnow(),
                    )
                )


def _store_reserve(problem: Problem) -> float:
    """Return the seconds kept back for writing the result (measured: see docs)."""
    return 0.2 + 2e-5 * len(problem.requests)


def _figures(progress: Progress) -> dict[str, Any]:
    return {
        "placed": progress.placed,
        "placed_bound": progress.placed_bound,
        "preference_cost": progress.preference_cost,
        "cost_bound": progress.cost_bound,
        "greedy_placed": progress.greedy_placed,
        "greedy_cost": progress.greedy_cost,
    }


def run_proposal(
    proposal: AllocationProposal,
    *,
    workers: int | None = None,
    echo: Callable[[Progress], None] | None = None,
) -> AllocationProposal:
    """Solve a running proposal's problem and store the result beside the greedy one."""
    if proposal.status is not ProposalStatus.RUNNING:
        raise AllocationError("This proposal has already run.")
    # The coordinator's time limit covers everything from here to the stored result.
    began = time.perf_counter()
    workers = workers or current_app.config.get("ALLOCATION_WORKERS", 2)
    proposal_id, time_limit = proposal.id, float(proposal.time_limit_seconds)
    allow_moves = proposal.allow_moves
    try:
        data = json.loads(proposal.problem_json)
        # Nothing may touch the session from here until the solve ends: on SQLite any
        # new transaction takes the write lock the progress writer needs.
        db.session.commit()
        problem = load_problem(data)
        writer = _ProgressWriter(db.engine, proposal_id, echo)
        result, baseline = solve_with_baseline(
            problem,
            time_limit=max(0.1, time_limit - _store_reserve(problem)),
            workers=workers,
            on_progress=writer,
            began=began,
            # Moving a booked NQSW costs 1, so greedy (which moves nobody) is always
            # cheapest there: with moves allowed, placing more people comes first.
            within_greedy_cost=not allow_moves,
        )
    except Exception:
        db.session.rollback()
        log.exception("allocation proposal %s failed", proposal_id)
        proposal = db.session.get_one(AllocationProposal, proposal_id)
        proposal.status = ProposalStatus.FAILED
        proposal.error = "The solver stopped with an error; the details are in the server log."
        db.session.commit()
        return proposal
    db.session.refresh(proposal)
    proposal.result_json = json.dumps(allocation_to_json(result))
    proposal.greedy_json = json.dumps(allocation_to_json(baseline))
    proposal.status = ProposalStatus.READY
    proposal.progress_phase = "done"
    proposal.progress_objective = float(result.placed)
    proposal.progress_bound = float(result.bound_placed)
    proposal.progress_seconds = time.perf_counter() - began
    proposal.progress_updated_at = utcnow()
    db.session.commit()
    log.info(
        "allocation proposal %s ready: %s placed, %s unplaced (%s)",
        proposal_id,
        result.placed,
        result.unplaced,
        result.status,
    )
    return proposal


def _run_in_background(app: Flask, proposal_id: int) -> None:
    with app.app_context():
        try:
            run_proposal(db.session.get_one(AllocationProposal, proposal_id))
        finally:
            db.session.remove()


def start_run(
    programme: Programme,
    *,
    by: User | None,
    time_limit: int,
    allow_moves: bool = False,
    include_optional: bool = False,
) -> AllocationProposal:
    """Record a run and solve it in a background thread; the page polls its progress."""
    proposal = create_proposal(
        programme,
        by=by,
        time_limit=time_limit,
        allow_moves=allow_moves,
        include_optional=include_optional,
    )
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    threading.Thread(
        target=_run_in_background,
        args=(app, proposal.id),
        name=f"allocation-{proposal.id}",
        daemon=True,
    ).start()
    return proposal


@dataclass(frozen=True)
class RunProgress:
    """What a progress poll reports: figures, and the same in words."""

    status: str
    phase: str
    placed: int | None
    placed_bound: int | None
    preference_cost: int | None
    requests: int
    seconds: float
    time_limit: int
    message: str
    cost_bound: int | None = None
    greedy_placed: int | None = None
    greedy_cost: int | None = None
    details: tuple[str, ...] = ()

    @property
    def seconds_left(self) -> int:
        return max(0, round(self.time_limit - self.seconds))

    def as_json(self) -> dict[str, Any]:
        """Return the figures as a JSON object."""
        return {
            "status": self.status,
            "phase": self.phase,
            "placed": self.placed,
            "placed_bound": self.placed_bound,
            "preference_cost": self.preference_cost,
            "cost_bound": self.cost_bound,
            "greedy_placed": self.greedy_placed,
            "greedy_cost": self.greedy_cost,
            "requests": self.requests,
            "seconds": round(self.seconds, 1),
            "seconds_left": self.seconds_left,
            "time_limit": self.time_limit,
            "message": self.message,
            "details": list(self.details),
        }


def _requests(problem_data: dict[str, Any]) -> int:
    total = 0
    for learner in problem_data["learners"]:
        asked = [*learner["needs"], *learner.get("wants", [])]
        total += len(asked) + len([c for c in learner["fixed"] if c not in asked])
    return total


def is_abandoned(proposal: AllocationProposal, now: datetime | None = None) -> bool:
    """Return True when a run has said nothing for far longer than its time limit allows."""
    now = now or utcnow()
    if proposal.status is not ProposalStatus.RUNNING:
        return False
    heard = proposal.progress_updated_at or proposal.created_at
    return (now - heard).total_seconds() > proposal.time_limit_seconds + ABANDON_GRACE_SECONDS


def _places(n: int) -> str:
    return f"{n:,} place" + ("" if n == 1 else "s")


def describe(
    placed: int, placed_bound: int, cost: int, cost_bound: int, greedy: tuple[int, int]
) -> tuple[str, ...]:
    """Return the comparison a coordinator reads: against first come, first served and the best.

    Two sentences: places (more than greedy, and how many short of the most possible)
    and preference cost (how many listed-date steps people are away from their first
    choices, against greedy's and the least possible at this many places).
    """
    more = placed - greedy[0]
    versus = (
        f"{_places(more)} more than first come, first served ({greedy[0]:,})"
        if more > 0
        else f"as many as first come, first served ({greedy[0]:,})"
    )
    short = placed_bound - placed
    best = (
        "no allocation can place more"
        if short <= 0
        else f"at most {_places(short)} short of the most possible ({placed_bound:,})"
    )
    saved = greedy[1] - cost
    cost_versus = (
        f"{saved:,} lower than first come, first served ({greedy[1]:,})"
        if saved > 0
        else f"the same as first come, first served ({greedy[1]:,})"
    )
    gap = cost - cost_bound
    least = (
        "and no allocation with as many places does better"
        if gap <= 0
        else f"and at most {gap:,} above the least possible for that many places ({cost_bound:,})"
    )
    return (
        f"{placed:,} course places filled: {versus}; {best}.",
        f"Preference cost {cost:,} (one point for each step down someone's list of dates):"
        f" {cost_versus}, {least}.",
    )


def run_progress(proposal: AllocationProposal) -> RunProgress:
    """Return the proposal's progress in words and figures."""
    db.session.refresh(proposal)
    requests = _requests(json.loads(proposal.problem_json))
    status = proposal.status.value
    phase = proposal.progress_phase
    figures = json.loads(proposal.progress_json or "{}")
    placed = figures.get("placed")
    bound = figures.get("placed_bound")
    cost = figures.get("preference_cost")
    cost_bound = figures.get("cost_bound")
    greedy_figures = (figures.get("greedy_placed"), figures.get("greedy_cost"))
    details: tuple[str, ...] = ()
    seconds = proposal.progress_seconds
    if proposal.status is ProposalStatus.RUNNING and is_abandoned(proposal):
        status = ProposalStatus.FAILED.value
        message = "The run stopped without a result (the server may have restarted). Run again."
    elif proposal.status is ProposalStatus.RUNNING:
        # The message leaves out the clock so a screen reader announces only real news.
        if placed is None:
            message = "Building the problem and the first-come, first-served answer."
        else:
            message = (
                "Improving the places and dates."
                if phase == "placements"
                else "Places found; now moving people to dates they listed."
            )
            details = describe(placed, bound, cost, cost_bound, greedy_figures)
        if proposal.progress_updated_at is not None:
            # Time runs on between reports from the solver.
            seconds += (utcnow() - proposal.progress_updated_at).total_seconds()
    elif proposal.status is ProposalStatus.FAILED:
        message = proposal.error or "The run failed."
    else:
        result = allocation_from_json(json.loads(proposal.result_json or "{}"))
        placed, bound, cost = result.placed, result.bound_placed, result.preference_cost
        cost_bound = result.bound_preference_cost
        if proposal.greedy_json:
            base = allocation_from_json(json.loads(proposal.greedy_json))
            greedy_figures = (base.placed, base.preference_cost)
            details = describe(placed, bound, cost, cost_bound, greedy_figures)
        message = f"Finished: {placed:,} of {requests:,} course places placed ({result.status})."
    return RunProgress(
        status=status,
        phase=phase,
        placed=placed,
        placed_bound=bound,
        preference_cost=cost,
        requests=requests,
        seconds=min(seconds, float(proposal.time_limit_seconds)),
        time_limit=proposal.time_limit_seconds,
        message=message,
        cost_bound=cost_bound,
        greedy_placed=greedy_figures[0],
        greedy_cost=greedy_figures[1],
        details=details,
    )


# --- review ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """A proposed place: ``current`` is the session it moves from, if any."""

    nqsw: NQSW
    course: Course
    session: Session
    current: Session | None = None


@dataclass(frozen=True)
class Unplaced:
    """A course the proposal leaves an NQSW without, and why."""

    nqsw: NQSW
    course: Course
    code: str
    reason: str
    keeps: Session | None = None  # an existing place that stays although not proposed


@dataclass(frozen=True)
class Fill:
    """A session's places before and after the proposal."""

    session: Session
    capacity: int
    before: int
    after: int


@dataclass(frozen=True)
class Review:
    """Everything the coordinator checks before committing a proposal."""

    proposal: AllocationProposal
    result: Allocation
    baseline: Allocation | None
    new: list[Placement]
    moves: list[Placement]
    kept: int
    unplaced: list[Unplaced]
    fill: list[Fill]
    first_choice: int
    other_choice: int
    unlisted: int
    stale: bool
    report: CommitReport | None = None
    refused: list[tuple[NQSW, Course, str]] = field(default_factory=list)
    warnings: tuple[str, ...] = ()
    details: tuple[str, ...] = ()


def _index(problem: Problem) -> tuple[dict[str, NQSW], dict[str, Session]]:
    nqsw_ids = [int(lr.id[1:]) for lr in problem.learners]
    session_ids = [int(s.id[1:]) for s in problem.sessions]
    # Names are shown for every row, so load the accounts in one query, not one each.
    query = select(NQSW).where(NQSW.id.in_(nqsw_ids)).options(selectinload(NQSW.user))
    nqsws = {_nid(n.id): n for n in db.session.scalars(query)}
    sessions = {
        _sid(s.id): s
        for s in db.session.scalars(select(Session).where(Session.id.in_(session_ids)))
    }
    return nqsws, sessions


def _plan(proposal: AllocationProposal) -> tuple[Problem, Allocation]:
    if proposal.result_json is None:
        raise AllocationError("This proposal has no result yet.")
    problem = load_problem(json.loads(proposal.problem_json))
    return problem, allocation_from_json(json.loads(proposal.result_json))


def review_proposal(proposal: AllocationProposal) -> Review:
    """Return who moves where, who stays unplaced and why, session fill and the comparison."""
    problem, result = _plan(proposal)
    baseline = (
        allocation_from_json(json.loads(proposal.greedy_json)) if proposal.greedy_json else None
    )
    nqsws, sessions = _index(problem)
    courses = {c.code: c for c in proposal.programme.courses}
    learner_of = {lr.id: lr for lr in problem.learners}
    start_place = {
        (learner, code): sid
        for learner, places in json.loads(proposal.held_json).items()
        for code, sid in places.items()
    }

    new: list[Placement] = []
    moves: list[Placement] = []
    kept = first = other = unlisted = 0
    after: dict[str, int] = {}
    for a in result.assignments:
        after[a.session] = after.get(a.session, 0) + 1
        was = start_place.get((a.learner, a.course))
        placement = Placement(nqsws[a.learner], courses[a.course], sessions[a.session])
        if was == a.session:
            kept += 1
            continue
        if was is None:
            new.append(placement)
        else:
            moves.append(
                Placement(placement.nqsw, placement.course, placement.session, sessions[was])
            )
        listed = learner_of[a.learner].preferences.get(a.course, ())
        if listed and listed[0] == a.session:
            first += 1
        elif a.session in listed:
            other += 1
        else:
            unlisted += 1

    unplaced = []
    for u in result.unplaced_requests:
        code, _, text = u.reason.partition(": ")
        # The solver's reasons speak of learners; coordinators speak of NQSWs.
        text = text.replace("the learner", "the NQSW")
        was = start_place.get((u.learner, u.course))
        unplaced.append(
            Unplaced(
                nqsws[u.learner],
                courses[u.course],
                code,
                text,
                sessions[was] if was is not None else None,
            )
        )
    before: dict[str, int] = {}
    for sid in start_place.values():
        before[sid] = before.get(sid, 0) + 1
    fill = [
        Fill(
            sessions[s.id],
            s.capacity,
            before.get(s.id, 0),
            # A place the proposal drops is not cancelled, so it still counts.
            after.get(s.id, 0) + sum(1 for u in unplaced if u.keeps is sessions[s.id]),
        )
        for s in problem.sessions
        # Sessions under way or run are in the problem only for protected time.
        if s.start > proposal.created_at
    ]
    order = {c.code: c.position for c in courses.values()}
    new.sort(key=lambda p: (order[p.course.code], p.session.starts_at, p.nqsw.id))
    moves.sort(key=lambda p: (order[p.course.code], p.session.starts_at, p.nqsw.id))
    unplaced.sort(key=lambda u: (order[u.course.code], u.nqsw.id))
    report = _stored_report(proposal) if proposal.commit_report_json else None
    refused = [
        (nqsws[f["learner"]], courses[f["course"]], f["reason"])
        for f in (report.failed if report else [])
    ]
    return Review(
        proposal=proposal,
        result=result,
        baseline=baseline,
        new=new,
        moves=moves,
        kept=kept,
        unplaced=unplaced,
        fill=fill,
        first_choice=first,
        other_choice=other,
        unlisted=unlisted,
        stale=proposal.status is ProposalStatus.READY and is_stale(proposal),
        report=report,
        refused=refused,
        warnings=result.warnings,
        details=describe(
            result.placed,
            result.bound_placed,
            result.preference_cost,
            result.bound_preference_cost,
            (baseline.placed, baseline.preference_cost),
        )
        if baseline is not None
        else (),
    )


def is_stale(proposal: AllocationProposal, now: datetime | None = None) -> bool:
    """Return True when bookings changed since the proposal's problem was built."""
    _, fingerprint = build_problem(
        proposal.programme,
        allow_moves=proposal.allow_moves,
        include_optional=proposal.include_optional,
        now=now,
    )
    return fingerprint != proposal.fingerprint


def stale_proposal_ids(proposals: Sequence[AllocationProposal]) -> set[int]:
    """Return the ids of ready proposals that bookings have overtaken (one build per option set)."""
    current: dict[tuple[int, bool, bool], str] = {}
    stale: set[int] = set()
    for proposal in proposals:
        if proposal.status is not ProposalStatus.READY:
            continue
        key = (proposal.programme_id, proposal.allow_moves, proposal.include_optional)
        if key not in current:
            current[key] = build_problem(
                proposal.programme,
                allow_moves=proposal.allow_moves,
                include_optional=proposal.include_optional,
            )[1]
        if current[key] != proposal.fingerprint:
            stale.add(proposal.id)
    return stale


# --- committing ------------------------------------------------------------------------


@dataclass
class CommitReport:
    """What a commit did: bookings made, moves made, places kept, and refusals."""

    booked: int = 0
    moved: int = 0
    unchanged: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    already_committed: bool = False

    def as_json(self) -> dict[str, Any]:
        """Return the report as a JSON object (ids only)."""
        return {
            "booked": self.booked,
            "moved": self.moved,
            "unchanged": self.unchanged,
            "failed": self.failed,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CommitReport:
        """Return the report a commit stored."""
        return cls(data["booked"], data["moved"], data["unchanged"], list(data["failed"]))


def _set_status(proposal_id: int, old: ProposalStatus, new: ProposalStatus) -> bool:
    result = db.session.execute(
        update(AllocationProposal)
        .where(AllocationProposal.id == proposal_id, AllocationProposal.status == old)
        .values(status=new)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def commit_proposal(
    proposal: AllocationProposal, by: User | None, *, now: datetime | None = None
) -> CommitReport:
    """Make the proposal's bookings through the booking service; refuse a stale proposal.

    A second commit does nothing: the proposal is claimed with a guarded UPDATE on its
    status, so of two commits at once only one books.
    """
    proposal_id = proposal.id
    if proposal.status is ProposalStatus.COMMITTED:
        return _stored_report(proposal)
    if proposal.status is not ProposalStatus.READY:
        raise AllocationError("Only a finished proposal can be committed.")
    claimed = _set_status(proposal_id, ProposalStatus.READY, ProposalStatus.COMMITTING)
    db.session.commit()
    proposal = db.session.get_one(AllocationProposal, proposal_id)
    db.session.refresh(proposal)
    if not claimed:
        if proposal.status is ProposalStatus.COMMITTED:
            return _stored_report(proposal)
        raise AllocationError("This proposal is already being committed.")
    if is_stale(proposal, now):
        _set_status(proposal_id, ProposalStatus.COMMITTING, ProposalStatus.READY)
        db.session.commit()
        raise StaleProposal(
            "Bookings have changed since this proposal was made, so it was not committed. "
            "Run the allocation again to get a proposal that fits the current bookings."
        )
    report = _apply(proposal, by, now)
    proposal = db.session.get_one(AllocationProposal, proposal_id)
    proposal.status = ProposalStatus.COMMITTED
    proposal.committed_at = utcnow()
    proposal.committed_by_id = by.id if by else None
    proposal.commit_report_json = json.dumps(report.as_json())
    db.session.commit()
    log.info(
        "allocation proposal %s committed: %s booked, %s moved, %s refused",
        proposal_id,
        report.booked,
        report.moved,
        len(report.failed),
    )
    return report


def _stored_report(proposal: AllocationProposal) -> CommitReport:
    report = CommitReport.from_json(json.loads(proposal.commit_report_json or "{}"))
    report.already_committed = True
    return report


@dataclass
class _Step:
    learner: str
    course: str
    session: str


def _apply(proposal: AllocationProposal, by: User | None, now: datetime | None) -> CommitReport:
    _, result = _plan(proposal)
    report = CommitReport()
    user_id = by.id if by else None
    steps = [_Step(a.learner, a.course, a.session) for a in result.assignments]
    course_ids = {c.code: c.id for c in proposal.programme.courses}
    # Moves first: they free the places some new bookings need. A refusal is retried
    # after the others, since a later move can free what an earlier step wanted.
    pending = sorted(steps, key=lambda s: _current(s, course_ids) is None)
    while pending:
        refused: list[tuple[_Step, str]] = []
        for step in pending:
            outcome = _apply_step(step, course_ids, user_id, now)
            if outcome == "booked":
                report.booked += 1
            elif outcome == "moved":
                report.moved += 1
            elif outcome == "unchanged":
                report.unchanged += 1
            else:
                refused.append((step, outcome))
        if len(refused) == len(pending):
            report.failed = [
                {"learner": s.learner, "course": s.course, "session": s.session, "reason": why}
                for s, why in refused
            ]
            break
        pending = [s for s, _ in refused]
    return report


def _current(step: _Step, course_ids: dict[str, int]) -> Booking | None:
    return db.session.scalar(
        select(Booking).where(
            Booking.nqsw_id == int(step.learner[1:]),
            Booking.course_id == course_ids[step.course],
            Booking.status == BookingStatus.BOOKED,
        )
    )


def _apply_step(
    step: _Step, course_ids: dict[str, int], user_id: int | None, now: datetime | None
) -> str:
    """Make one placement; return what happened, or the refusal's message."""
    by = db.session.get(User, user_id) if user_id is not None else None
    session = db.session.get_one(Session, int(step.session[1:]))
    current = _current(step, course_ids)
    try:
        if current is None:
            nqsw = db.session.get_one(NQSW, int(step.learner[1:]))
            bookings.book_place(nqsw, session, by=by, source=BookingSource.ALLOCATION, now=now)
            return "booked"
        if current.session_id == session.id:
            return "unchanged"
        bookings.move_booking(current, session, by=by, source=BookingSource.ALLOCATION, now=now)
        return "moved"
    except BookingError as error:
        db.session.rollback()
        return error.message


def proposals_for(programme: Programme) -> list[AllocationProposal]:
    """Return the programme's proposals, newest first."""
    return list(
        db.session.scalars(
            select(AllocationProposal)
            .where(AllocationProposal.programme_id == programme.id)
            .order_by(AllocationProposal.created_at.desc(), AllocationProposal.id.desc())
        )
    )
