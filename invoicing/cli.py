"""``flask invoicing ...``: thin wrappers over the invoicing services."""

from __future__ import annotations

import sys
from datetime import datetime

import click
from flask.cli import AppGroup
from sqlalchemy import select

from booking.extensions import db
from booking.models import Programme

from . import reports, services, stripe_sync

invoicing_cli = AppGroup("invoicing", help="Invoices, reminders and Stripe.")


@invoicing_cli.command("run")
@click.option("--programme", "slug", default=None, help="Programme short name (default: all).")
@click.option("--dry-run", is_flag=True, help="Say what would be invoiced; issue nothing.")
def run_command(slug: str | None, dry_run: bool) -> None:
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
        if dry_run:
            _print_preview(programme)
            continue
        report = services.run_billing(programme)
        click.echo(f"{programme.slug}: {report.summary()}")
        failed = failed or bool(report.skipped or report.stripe_errors)
    if failed:
        sys.exit(1)


def _print_preview(programme: Programme) -> None:
    preview = services.preview_billing(programme)
    click.echo(
        f"{programme.slug}: would issue {len(preview.to_issue)} invoice(s), "
        f"{services.format_pence(preview.total_pence)} in all"
    )
    for row in preview.to_issue:
        names = ", ".join(name for _, name in row.nqsws)
        click.echo(f"  {row.employer_name}: {services.format_pence(row.total_pence)} for {names}")
    for row in preview.skipped:
        click.echo(f"  skipped: {row.skipped_because}")
    for credit in preview.credits:
        click.echo(f"  credit {credit.invoice_number}: {', '.join(credit.nqsw_names)}")


@invoicing_cli.command("remind")
def remind_command() -> None:
    """Email reminders for overdue invoices (at most once per interval each)."""
    click.echo(f"{services.send_reminders()} reminder(s) queued.")


@invoicing_cli.command("sync")
def sync_command() -> None:
    """Retry sending to Stripe whatever a failed call left unfinished."""
    report = stripe_sync.sync_stripe()
    click.echo(
        f"{report.synced} invoice(s) brought up to date with Stripe, {report.failed} failed."
    )
    if report.failed:
        sys.exit(1)


@invoicing_cli.command("finance-export")
@click.option("--from", "start", type=click.DateTime(["%Y-%m-%d"]), default=None)
@click.option("--to", "end", type=click.DateTime(["%Y-%m-%d"]), default=None)
def finance_export_command(start: datetime | None, end: datetime | None) -> None:
    """Print the reconciliation per employer and in total, as CSV."""
    first = start.date() if start else None
    last = end.date() if end else None
    if first and last and first > last:
        click.echo("--to must be on or after --from.", err=True)
        sys.exit(2)
    click.echo(reports.finance_report(first, last).csv(), nl=False)
