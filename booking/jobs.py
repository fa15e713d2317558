"""Periodic jobs: a registry of named jobs with an interval, and a record of each one's last run.

The registry knows nothing of what drives it. Today the worker thread of ``make run`` and
``flask worker`` call :func:`run_due_jobs` every round, a coordinator presses "Run now",
and cron users may call ``flask jobs run NAME``; a job queue can call :func:`run_job` later.
Packages that plug in (invoicing) register their jobs from their ``init_app``, so booking
never imports them.

Two workers never run one job at once: a run first claims the job's ``job_run`` row with a
guarded ``UPDATE ... WHERE claimed_until IS NULL OR claimed_until < now`` and goes ahead
only if that changed one row. A claim lapses after ``CLAIM`` so a worker that died frees it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Flask, current_app
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from . import attendance, bookings, notifications
from .extensions import db
from .models import JobRun, utcnow

log = logging.getLogger(__name__)

EXTENSION = "periodic_jobs"
# Longer than any job takes; a claim older than this belongs to a worker that died.
CLAIM = timedelta(minutes=30)


@dataclass(frozen=True)
class PeriodicJob:
    """A job run every ``every``: ``run`` does the work, commits it and returns a summary."""

    name: str
    title: str
    every: timedelta
    run: Callable[[], str]

    @property
    def schedule(self) -> str:
        minutes = int(self.every.total_seconds() // 60)
        if minutes % (24 * 60) == 0:
            days = minutes // (24 * 60)
            return "every day" if days == 1 else f"every {days} days"
        if minutes % 60 == 0:
            hours = minutes // 60
            return "every hour" if hours == 1 else f"every {hours} hours"
        return f"every {minutes} minutes"


@dataclass(frozen=True)
class JobOutcome:
    """What one run of a job did."""

    name: str
    ok: bool
    result: str
    error: str


def register_job(
    app: Flask, name: str, *, title: str, every: timedelta, run: Callable[[], str]
) -> None:
    """Add a periodic job to the app's registry (registering a name again replaces it)."""
    if every <= timedelta(0):
        raise ValueError("a periodic job needs a positive interval")
    app.extensions.setdefault(EXTENSION, {})[name] = PeriodicJob(name, title, every, run)


def registered_jobs() -> list[PeriodicJob]:
    """Return the current app's periodic jobs in the order they were registered."""
    return list(current_app.extensions.get(EXTENSION, {}).values())


def find_job(name: str) -> PeriodicJob | None:
    """Return the registered job called ``name``."""
    found: PeriodicJob | None = current_app.extensions.get(EXTENSION, {}).get(name)
    return found


def worker_name() -> str:
    """Return a label for this process and thread, kept with the claims it makes."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"[:120]


def _ensure_row(name: str) -> None:
    if db.session.get(JobRun, name) is not None:
        return
    try:
        with db.session.begin_nested():  # another worker may add it at the same moment
            db.session.add(JobRun(name=name))
    except IntegrityError:
        pass
    db.session.commit()


def _claim(job: PeriodicJob, *, worker: str, trigger: str, now: datetime, force: bool) -> bool:
    _ensure_row(job.name)
    guards = [
        JobRun.name == job.name,
        or_(JobRun.claimed_until.is_(None), JobRun.claimed_until < now),
    ]
    if not force:
        guards.append(or_(JobRun.next_due_at.is_(None), JobRun.next_due_at <= now))
    result = db.session.execute(
        update(JobRun)
        .where(*guards)
        .values(
            claimed_until=now + CLAIM,
            claimed_by=worker,
            last_started_at=now,
            last_trigger=trigger,
        )
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def _finish(job: PeriodicJob, *, worker: str, started: datetime, ok: bool, text: str) -> None:
    row = db.session.get(JobRun, job.name)
    assert row is not None
    db.session.refresh(row)
    if row.claimed_by != worker:
        return  # our claim lapsed and another worker took the job; its record wins
    row.claimed_until = None
    row.last_finished_at = utcnow()
    row.last_ok = ok
    row.runs += 1
    row.next_due_at = started + job.every
    if ok:
        row.last_result, row.last_error = text[:1000], ""
    else:
        row.last_error = text[:1000]
        row.failures += 1
    db.session.commit()


def run_job(
    name: str,
    *,
    worker: str | None = None,
    trigger: str = "schedule",
    force: bool = False,
    now: datetime | None = None,
) -> JobOutcome | None:
    """Claim and run one job; return what it did, or None if it is not due or running elsewhere.

    ``force`` runs it even if it is not due yet (a coordinator's "Run now"), but never
    while another worker holds it.
    """
    job = find_job(name)
    if job is None:
        raise KeyError(name)
    worker = worker or worker_name()
    started = now or utcnow()
    if not _claim(job, worker=worker, trigger=trigger, now=started, force=force):
        return None
    try:
        result = job.run()
    except Exception as error:  # a failing job is recorded and tried again next time
        db.session.rollback()
        log.exception("periodic job %s failed", name)
        text = f"{type(error).__name__}: {error}"
        _finish(job, worker=worker, started=started, ok=False, text=text)
        return JobOutcome(name, False, "", text)
    _finish(job, worker=worker, started=started, ok=True, text=result)
    return JobOutcome(name, True, result, "")


def run_due_jobs(*, worker: str | None = None, now: datetime | None = None) -> list[JobOutcome]:
    """Run every registered job that is due and not claimed by another worker."""
    outcomes = []
    for job in registered_jobs():
        outcome = run_job(job.name, worker=worker, now=now)
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


@dataclass(frozen=True)
class JobState:
    """A registered job and its last run, for the coordinator's page."""

    job: PeriodicJob
    run: JobRun | None

    @property
    def running(self) -> bool:
        return (
            self.run is not None
            and self.run.claimed_until is not None
            and self.run.claimed_until > utcnow()
        )


def job_states() -> list[JobState]:
    """Return each registered job with its recorded last run."""
    runs = {r.name: r for r in db.session.scalars(select(JobRun))}
    return [JobState(job, runs.get(job.name)) for job in registered_jobs()]


def _expire_offers() -> str:
    return f"{bookings.expire_offers()} waiting-list offer(s) expired and passed on."


def _queue_reminders() -> str:
    return f"{notifications.queue_reminders()} joining-details and reminder message(s) queued."


def _attendance_alerts() -> str:
    return f"{attendance.send_status_alerts()} attendance alert(s) queued."


def init_app(app: Flask) -> None:
    """Register the booking service's own periodic jobs (see docs/jobs.md for the schedule)."""
    register_job(
        app,
        "expire_offers",
        title="Pass on expired waiting-list offers",
        every=timedelta(minutes=15),
        run=_expire_offers,
    )
    register_job(
        app,
        "session_reminders",
        title="Queue joining details and day-before reminders",
        every=timedelta(minutes=15),
        run=_queue_reminders,
    )
    register_job(
        app,
        "attendance_alerts",
        title="Mail attendance alerts when an NQSW's status worsens",
        every=timedelta(hours=1),
        run=_attendance_alerts,
    )
