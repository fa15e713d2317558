"""The allocation problem and its result: frozen data, JSON loading and eligibility.

The JSON formats are described in ``scheduler/FORMAT.md``. Everything the solver, the
greedy baseline and the reason finder need to agree on (who may attend what) is
computed here once, in :attr:`Problem.requests`.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from typing import Any, Literal
from zoneinfo import ZoneInfo

from scheduler.rules import ProtectedTime, TrainingDay, breaches

FORMAT = "asye-allocation/1"
RESULT_FORMAT = "asye-allocation-result/1"
LONDON = ZoneInfo("Europe/London")

# The programme settings are exactly the shared protected-time rule.
Rules = ProtectedTime

Status = Literal["optimal", "feasible"]


class ProblemError(ValueError):
    """Bad input: ``path`` names the JSON location, ``message`` says what is wrong."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True)
class Course:
    """A course every session of which takes ``days`` of protected time.

    An ``optional`` course (a workshop) is placed only for learners who list it in
    ``wants``.
    """

    id: str
    title: str
    days: float
    optional: bool = False


@dataclass(frozen=True)
class SessionSlot:
    """One dated run of a course; ``group`` (a region, say) restricts who may attend."""

    id: str
    course: str
    start: datetime
    end: datetime
    capacity: int
    group: str | None = None
    day: date = field(init=False, compare=False)

    def __post_init__(self) -> None:
        # Protected time and the ASYE year are counted in London calendar days.
        object.__setattr__(self, "day", self.start.astimezone(LONDON).date())

    def overlaps(self, other: SessionSlot) -> bool:
        """Return True when the two sessions share any instant."""
        return self.start < other.end and other.start < self.end


@dataclass(frozen=True)
class DateRange:
    """An inclusive range of London calendar days."""

    start: date
    end: date

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day <= self.end


@dataclass(frozen=True)
class Learner:
    """An NQSW: their ASYE year, working pattern, needs and any places already held."""

    id: str
    employer: str
    start: date
    end: date
    fte: float
    needs: tuple[str, ...]
    unavailable: tuple[DateRange, ...] = ()
    preferences: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    fixed: Mapping[str, str] = field(default_factory=dict)
    groups: frozenset[str] = frozenset()
    wants: tuple[str, ...] = ()
    avoid: frozenset[str] = frozenset()

    @property
    def requests(self) -> tuple[str, ...]:
        """Return the courses to place: ``needs``, ``wants``, then other fixed courses."""
        asked = self.needs + self.wants
        return asked + tuple(c for c in self.fixed if c not in asked)

    def preference_cost(self, course: str, session: str) -> int:
        """Return the cost of placing this learner on ``session`` for ``course``."""
        listed = self.preferences.get(course, ())
        return listed.index(session) if session in listed else len(listed)


@dataclass(frozen=True)
class Request:
    """One (learner, course) to place, with the sessions the static rules allow.

    ``sessions`` holds session indices in the greedy's order: listed preferences first,
    then the rest by start time. The counts explain an empty list.
    """

    learner: int
    course: str
    fixed: int | None
    sessions: tuple[int, ...]
    costs: tuple[int, ...]
    offered: int
    in_year: int
    open_to_learner: int
    available: int = 0  # open dates outside every unavailable range, avoided or not


@dataclass(frozen=True)
class Problem:
    """A whole allocation instance."""

    rules: Rules
    courses: tuple[Course, ...]
    sessions: tuple[SessionSlot, ...]
    learners: tuple[Learner, ...]

    @cached_property
    def course_by_id(self) -> dict[str, Course]:
        """Return courses keyed by id."""
        return {c.id: c for c in self.courses}

    @cached_property
    def session_index(self) -> dict[str, int]:
        """Return session positions keyed by id."""
        return {s.id: i for i, s in enumerate(self.sessions)}

    def days_of(self, session: int) -> float:
        """Return the protected-time days a session uses."""
        return self.course_by_id[self.sessions[session].course].days

    @cached_property
    def requests(self) -> tuple[Request, ...]:
        """Return every (learner, course) request with its statically eligible sessions."""
        # Sessions of each course (and of each course and group) in start order, with
        # their days beside them, so each learner's year is two bisections, not a scan.
        by_course: dict[str, list[int]] = {c.id: [] for c in self.courses}
        for i, s in enumerate(self.sessions):
            by_course[s.course].append(i)
        by_group: dict[tuple[str, str | None], list[int]] = {}
        for ids in by_course.values():
            ids.sort(key=lambda i: (self.sessions[i].start, i))
            for i in ids:
                by_group.setdefault((self.sessions[i].course, self.sessions[i].group), []).append(i)
        days_of = {
            key: [self.sessions[i].day for i in ids]
            for key, ids in [*by_course.items(), *by_group.items()]
        }

        def within(key: Any, ids: list[int], first: date, last: date) -> list[int]:
            days = days_of[key]
            return ids[bisect_left(days, first) : bisect_right(days, last)]

        order = {i: k for ids in by_course.values() for k, i in enumerate(ids)}
        day = [s.day for s in self.sessions]
        out: list[Request] = []
        for li, learner in enumerate(self.learners):
            for course in learner.requests:
                offered = by_course[course]
                in_year = within(course, offered, learner.start, learner.end)
                open_: list[int] = []
                for group in (None, *sorted(learner.groups)):
                    members = by_group.get((course, group))
                    if members:
                        open_ += within((course, group), members, learner.start, learner.end)
                if len(open_) > 1:
                    open_.sort(key=order.__getitem__)
                eligible = open_
                if learner.unavailable:
                    eligible = [
                        i
                        for i in open_
                        if not any(r.start <= day[i] <= r.end for r in learner.unavailable)
                    ]
                available = len(eligible)
                if learner.avoid:
                    eligible = [i for i in eligible if self.sessions[i].id not in learner.avoid]
                listed = learner.preferences.get(course, ())
                costs = [len(listed)] * len(eligible)
                if listed:
                    rank = {self.session_index[sid]: k for k, sid in enumerate(listed)}
                    # Stable sort keeps start-time order among unlisted sessions.
                    eligible.sort(key=lambda i: rank.get(i, len(listed)))
                    costs = [rank.get(i, len(listed)) for i in eligible]
                fixed = learner.fixed.get(course)
                out.append(
                    Request(
                        learner=li,
                        course=course,
                        fixed=None if fixed is None else self.session_index[fixed],
                        sessions=tuple(eligible),
                        costs=tuple(costs),
                        offered=len(offered),
                        in_year=len(in_year),
                        open_to_learner=len(open_),
                        available=available,
                    )
                )
        return tuple(out)

    @cached_property
    def fixed_warnings(self) -> tuple[str, ...]:
        """Return a line for each rule the fixed placements break by themselves."""
        warnings: list[str] = []
        taken: dict[int, int] = {}
        for req in self.requests:
            if req.fixed is None:
                continue
            taken[req.fixed] = taken.get(req.fixed, 0) + 1
            learner = self.learners[req.learner]
            s = self.sessions[req.fixed]
            if req.fixed not in req.sessions and s.id not in learner.avoid:
                warnings.append(
                    f"fixed: learner {learner.id} is held on {s.id} ({req.course}), a date"
                    " outside their ASYE year, group or availability"
                )
        for si, n in sorted(taken.items()):
            if n > self.sessions[si].capacity:
                warnings.append(
                    f"fixed: session {self.sessions[si].id} holds {n} fixed places"
                    f" but has capacity {self.sessions[si].capacity}"
                )
        for li, learner in enumerate(self.learners):
            held = [self.session_index[sid] for sid in learner.fixed.values()]
            for a, b in _pairs(held):
                if self.sessions[a].overlaps(self.sessions[b]):
                    warnings.append(
                        f"fixed: learner {learner.id} is held on {self.sessions[a].id} and"
                        f" {self.sessions[b].id}, which overlap"
                    )
            items = [TrainingDay(si, self.sessions[si].day, self.days_of(si)) for si in held]
            found = breaches(self.rules, learner.fte, items)
            if found:
                worst = max(found, key=lambda b: b.used)
                warnings.append(
                    f"fixed: learner {self.learners[li].id} has {worst.used:g} days in the"
                    f" {self.rules.window_weeks} weeks from {worst.window_start.isoformat()},"
                    f" over the cap of {worst.cap:g} ({len(found)} window(s) over)"
                )
        return tuple(warnings)


def _pairs(items: Sequence[int]) -> list[tuple[int, int]]:
    return [(a, b) for k, a in enumerate(items) for b in items[k + 1 :]]


@dataclass(frozen=True)
class Assignment:
    """A learner placed on a session of a course."""

    learner: str
    course: str
    session: str


@dataclass(frozen=True)
class UnplacedRequest:
    """A (learner, course) left unplaced; ``reason`` is ``"code: text"`` (see FORMAT.md)."""

    learner: str
    course: str
    reason: str


@dataclass(frozen=True)
class Allocation:
    """The result of an allocation run and what was proved about it."""

    status: Status
    placed: int
    unplaced: int
    preference_cost: int
    bound_placed: int
    bound_preference_cost: int
    seconds: float
    assignments: tuple[Assignment, ...]
    unplaced_requests: tuple[UnplacedRequest, ...]
    warnings: tuple[str, ...] = ()


def allocation_to_json(allocation: Allocation) -> dict[str, Any]:
    """Return the result as the ``asye-allocation-result/1`` JSON object."""
    return {
        "format": RESULT_FORMAT,
        "status": allocation.status,
        "placed": allocation.placed,
        "unplaced": allocation.unplaced,
        "preference_cost": allocation.preference_cost,
        "bound": {
            "placed": allocation.bound_placed,
            "preference_cost": allocation.bound_preference_cost,
        },
        "seconds": round(allocation.seconds, 3),
        "assignments": [
            {"learner": a.learner, "course": a.course, "session": a.session}
            for a in allocation.assignments
        ],
        "unplaced_requests": [
            {"learner": u.learner, "course": u.course, "reason": u.reason}
            for u in allocation.unplaced_requests
        ],
        "warnings": list(allocation.warnings),
    }


def allocation_from_json(data: Mapping[str, Any]) -> Allocation:
    """Return the Allocation that ``allocation_to_json`` wrote (trusted input)."""
    if data.get("format") != RESULT_FORMAT:
        raise ProblemError("format", f'expected "{RESULT_FORMAT}"')
    return Allocation(
        status=data["status"],
        placed=data["placed"],
        unplaced=data["unplaced"],
        preference_cost=data["preference_cost"],
        bound_placed=data["bound"]["placed"],
        bound_preference_cost=data["bound"]["preference_cost"],
        seconds=data["seconds"],
        assignments=tuple(Assignment(**a) for a in data["assignments"]),
        unplaced_requests=tuple(UnplacedRequest(**u) for u in data["unplaced_requests"]),
        warnings=tuple(data.get("warnings", ())),
    )


# --- loading -----------------------------------------------------------------------

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})")


def _obj(value: Any, path: str, required: set[str], optional: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProblemError(path, f"expected an object, got {_kind(value)}")
    for key in sorted(required - value.keys()):
        raise ProblemError(path, f'missing "{key}"')
    for key in value:
        if key not in required | optional:
            raise ProblemError(_join(path, key), "unknown field")
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise ProblemError(path, f"expected a list, got {_kind(value)}")
    return value


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ProblemError(path, f"expected a non-empty string, got {_kind(value)}")
    return value


def _num(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ProblemError(path, f"expected a number, got {_kind(value)}")
    return float(value)


def _int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ProblemError(path, f"expected a whole number, got {value!r}")
    return value


def _date(value: Any, path: str) -> date:
    text = _str(value, path)
    if not _DATE.fullmatch(text):
        raise ProblemError(path, f'expected a date "YYYY-MM-DD", got "{text}"')
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ProblemError(path, f'not a real date: "{text}"') from exc


def _datetime(value: Any, path: str) -> datetime:
    text = _str(value, path)
    if not _DATETIME.fullmatch(text):
        raise ProblemError(
            path, f'expected a date-time with offset such as "2027-01-12T09:30:00Z", got "{text}"'
        )
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ProblemError(path, f'not a real date-time: "{text}"') from exc


def _unique(ids: list[str], path: str, what: str) -> None:
    seen: set[str] = set()
    for k, i in enumerate(ids):
        if i in seen:
            raise ProblemError(f"{path}[{k}].id", f'duplicate {what} id "{i}"')
        seen.add(i)


def load_problem(data: Any) -> Problem:
    """Return the Problem in ``data`` (parsed JSON), or raise ProblemError naming the fault."""
    top = _obj(data, "", {"format", "courses", "sessions", "learners"}, {"rules"})
    if top["format"] != FORMAT:
        raise ProblemError("format", f'expected "{FORMAT}", got {top["format"]!r}')
    rules = _load_rules(top.get("rules", {}))

    courses: list[Course] = []
    for k, raw in enumerate(_list(top["courses"], "courses")):
        p = f"courses[{k}]"
        c = _obj(raw, p, {"id", "days"}, {"title", "optional"})
        days = _num(c["days"], f"{p}.days")
        if days <= 0:
            raise ProblemError(f"{p}.days", f"must be more than 0, got {days:g}")
        title = _str(c["title"], f"{p}.title") if "title" in c else c["id"]
        optional = c.get("optional", False)
        if not isinstance(optional, bool):
            raise ProblemError(f"{p}.optional", f"expected true or false, got {_kind(optional)}")
        courses.append(Course(_str(c["id"], f"{p}.id"), title, days, optional))
    _unique([c.id for c in courses], "courses", "course")
    course_ids = {c.id for c in courses}
    optional_ids = {c.id for c in courses if c.optional}

    sessions: list[SessionSlot] = []
    for k, raw in enumerate(_list(top["sessions"], "sessions")):
        p = f"sessions[{k}]"
        s = _obj(raw, p, {"id", "course", "start", "end", "capacity"}, {"group", "title"})
        sid = _str(s["id"], f"{p}.id")
        course = _str(s["course"], f"{p}.course")
        if course not in course_ids:
            raise ProblemError(f"{p}.course", f'unknown course "{course}"')
        start = _datetime(s["start"], f"{p}.start")
        end = _datetime(s["end"], f"{p}.end")
        if end <= start:
            raise ProblemError(f"{p}.end", "must be after start")
        capacity = _int(s["capacity"], f"{p}.capacity")
        if capacity < 0:
            raise ProblemError(f"{p}.capacity", f"must not be negative, got {capacity}")
        group = _str(s["group"], f"{p}.group") if s.get("group") is not None else None
        sessions.append(SessionSlot(sid, course, start, end, capacity, group))
    _unique([s.id for s in sessions], "sessions", "session")
    session_course = {s.id: s.course for s in sessions}

    learners: list[Learner] = []
    for k, raw in enumerate(_list(top["learners"], "learners")):
        learners.append(
            _load_learner(raw, f"learners[{k}]", course_ids, optional_ids, session_course)
        )
    _unique([lr.id for lr in learners], "learners", "learner")
    return Problem(rules, tuple(courses), tuple(sessions), tuple(learners))


def _load_rules(raw: Any) -> Rules:
    r = _obj(raw, "rules", set(), {"protected_days_per_week", "window_weeks", "training_share"})
    defaults = Rules()
    per_week = _num(
        r.get("protected_days_per_week", defaults.protected_days_per_week),
        "rules.protected_days_per_week",
    )
    weeks = _int(r.get("window_weeks", defaults.window_weeks), "rules.window_weeks")
    share = _num(r.get("training_share", defaults.training_share), "rules.training_share")
    if per_week < 0:
        raise ProblemError("rules.protected_days_per_week", "must not be negative")
    if weeks < 1:
        raise ProblemError("rules.window_weeks", "must be at least 1")
    if not 0 <= share <= 1:
        raise ProblemError("rules.training_share", "must be between 0 and 1")
    return Rules(per_week, weeks, share)


def _load_learner(
    raw: Any,
    p: str,
    course_ids: set[str],
    optional_ids: set[str],
    session_course: Mapping[str, str],
) -> Learner:
    lr = _obj(
        raw,
        p,
        {"id", "start", "end", "fte", "needs"},
        {"employer", "unavailable", "preferences", "fixed", "groups", "wants", "avoid"},
    )
    lid = _str(lr["id"], f"{p}.id")
    employer = _str(lr["employer"], f"{p}.employer") if "employer" in lr else ""
    start = _date(lr["start"], f"{p}.start")
    end = _date(lr["end"], f"{p}.end")
    if end < start:
        raise ProblemError(f"{p}.end", "is before start")
    fte = _num(lr["fte"], f"{p}.fte")
    if not 0 < fte <= 1:
        raise ProblemError(f"{p}.fte", f"must be more than 0 and at most 1, got {fte:g}")

    needs: list[str] = []
    for k, c in enumerate(_list(lr["needs"], f"{p}.needs")):
        cp = f"{p}.needs[{k}]"
        _known_course(c, cp, course_ids)
        if c in needs:
            raise ProblemError(cp, f'course "{c}" listed twice')
        if c in optional_ids:
            raise ProblemError(cp, f'"{c}" is optional: list it in wants if the learner asked')
        needs.append(c)

    wants: list[str] = []
    for k, c in enumerate(_list(lr.get("wants", []), f"{p}.wants")):
        cp = f"{p}.wants[{k}]"
        _known_course(c, cp, course_ids)
        if c not in optional_ids:
            raise ProblemError(cp, f'"{c}" is not optional: list it in needs')
        if c in wants:
            raise ProblemError(cp, f'course "{c}" listed twice')
        wants.append(c)

    unavailable: list[DateRange] = []
    for k, u in enumerate(_list(lr.get("unavailable", []), f"{p}.unavailable")):
        up = f"{p}.unavailable[{k}]"
        u = _obj(u, up, {"from", "to"}, set())
        r = DateRange(_date(u["from"], f"{up}.from"), _date(u["to"], f"{up}.to"))
        if r.end < r.start:
            raise ProblemError(f"{up}.to", "is before from")
        unavailable.append(r)

    preferences: dict[str, tuple[str, ...]] = {}
    prefs = lr.get("preferences", {})
    if not isinstance(prefs, dict):
        raise ProblemError(f"{p}.preferences", f"expected an object, got {_kind(prefs)}")
    for course, listed in prefs.items():
        pp = f"{p}.preferences.{course}"
        _known_course(course, pp, course_ids)
        ids: list[str] = []
        for k, sid in enumerate(_list(listed, pp)):
            _session_of(sid, f"{pp}[{k}]", course, session_course)
            if sid in ids:
                raise ProblemError(f"{pp}[{k}]", f'session "{sid}" listed twice')
            ids.append(sid)
        preferences[course] = tuple(ids)

    fixed: dict[str, str] = {}
    fx = lr.get("fixed", {})
    if not isinstance(fx, dict):
        raise ProblemError(f"{p}.fixed", f"expected an object, got {_kind(fx)}")
    for course, sid in fx.items():
        fp = f"{p}.fixed.{course}"
        _known_course(course, fp, course_ids)
        _session_of(sid, fp, course, session_course)
        fixed[course] = sid

    avoid: list[str] = []
    for k, sid in enumerate(_list(lr.get("avoid", []), f"{p}.avoid")):
        ap = f"{p}.avoid[{k}]"
        if _str(sid, ap) not in session_course:
            raise ProblemError(ap, f'unknown session "{sid}"')
        if sid in avoid:
            raise ProblemError(ap, f'session "{sid}" listed twice')
        if sid in fixed.values():
            raise ProblemError(ap, f'session "{sid}" is also a fixed place')
        avoid.append(sid)

    groups: list[str] = []
    for k, g in enumerate(_list(lr.get("groups", []), f"{p}.groups")):
        groups.append(_str(g, f"{p}.groups[{k}]"))

    return Learner(
        id=lid,
        employer=employer,
        start=start,
        end=end,
        fte=fte,
        needs=tuple(needs),
        unavailable=tuple(unavailable),
        preferences=preferences,
        fixed=fixed,
        groups=frozenset(groups),
        wants=tuple(wants),
        avoid=frozenset(avoid),
    )


def _known_course(value: Any, path: str, course_ids: set[str]) -> None:
    c = _str(value, path)
    if c not in course_ids:
        raise ProblemError(path, f'unknown course "{c}"')


def _session_of(value: Any, path: str, course: str, session_course: Mapping[str, str]) -> None:
    sid = _str(value, path)
    if sid not in session_course:
        raise ProblemError(path, f'unknown session "{sid}"')
    if session_course[sid] != course:
        raise ProblemError(
            path, f'session "{sid}" is a date of "{session_course[sid]}", not "{course}"'
        )
