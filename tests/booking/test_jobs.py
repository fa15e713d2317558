"""Issue 14 item 7: the worker runs every periodic job on its schedule; coordinators see it.

The registry, its claims (two workers never run one job at once), the record of each
job's last run, the coordinator's page with "Run now", and the commands.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from booking import demo, jobs, worker
from booking.audit.models import AuditEvent
from booking.extensions import db
from booking.models import JobRun, OutboxMessage, utcnow

from ..conftest import sign_in

BUILT_IN = ["expire_offers", "session_reminders", "attendance_alerts", "invoice_reminders"]


def test_every_periodic_job_is_registered(app):
    assert [j.name for j in jobs.registered_jobs()] == BUILT_IN
    schedules = {j.name: j.schedule for j in jobs.registered_jobs()}
    assert schedules == {
        "expire_offers": "every 15 minutes",
        "session_reminders": "every 15 minutes",
        "attendance_alerts": "every hour",
        "invoice_reminders": "every day",
    }


def test_the_worker_round_sends_the_demos_attendance_alerts(client, app, coordinator):
    demo.seed()
    sign_in(client, coordinator)
    assert "Alerts, newest first" in client.get("/attendance/alerts").text
    assert (
        db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "attendance_status_changed")
        ).all()
        == []
    )

    worker.run_round("test-worker")

    alerts = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "attendance_status_changed")
    ).all()
    subjects = sorted(m.subject for m in alerts)
    assert subjects == [
        "ASYE attendance for Ben Clarke: at risk",
        "ASYE attendance for Chloe Nguyen: at risk",
    ]
    page = client.get("/attendance/alerts").text
    assert "Ben Clarke" in page and "Chloe Nguyen" in page
    assert "it last checked at" in page
    runs = {r.name: r for r in db.session.scalars(select(JobRun))}
    assert set(runs) == set(BUILT_IN)
    assert all(r.last_ok and r.claimed_until is None for r in runs.values())
    assert runs["attendance_alerts"].last_result == "2 attendance alert(s) queued."


def test_jobs_run_when_due_and_not_before(app):
    start = utcnow()
    first = jobs.run_due_jobs(worker="w", now=start)
    assert [o.name for o in first] == BUILT_IN

    assert jobs.run_due_jobs(worker="w", now=start + timedelta(minutes=14)) == []
    later = jobs.run_due_jobs(worker="w", now=start + timedelta(minutes=16))
    assert [o.name for o in later] == ["expire_offers", "session_reminders"]
    hour = jobs.run_due_jobs(worker="w", now=start + timedelta(minutes=61))
    assert [o.name for o in hour] == ["expire_offers", "session_reminders", "attendance_alerts"]
    assert db.session.get(JobRun, "invoice_reminders").runs == 1


def test_a_failing_job_is_recorded_and_the_others_still_run(app):
    def broken() -> str:
        raise RuntimeError("database said no")

    jobs.register_job(app, "broken", title="Always fails", every=timedelta(minutes=5), run=broken)

    outcomes = {o.name: o for o in jobs.run_due_jobs(worker="w")}

    assert outcomes["broken"].ok is False
    assert outcomes["broken"].error == "RuntimeError: database said no"
    assert all(o.ok for name, o in outcomes.items() if name != "broken")
    row = db.session.get(JobRun, "broken")
    assert (row.last_ok, row.failures, row.runs) == (False, 1, 1)
    assert row.last_error == "RuntimeError: database said no"
    assert row.claimed_until is None and row.next_due_at is not None


def test_two_workers_never_run_one_job_at_once(app):
    inside = threading.Event()
    release = threading.Event()
    ran: list[str] = []

    def slow() -> str:
        ran.append(threading.current_thread().name)
        inside.set()
        release.wait(timeout=30)
        return "done"

    jobs.register_job(app, "slow", title="Slow", every=timedelta(hours=1), run=slow)
    results: dict[str, object] = {}

    def work(name: str) -> None:
        with app.app_context():
            results[name] = jobs.run_job("slow", worker=name, force=True)
            db.session.remove()

    first = threading.Thread(target=work, args=("first",), name="first")
    first.start()
    assert inside.wait(timeout=30)
    seconds = [threading.Thread(target=work, args=(f"second-{k}",)) for k in range(5)]
    for thread in seconds:
        thread.start()
    for thread in seconds:
        thread.join(timeout=30)
    release.set()
    first.join(timeout=30)

    assert ran == ["first"]
    assert results["first"].ok
    assert all(results[f"second-{k}"] is None for k in range(5))
    row = db.session.get(JobRun, "slow")
    db.session.refresh(row)
    assert (row.runs, row.claimed_until, row.claimed_by) == (1, None, "first")


def test_a_lapsed_claim_is_taken_over(app):
    jobs.register_job(app, "quick", title="Quick", every=timedelta(hours=1), run=lambda: "ok")
    jobs.run_job("quick", worker="w")
    row = db.session.get(JobRun, "quick")
    row.claimed_until = utcnow() - timedelta(seconds=1)  # a worker died mid-run
    row.claimed_by = "dead"
    db.session.commit()

    assert jobs.run_job("quick", worker="alive", force=True).ok


def test_coordinator_page_shows_each_job_and_runs_one_now(client, coordinator):
    sign_in(client, coordinator)

    page = client.get("/coordinator/jobs/").text
    assert page.count("Never") == 4
    for title in ("Pass on expired waiting-list offers", "Remind employers of overdue invoices"):
        assert title in page

    response = client.post("/coordinator/jobs/attendance_alerts/run", follow_redirects=True)

    assert "ran: 0 attendance alert(s) queued." in response.text
    row = db.session.get(JobRun, "attendance_alerts")
    assert row.last_ok and row.last_trigger == f"coordinator {coordinator.id}"
    [event] = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "job.run")).all()
    assert event.actor_id == coordinator.id
    assert client.post("/coordinator/jobs/no-such-job/run").status_code == 404


@pytest.mark.parametrize("role", ["nqsw", "employer_contact"])
def test_only_coordinators_see_the_jobs(client, make_user, role):
    from booking.models import Role

    sign_in(client, make_user(Role(role)))
    assert client.get("/coordinator/jobs/").status_code == 403
    assert client.post("/coordinator/jobs/expire_offers/run").status_code == 403


def test_commands(runner):
    listed = runner.invoke(args=["jobs", "list"])
    assert listed.exit_code == 0 and "attendance_alerts" in listed.output
    ran = runner.invoke(args=["jobs", "run", "expire_offers"])
    assert ran.exit_code == 0 and "offer(s) expired" in ran.output
    unknown = runner.invoke(args=["jobs", "run", "nope"])
    assert unknown.exit_code == 1 and "No periodic job called 'nope'" in unknown.output
    for command in (["worker", "--help"], ["mail", "worker", "--help"]):
        assert runner.invoke(args=command).exit_code == 0
