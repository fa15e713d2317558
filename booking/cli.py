"""Flask commands: thin wrappers over the services."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import select
from tqdm import tqdm

from . import (
    accounts,
    allocation,
    attendance,
    bookings,
    catalogue,
    demo,
    enrolment,
    invariants,
    jobs,
    notifications,
    worker,
)
from .errors import BookingError, ImportRejected
from .extensions import db
from .models import AttendanceStatus, Employer, Programme, ProposalStatus, Role

bookings_cli = AppGroup("bookings", help="Waiting lists and bookings.")
import_cli = AppGroup("import", help="Import records from files.")
users_cli = AppGroup("users", help="Accounts.")
mail_cli = AppGroup("mail", help="The outbox: send, remind and (under its old name) the worker.")
attendance_cli = AppGroup("attendance", help="Attendance reports and alerts.")
jobs_cli = AppGroup("jobs", help="The periodic jobs the worker runs.")


@click.command("seed-demo")
@click.option("--force", is_flag=True, help="Add the demo even if a programme exists.")
def seed_demo_command(force: bool) -> None:
    """Load the demo programme, employers and people (skipped if data exists)."""
    if not force and db.session.scalar(select(Programme.id).limit(1)) is not None:
        click.echo("Data already present; demo not loaded.")
        return
    summary = demo.seed()
    click.echo(summary)


@bookings_cli.command("expire-offers")
def expire_offers_command() -> None:
    """Pass expired waiting-list offers to the next person waiting."""
    click.echo(f"{bookings.expire_offers()} offer(s) expired.")


@import_cli.command("nqsws")
@click.argument("employer_id", type=int)
@click.argument("csv_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--programme", "programme_slug", required=True, help="Programme short name.")
def import_nqsws_command(employer_id: int, csv_file: Path, programme_slug: str) -> None:
    """Enrol NQSWs from a CSV file: all rows or none."""
    employer = db.session.get(Employer, employer_id)
    programme = db.session.scalar(select(Programme).where(Programme.slug == programme_slug))
    if employer is None or programme is None:
        click.echo("No such employer or programme.", err=True)
        sys.exit(1)

    def bar(rows):  # type: ignore[no-untyped-def]
        return tqdm(rows, desc="Checking rows", unit="row", file=sys.stderr)

    try:
        added = enrolment.import_csv(employer, programme, csv_file.read_bytes(), progress=bar)
    except ImportRejected as error:
        for line, reason in error.problems:
            click.echo(f"{csv_file}:{line}: {reason}", err=True)
        click.echo(f"Nothing imported: {len(error.problems)} bad row(s).", err=True)
        sys.exit(1)
    click.echo(f"Enrolled {len(added)} NQSW(s).")


@users_cli.command("add-coordinator")
@click.argument("email")
@click.argument("name")
def add_coordinator_command(email: str, name: str) -> None:
    """Create a coordinator account (they sign in by emailed link)."""
    try:
        accounts.create_user(email, name, Role.COORDINATOR)
    except BookingError as error:
        click.echo(error.message, err=True)
        sys.exit(1)
    db.session.commit()
    click.echo(f"Coordinator {email} created.")


@mail_cli.command("send")
@click.option("--limit", default=500, show_default=True, help="Most messages to send.")
def mail_send_command(limit: int) -> None:
    """Deliver due outbox messages, retrying failures with back-off."""
    if not current_app.config.get("MAIL_DELIVER"):
        click.echo("MAIL_DELIVER is off: messages stay in the outbox.", err=True)
        sys.exit(1)
    report = notifications.send_due(limit=limit)
    click.echo(f"Sent {report.sent}, failed {report.failed} (will retry), dead {report.dead}.")
    if report.failed or report.dead:
        sys.exit(2)


@mail_cli.command("remind")
def mail_remind_command() -> None:
    """Queue joining details and day-before reminders (each is sent once; run it nightly)."""
    click.echo(f"Queued {notifications.queue_reminders()} reminder message(s).")


def _run_worker(interval: float) -> None:
    stop = threading.Event()
    try:
        worker.run_worker(current_app._get_current_object(), stop, interval=interval)  # type: ignore[attr-defined]
    except KeyboardInterrupt:
        stop.set()


_interval = click.option(
    "--interval", default=30.0, show_default=True, help="Seconds between rounds."
)


@click.command("worker")
@_interval
def worker_command(interval: float) -> None:
    """Run every periodic job when it is due and send due mail, until interrupted."""
    _run_worker(interval)


@mail_cli.command("worker")
@_interval
def mail_worker_command(interval: float) -> None:
    """The same as `flask worker` (its earlier name)."""
    _run_worker(interval)


@jobs_cli.command("list")
def jobs_list_command() -> None:
    """List the periodic jobs, their schedule and their last run."""
    for state in jobs.job_states():
        run = state.run
        last = "never run"
        if run is not None and run.last_started_at is not None:
            outcome = "ok" if run.last_ok else ("failed" if run.last_ok is False else "running")
            last = f"last {run.last_started_at:%Y-%m-%d %H:%M} UTC, {outcome}"
        click.echo(f"{state.job.name:<20} {state.job.schedule:<18} {last}")


@jobs_cli.command("run")
@click.argument("name")
def jobs_run_command(name: str) -> None:
    """Run one periodic job now (unless another worker is running it)."""
    if jobs.find_job(name) is None:
        known = ", ".join(j.name for j in jobs.registered_jobs())
        click.echo(f"No periodic job called {name!r}. Jobs: {known}.", err=True)
        sys.exit(1)
    outcome = jobs.run_job(name, trigger="cli", force=True)
    if outcome is None:
        click.echo(f"{name} is running in another worker; not run again.", err=True)
        sys.exit(1)
    if not outcome.ok:
        click.echo(f"{name} failed: {outcome.error}", err=True)
        sys.exit(2)
    click.echo(outcome.result)


@attendance_cli.command("report")
@click.option("--programme", "programme_slug", help="Programme short name (default: current).")
@click.option("--employer", "employer_id", type=int, help="Only this employer's NQSWs.")
@click.option(
    "--status",
    type=click.Choice([s.value for s in AttendanceStatus]),
    help="Only NQSWs with this status.",
)
@click.option("--course", "course_code", help="Only NQSWs expected on this course.")
@click.option(
    "--sort", type=click.Choice(sorted(attendance.SORT_KEYS)), default="name", show_default=True
)
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV instead of a table.")
def attendance_report_command(
    programme_slug: str | None,
    employer_id: int | None,
    status: str | None,
    course_code: str | None,
    sort: str,
    as_csv: bool,
) -> None:
    """Print each NQSW's attendance rate, best reachable rate and status."""
    programme = (
        catalogue.programme_by_slug(programme_slug, published_only=False)
        if programme_slug
        else catalogue.current_programme()
    )
    if programme is None:
        click.echo("No such programme.", err=True)
        sys.exit(1)
    employer = db.session.get(Employer, employer_id) if employer_id else None
    course = catalogue.course_by_code(programme, course_code) if course_code else None
    if (employer_id and employer is None) or (course_code and course is None):
        click.echo("No such employer or course.", err=True)
        sys.exit(1)
    items = attendance.programme_attendance(
        programme,
        employer=employer,
        status=AttendanceStatus(status) if status else None,
        course=course,
        sort=sort,
    )
    if as_csv:
        click.echo(attendance.rates_csv(items), nl=False)
        return
    click.echo(attendance.report_table(programme, items))


@attendance_cli.command("alerts")
def attendance_alerts_command() -> None:
    """Queue mail for NQSWs whose attendance status worsened since the last run."""
    click.echo(f"{attendance.send_status_alerts()} attendance alert(s) queued.")


@click.command("allocate")
@click.argument("programme_slug")
@click.option("--time-limit", default=30, show_default=True, help="Solver seconds (1-600).")
@click.option("--allow-moves", is_flag=True, help="Let existing bookings move to another date.")
@click.option(
    "--include-optional",
    is_flag=True,
    help="Place optional workshops too, for the NQSWs who asked for them.",
)
@click.option("--commit", "commit_it", is_flag=True, help="Commit the proposal (books places).")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the result JSON here."
)
def allocate_command(
    programme_slug: str,
    time_limit: int,
    allow_moves: bool,
    include_optional: bool,
    commit_it: bool,
    out: Path | None,
) -> None:
    """Allocate NQSWs to sessions for a programme year; print the result beside greedy's."""
    programme = db.session.scalar(select(Programme).where(Programme.slug == programme_slug))
    if programme is None:
        click.echo(f"No programme with the short name {programme_slug!r}.", err=True)
        sys.exit(1)
    try:
        proposal = allocation.create_proposal(
            programme,
            by=None,
            time_limit=time_limit,
            allow_moves=allow_moves,
            include_optional=include_optional,
        )
    except BookingError as error:
        click.echo(error.message, err=True)
        sys.exit(1)
    click.echo(f"Proposal {proposal.id}: solving for up to {time_limit} s ...", err=True)

    def echo(progress: allocation.Progress) -> None:
        click.echo(
            f"  {progress.seconds:6.1f}s  {progress.phase:<11} "
            f"best {progress.objective:g}  bound {progress.bound:g}",
            err=True,
        )

    proposal = allocation.run_proposal(proposal, echo=echo)
    if proposal.status is not ProposalStatus.READY:
        click.echo(f"Proposal {proposal.id} failed: {proposal.error}", err=True)
        sys.exit(1)
    review = allocation.review_proposal(proposal)
    rows = [("", "solver", "greedy")]
    for label, attr in (
        ("placed", "placed"),
        ("unplaced", "unplaced"),
        ("preference cost", "preference_cost"),
        ("bound (placed)", "bound_placed"),
        ("bound (cost)", "bound_preference_cost"),
        ("status", "status"),
    ):
        theirs = getattr(review.baseline, attr) if review.baseline else "-"
        rows.append((label, str(getattr(review.result, attr)), str(theirs)))
    for label, mine, theirs in rows:
        click.echo(f"{label:<16} {mine:>10} {theirs:>10}")
    click.echo(
        f"{len(review.new)} new booking(s), {len(review.moves)} move(s), "
        f"{len(review.unplaced)} unplaced."
    )
    if out is not None:
        out.write_text(proposal.result_json or "")
        click.echo(f"Result written to {out}.")
    if commit_it:
        try:
            report = allocation.commit_proposal(proposal, None)
        except BookingError as error:
            click.echo(error.message, err=True)
            sys.exit(1)
        click.echo(
            f"Committed proposal {proposal.id}: {report.booked} booked, {report.moved} moved, "
            f"{len(report.failed)} refused."
        )
        for failure in report.failed:
            click.echo(f"  refused {failure['learner']} {failure['course']}: {failure['reason']}")
    else:
        click.echo(
            "Not committed. Review it at "
            f"/coordinator/programmes/{programme.id}/allocation/{proposal.id}."
        )


@click.command("check")
def check_command() -> None:
    """Check the service's invariants; list what is broken and exit 1, or say all is well."""
    problems = invariants.run_checks()
    for problem in problems:
        click.echo(str(problem), err=True)
    if problems:
        click.echo(f"{len(problems)} problem(s) found.", err=True)
        sys.exit(1)
    click.echo(f"All {len(invariants.CHECKS)} invariant(s) hold.")


def register_commands(app: Flask) -> None:
    """Attach the commands to ``flask``."""
    app.cli.add_command(seed_demo_command)
    app.cli.add_command(bookings_cli)
    app.cli.add_command(import_cli)
    app.cli.add_command(users_cli)
    app.cli.add_command(mail_cli)
    app.cli.add_command(attendance_cli)
    app.cli.add_command(allocate_command)
    app.cli.add_command(check_command)
    app.cli.add_command(worker_command)
    app.cli.add_command(jobs_cli)
