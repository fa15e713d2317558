"""Generate realistic, seeded allocation instances (``asye-allocation/1`` JSON).

Usage: ``python benchmarks/generate.py FAMILY [--seed N] [--out FILE]``

Families (each seeded; the same seed gives the same instance):

* ``host``: one teaching partnership with 300 NQSWs (three quarters starting in
  September, the rest in January), the Pan-London course set with two dates a year
  each; each date holds 42-55% of the course's demand (large virtual sessions), so
  places are a little short. 20% part-time; 10% hold one place already (``fixed``).
* ``national``: 2,827 NQSWs from 190 employers across the nine English regions, as in
  the national ASYE report; every course runs two or three times in each region
  (``group``), sized to 70-90% of the region's demand, plus two national virtual
  dates of 60 open to all.
* ``stress``: 6,000 NQSWs, 45% part-time (0.4-0.8 FTE), eight dates per course all
  inside two eight-week terms, so protected-time caps bind for many learners.
* ``regional``: nine regions with no shared dates, 160-530 NQSWs each; about thirty
  dates per course per region across two programme years; ASYE starts staggered over
  eighteen months (part-time years extended pro rata), a third part-time, absences,
  and one to three preferred dates on most courses, some dates more popular.
* ``tight``: 800 NQSWs in one year, six dates per course crowded into seven months,
  40% part-time, total places 2-4% above demand: protected time and capacity fight.
* ``online``: 2,800 NQSWs, one national pool of online dates (fourteen per course over
  fourteen months, no groups), so nothing splits.

Every learner needs the nine core courses and each optional workshop with chance 0.4,
lists preferred dates for about half their courses and has 0-2 short absences.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")

# (id, title, days, optional) from the Pan-London ASYE training pack.
COURSES: list[tuple[str, str, float, bool]] = [
    ("care-act", "Care Act", 0.5, False),
    ("records", "Record Keeping and Report Writing", 0.5, False),
    ("culture", "Cultural Sensitivity", 0.5, False),
    ("mh-intro", "Introduction to Mental Health Conditions", 0.5, False),
    ("complex-needs", "Complex Needs/Personality Disorder", 0.5, False),
    ("ebe", "Expert by Experience", 0.5, False),
    ("mca", "MCA in Practice", 1.0, False),
    ("risk", "Risks, Benefits and Decision Making", 1.0, False),
    ("mha", "Mental Health Act", 1.0, False),
    ("resilience", "Resilience and Wellbeing", 0.5, True),
    ("scr", "Social Circumstances Reports", 0.5, True),
]

REGIONS = [
    "north-east",
    "north-west",
    "yorkshire",
    "east-midlands",
    "west-midlands",
    "east",
    "london",
    "south-east",
    "south-west",
]
# Rough shares of NQSWs by region (London and the North West are the largest).
REGION_WEIGHTS = [5, 15, 11, 8, 11, 10, 18, 14, 8]

YEAR_START = date(2026, 9, 1)


def _weekday(rng: random.Random, first: date, last: date) -> date:
    while True:
        d = first + timedelta(days=rng.randrange((last - first).days + 1))
        if d.weekday() < 5:
            return d


def _slot(day: date, days: float, afternoon: bool) -> tuple[str, str]:
    if days >= 1:
        hours = ((9, 30), (16, 30))
    elif afternoon:
        hours = ((13, 30), (16, 30))
    else:
        hours = ((9, 30), (12, 30))
    start, end = (
        datetime(day.year, day.month, day.day, h, m, tzinfo=LONDON).astimezone(ZoneInfo("UTC"))
        for h, m in hours
    )
    return start.strftime("%Y-%m-%dT%H:%M:%SZ"), end.strftime("%Y-%m-%dT%H:%M:%SZ")


def _session(
    rng: random.Random, sid: str, course: tuple[str, str, float, bool], day: date, cap: int
) -> dict[str, Any]:
    start, end = _slot(day, course[2], rng.random() < 0.5)
    return {"id": sid, "course": course[0], "start": start, "end": end, "capacity": cap}


def _day_of(session: dict[str, Any]) -> date:
    return datetime.fromisoformat(session["start"].replace("Z", "+00:00")).astimezone(LONDON).date()


def _learner(
    rng: random.Random,
    lid: str,
    employer: str,
    sessions_by_course: dict[str, list[dict[str, Any]]],
    *,
    part_time: float,
    starts: list[tuple[date, float]],
    groups: list[str] | None = None,
    spread_days: int = 21,
    pro_rata: bool = False,
    popularity: dict[str, float] | None = None,
    listing: float = 0.5,
    listed: tuple[int, ...] = (1, 1, 2),
) -> dict[str, Any]:
    """Return one learner; with ``popularity``, preferences are dates in their own year."""
    start = rng.choices([d for d, _ in starts], [w for _, w in starts])[0]
    start += timedelta(days=rng.randrange(0, spread_days))
    fte = 1.0
    if rng.random() < part_time:
        fte = rng.choice([0.4, 0.5, 0.6, 0.6, 0.8, 0.8])
    # The booking service extends a part-timer's year pro rata (12 months / FTE).
    if pro_rata:
        year, month = divmod(start.month - 1 + round(12 / fte), 12)
        end = date(start.year + year, month + 1, min(start.day, 28)) - timedelta(days=1)
    else:
        end = start.replace(year=start.year + 1) - timedelta(days=1)
    needs = [c[0] for c in COURSES if not c[3]]
    needs += [c[0] for c in COURSES if c[3] and rng.random() < 0.4]
    rng.shuffle(needs)
    unavailable = []
    for _ in range(rng.choice([0, 0, 1, 1, 2])):
        a = _weekday(rng, start, end)
        unavailable.append(
            {"from": a.isoformat(), "to": (a + timedelta(days=rng.randrange(3, 15))).isoformat()}
        )
    preferences: dict[str, list[str]] = {}
    for c in needs:
        own = [
            s for s in sessions_by_course[c] if groups is None or s.get("group") in (None, *groups)
        ]
        if popularity is not None:
            own = [s for s in own if start <= _day_of(s) <= end]
        if not own or rng.random() >= listing:
            continue
        k = min(len(own), rng.choice(listed))
        if popularity is None:
            preferences[c] = [s["id"] for s in rng.sample(own, k)]
            continue
        chosen: list[str] = []
        pool = list(own)
        while len(chosen) < k:
            pick = rng.choices(pool, [popularity[s["id"]] for s in pool])[0]
            pool.remove(pick)
            chosen.append(pick["id"])
        preferences[c] = chosen
    learner: dict[str, Any] = {
        "id": lid,
        "employer": employer,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "fte": fte,
        "needs": needs,
        "unavailable": unavailable,
        "preferences": preferences,
        "fixed": {},
    }
    if groups is not None:
        learner["groups"] = groups
    return learner


def _fix_some(rng: random.Random, instance: dict[str, Any], share: float) -> None:
    """Give a few learners a place they already booked (within capacity)."""
    sessions = {s["id"]: s for s in instance["sessions"]}
    taken: dict[str, int] = {}
    for learner in instance["learners"]:
        if rng.random() >= share:
            continue
        course = rng.choice(learner["needs"])
        listed = learner["preferences"].get(course)
        if not listed:
            continue
        s = sessions[listed[0]]
        day = datetime.fromisoformat(s["start"].replace("Z", "+00:00")).astimezone(LONDON).date()
        if not learner["start"] <= day.isoformat() <= learner["end"]:
            continue
        if any(u["from"] <= day.isoformat() <= u["to"] for u in learner["unavailable"]):
            continue
        if taken.get(s["id"], 0) < s["capacity"] // 3:
            taken[s["id"]] = taken.get(s["id"], 0) + 1
            learner["fixed"][course] = s["id"]


def _base(sessions: list[dict[str, Any]], learners: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "format": "asye-allocation/1",
        "rules": {"protected_days_per_week": 0.5, "window_weeks": 4, "training_share": 1.0},
        "courses": [{"id": c[0], "title": c[1], "days": c[2]} for c in COURSES],
        "sessions": sessions,
        "learners": learners,
    }


def host(seed: int = 1, learners: int = 300) -> dict[str, Any]:
    """Return one host's year: two dates per course, supply a little short of demand."""
    rng = random.Random(seed)
    sessions: list[dict[str, Any]] = []
    by_course: dict[str, list[dict[str, Any]]] = {}
    for c in COURSES:
        demand = learners * (0.4 if c[3] else 1.0)
        for k in range(2):
            day = _weekday(
                rng,
                YEAR_START + timedelta(days=30 + 150 * k),
                YEAR_START + timedelta(150 * k + 140),
            )
            cap = max(10, round(demand * rng.uniform(0.42, 0.55)))
            s = _session(rng, f"{c[0]}-{k + 1}", c, day, cap)
            sessions.append(s)
            by_course.setdefault(c[0], []).append(s)
    people = [
        _learner(
            rng,
            f"n{i + 1}",
            f"employer-{rng.randrange(12) + 1}",
            by_course,
            part_time=0.2,
            starts=[(date(2026, 9, 1), 0.75), (date(2027, 1, 4), 0.25)],
        )
        for i in range(learners)
    ]
    instance = _base(sessions, people)
    _fix_some(rng, instance, 0.1)
    return instance


def national(seed: int = 2, learners: int = 2827, employers: int = 190) -> dict[str, Any]:
    """Return the national picture: regional dates (``group``) plus national virtual ones."""
    rng = random.Random(seed)
    employer_region = {
        f"employer-{e + 1}": rng.choices(REGIONS, REGION_WEIGHTS)[0] for e in range(employers)
    }
    per_region = {r: 0 for r in REGIONS}
    employer_of = [rng.choice(list(employer_region)) for _ in range(learners)]
    for e in employer_of:
        per_region[employer_region[e]] += 1
    sessions: list[dict[str, Any]] = []
    by_course: dict[str, list[dict[str, Any]]] = {}
    for c in COURSES:
        share = 0.4 if c[3] else 1.0
        for r in REGIONS:
            demand = per_region[r] * share
            dates = 2 if demand < 200 else 3
            for k in range(dates):
                lo = YEAR_START + timedelta(days=20 + 330 * k // dates)
                day = _weekday(rng, lo, lo + timedelta(days=330 // dates - 20))
                cap = max(8, round(demand * rng.uniform(0.85, 1.05) / (dates + 0.5)))
                s = _session(rng, f"{c[0]}-{r}-{k + 1}", c, day, cap)
                s["group"] = r
                sessions.append(s)
                by_course.setdefault(c[0], []).append(s)
        for k in range(2):
            day = _weekday(
                rng,
                YEAR_START + timedelta(days=60 + 150 * k),
                YEAR_START + timedelta(150 * k + 200),
            )
            s = _session(rng, f"{c[0]}-online-{k + 1}", c, day, 60)
            sessions.append(s)
            by_course.setdefault(c[0], []).append(s)
    people = [
        _learner(
            rng,
            f"n{i + 1}",
            employer_of[i],
            by_course,
            part_time=0.2,
            starts=[(date(2026, 9, 1), 0.7), (date(2027, 1, 4), 0.2), (date(2026, 4, 1), 0.1)],
            groups=[employer_region[employer_of[i]]],
        )
        for i in range(learners)
    ]
    instance = _base(sessions, people)
    _fix_some(rng, instance, 0.1)
    return instance


def stress(seed: int = 3, learners: int = 6000) -> dict[str, Any]:
    """Return a large instance whose dates crowd into two terms, so caps bind."""
    rng = random.Random(seed)
    terms = [(date(2026, 10, 5), date(2026, 11, 27)), (date(2027, 2, 1), date(2027, 3, 26))]
    sessions: list[dict[str, Any]] = []
    by_course: dict[str, list[dict[str, Any]]] = {}
    for c in COURSES:
        demand = learners * (0.4 if c[3] else 1.0)
        dates = 8
        for k in range(dates):
            first, last = terms[k % 2]
            day = _weekday(rng, first, last)
            cap = round(demand * rng.uniform(0.9, 1.1) / dates)
            s = _session(rng, f"{c[0]}-{k + 1}", c, day, cap)
            sessions.append(s)
            by_course.setdefault(c[0], []).append(s)
    people = [
        _learner(
            rng,
            f"n{i + 1}",
            f"employer-{rng.randrange(190) + 1}",
            by_course,
            part_time=0.45,
            starts=[(date(2026, 9, 1), 1.0)],
        )
        for i in range(learners)
    ]
    instance = _base(sessions, people)
    _fix_some(rng, instance, 0.05)
    return instance


def _dated(
    rng: random.Random,
    sid: str,
    course: tuple[str, str, float, bool],
    day: date,
    cap: int,
    popularity: dict[str, float],
) -> dict[str, Any]:
    s = _session(rng, sid, course, day, cap)
    # Some dates suit more people (not a school holiday, not a Monday): they fill first.
    popularity[sid] = rng.lognormvariate(0, 0.8)
    return s


def regional(seed: int = 11, per_region: tuple[int, int] = (160, 530)) -> dict[str, Any]:
    """Return nine regions with no shared dates, two programme years and staggered starts."""
    rng = random.Random(seed)
    first, span = date(2026, 9, 1), 730
    people_in = {r: rng.randint(*per_region) for r in REGIONS}
    sessions: list[dict[str, Any]] = []
    by_course: dict[str, list[dict[str, Any]]] = {}
    popularity: dict[str, float] = {}
    for r in REGIONS:
        for c in COURSES:
            dates = rng.randint(26, 34)
            # Each learner's year sees about half the dates; sized so places run a
            # little short of demand on some courses and spare on others.
            demand = people_in[r] * (0.4 if c[3] else 1.0)
            for k in range(dates):
                lo = first + timedelta(days=span * k // dates)
                day = _weekday(rng, lo, lo + timedelta(days=max(1, span // dates - 3)))
                cap = max(4, round(demand * rng.uniform(0.75, 1.25) / dates * 1.6))
                s = _dated(rng, f"{c[0]}-{r}-{k + 1}", c, day, cap, popularity)
                s["group"] = r
                sessions.append(s)
                by_course.setdefault(c[0], []).append(s)
    people: list[dict[str, Any]] = []
    for r in REGIONS:
        for _ in range(people_in[r]):
            people.append(
                _learner(
                    rng,
                    f"n{len(people) + 1}",
                    f"employer-{r}-{rng.randrange(20) + 1}",
                    by_course,
                    part_time=1 / 3,
                    starts=[(first, 1.0)],
                    groups=[r],
                    spread_days=548,
                    pro_rata=True,
                    popularity=popularity,
                    listing=0.8,
                    listed=(1, 2, 3),
                )
            )
    rng.shuffle(people)  # enrolment order mixes regions
    instance = _base(sessions, people)
    _fix_some(rng, instance, 0.05)
    return instance


def tight(seed: int = 21, learners: int = 800) -> dict[str, Any]:
    """Return one crowded year: places barely above demand, protected time binding."""
    rng = random.Random(seed)
    first, last = date(2026, 10, 1), date(2027, 4, 30)
    sessions: list[dict[str, Any]] = []
    by_course: dict[str, list[dict[str, Any]]] = {}
    popularity: dict[str, float] = {}
    for c in COURSES:
        dates = 6
        demand = learners * (0.4 if c[3] else 1.0)
        total = math.ceil(demand * rng.uniform(1.02, 1.04))
        weights = [rng.uniform(0.8, 1.2) for _ in range(dates)]
        caps = [math.floor(total * w / sum(weights)) for w in weights]
        caps[0] += total - sum(caps)
        for k in range(dates):
            lo = first + timedelta(days=(last - first).days * k // dates)
            day = _weekday(rng, lo, lo + timedelta(days=(last - first).days // dates - 2))
            s = _dated(rng, f"{c[0]}-{k + 1}", c, day, caps[k], popularity)
            sessions.append(s)
            by_course.setdefault(c[0], []).append(s)
    people = [
        _learner(
            rng,
            f"n{i + 1}",
            f"employer-{rng.randrange(30) + 1}",
            by_course,
            part_time=0.4,
            starts=[(date(2026, 9, 1), 1.0)],
            popularity=popularity,
            listing=0.7,
            listed=(1, 2),
        )
        for i in range(learners)
    ]
    instance = _base(sessions, people)
    _fix_some(rng, instance, 0.05)
    return instance


def online(seed: int = 31, learners: int = 2800) -> dict[str, Any]:
    """Return one national pool of online dates open to everyone: one part, no split."""
    rng = random.Random(seed)
    first, months = date(2026, 9, 1), 14
    sessions: list[dict[str, Any]] = []
    by_course: dict[str, list[dict[str, Any]]] = {}
    popularity: dict[str, float] = {}
    for c in COURSES:
        dates = 14
        demand = learners * (0.4 if c[3] else 1.0)
        for k in range(dates):
            lo = first + timedelta(days=30 * months * k // dates)
            day = _weekday(rng, lo, lo + timedelta(days=30 * months // dates - 3))
            cap = round(demand * rng.uniform(0.8, 1.2) / dates * 1.25)
            sessions.append(_dated(rng, f"{c[0]}-{k + 1}", c, day, cap, popularity))
            by_course.setdefault(c[0], []).append(sessions[-1])
    people = [
        _learner(
            rng,
            f"n{i + 1}",
            f"employer-{rng.randrange(190) + 1}",
            by_course,
            part_time=0.25,
            starts=[(date(2026, 9, 1), 0.7), (date(2027, 1, 4), 0.2), (date(2026, 4, 1), 0.1)],
            popularity=popularity,
            listing=0.6,
            listed=(1, 2),
        )
        for i in range(learners)
    ]
    instance = _base(sessions, people)
    _fix_some(rng, instance, 0.05)
    return instance


KINDS = {
    "host": host,
    "national": national,
    "stress": stress,
    "regional": regional,
    "tight": tight,
    "online": online,
}


def main(argv: list[str] | None = None) -> int:
    """Write one generated instance as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=sorted(KINDS))
    parser.add_argument("--seed", type=int, help="random seed (default: per kind)")
    parser.add_argument("--out", type=Path, help="file to write (default: stdout)")
    args = parser.parse_args(argv)
    build = KINDS[args.kind]
    instance = build() if args.seed is None else build(seed=args.seed)
    text = json.dumps(instance, indent=1) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
