"""``flask invoicing ...``: thin wrappers over the invoicing services."""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup
from sqlalchemy import select

from booking.extensions import db
from booking.models import Programme

from . import services

invoicing_cli = AppGroup("invoicing", help="Invoices, reminders and Stripe.")


@invoicing_cli.command("run")
@click.option("--programme", "slug", default=None, help="Programme short name (default: all).")
def run_command(slug: str | None) -> None:
    """Invoice Option 2 employers for NQSWs not yet billed, and credit early withdrawals."""
    query = select(Programme).order_by(Programme.id)
    if slug:
        query = query.where(Programme.slug == slug)
    programmes = db.session.scalars(query).all()
    if not programmes:
        click.echo("No such programme.", err=True)
        sys.exit(1)
    failed = False
    for programme in programmes:
        label = programme.slug
        report = services.run_billing(programme)
        click.echo(f"{label}: {report.summary()}")
        failed = failed or bool(report.skipped or report.stripe_errors)
    if failed:
        sys.exit(1)


@invoicing_cli.command("remind")
def remind_command() -> None:
    """Email reminders for overdue invoices (at most once per interval each)."""
    click.echo(f"{services.send_reminders()} reminder(s) queued.")


@invoicing_cli.command("sync")
def sync_command() -> None:
    """Retry sending to Stripe whatever a failed call left unfinished."""
    report = services.sync_stripe()
    click.echo(
        f"{report.synced} invoice(s) brought up to date with Stripe, {report.failed} failed."
    )
    if report.failed:
        sys.exit(1)
