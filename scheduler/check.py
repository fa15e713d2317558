"""An independent check that an allocation keeps every rule.

It works from the raw problem fields, not from ``Problem.requests`` or the solver's
model, so a bug there shows up here. Breaks that the fixed placements make on their own
are the input's, not the allocation's, and are left to ``Problem.fixed_warnings``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from scheduler.problem import Assignment, Problem
from scheduler.rules import TrainingDay, breaches


def violations(problem: Problem, assignments: Iterable[Assignment]) -> list[str]:
    """Return one line per rule the assignments break; empty when they are valid."""
    found: list[str] = []
    learners = {lr.id: lr for lr in problem.learners}
    sessions = {s.id: s for s in problem.sessions}
    days = {c.id: c.days for c in problem.courses}
    per_learner: dict[str, list[Assignment]] = {}
    seen: set[tuple[str, str]] = set()
    for a in assignments:
        learner, s = learners.get(a.learner), sessions.get(a.session)
        if learner is None or s is None:
            found.append(f"{a}: unknown learner or session")
            continue
        if s.course != a.course:
            found.append(f"{a}: session is a date of {s.course}")
        if (a.learner, a.course) in seen:
            found.append(f"{a}: learner placed twice on {a.course}")
        seen.add((a.learner, a.course))
        if (
            a.course not in learner.needs
            and a.course not in learner.wants
            and a.course not in learner.fixed
        ):
            found.append(f"{a}: course not needed")
        per_learner.setdefault(a.learner, []).append(a)
        if learner.fixed.get(a.course) == a.session:
            continue
        if a.course in learner.fixed:
            found.append(f"{a}: moved from fixed {learner.fixed[a.course]}")
        day = s.day
        if not learner.start <= day <= learner.end:
            found.append(f"{a}: {day} outside ASYE year")
        if any(r.start <= day <= r.end for r in learner.unavailable):
            found.append(f"{a}: learner unavailable on {day}")
        if s.group is not None and s.group not in learner.groups:
            found.append(f"{a}: session is for group {s.group}")
        if a.session in learner.avoid:
            found.append(f"{a}: learner asked not to be placed on {a.session}")

    for learner in problem.learners:
        placed = {a.course for a in per_learner.get(learner.id, [])}
        for course in learner.fixed:
            if course not in placed:
                found.append(f"{learner.id}: fixed {course} dropped")

    load = Counter(a.session for lst in per_learner.values() for a in lst)
    fixed_load = Counter(sid for lr in problem.learners for sid in lr.fixed.values())
    for sid, n in load.items():
        if n > max(sessions[sid].capacity, fixed_load[sid]):
            found.append(f"{sid}: {n} learners, capacity {sessions[sid].capacity}")

    for lid, placed_list in per_learner.items():
        learner = learners[lid]
        fixed_ids = set(learner.fixed.values())
        for k, a in enumerate(placed_list):
            for b in placed_list[k + 1 :]:
                sa, sb = sessions[a.session], sessions[b.session]
                both_fixed = a.session in fixed_ids and b.session in fixed_ids
                if sa.start < sb.end and sb.start < sa.end and not both_fixed:
                    found.append(f"{lid}: {a.session} overlaps {b.session}")
        items = [
            TrainingDay(a.session, sessions[a.session].day, days[a.course]) for a in placed_list
        ]
        for breach in breaches(problem.rules, learner.fte, items):
            if any(key not in fixed_ids for key in breach.keys):
                found.append(
                    f"{lid}: {breach.used:g} days in window from {breach.window_start}"
                    f" over cap {breach.cap:g}"
                )
    return found
