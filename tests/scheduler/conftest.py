"""Builders for small allocation instances, written as the JSON the CLI reads."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from scheduler.problem import Problem, load_problem

LONDON = ZoneInfo("Europe/London")
UTC = ZoneInfo("UTC")


def _utc(day: str, hhmm: str) -> str:
    local = datetime.fromisoformat(f"{day}T{hhmm}:00").replace(tzinfo=LONDON)
    return local.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Build:
    """Terse constructors for instance JSON; times are London wall-clock."""

    @staticmethod
    def session(
        sid: str,
        course: str,
        day: str = "2027-01-12",
        start: str = "09:30",
        end: str = "16:30",
        capacity: int = 30,
        group: str | None = None,
    ) -> dict[str, Any]:
        s: dict[str, Any] = {
            "id": sid,
            "course": course,
            "start": _utc(day, start),
            "end": _utc(day, end),
            "capacity": capacity,
        }
        if group is not None:
            s["group"] = group
        return s

    @staticmethod
    def learner(lid: str, needs: list[str], **extra: Any) -> dict[str, Any]:
        lr: dict[str, Any] = {
            "id": lid,
            "employer": "trust-a",
            "start": "2026-09-01",
            "end": "2027-08-31",
            "fte": 1.0,
            "needs": needs,
        }
        lr.update(extra)
        return lr

    @staticmethod
    def instance(
        courses: dict[str, float],
        sessions: list[dict[str, Any]],
        learners: list[dict[str, Any]],
        **rules: Any,
    ) -> dict[str, Any]:
        return {
            "format": "asye-allocation/1",
            "rules": {"protected_days_per_week": 0.5, "window_weeks": 4, "training_share": 1.0}
            | rules,
            "courses": [{"id": c, "title": c.upper(), "days": d} for c, d in courses.items()],
            "sessions": sessions,
            "learners": learners,
        }

    @staticmethod
    def problem(*args: Any, **kwargs: Any) -> Problem:
        return load_problem(Build.instance(*args, **kwargs))


@pytest.fixture
def build() -> type[Build]:
    """Return the instance builders."""
    return Build
