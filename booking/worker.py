"""The background worker: runs the periodic jobs that are due and sends the outbox.

The deployed service runs it as a daemon thread started by ``create_app`` when
``MAIL_WORKER`` is on (``make run`` turns it on); ``flask worker`` (or its old name
``flask mail worker``) runs the same loop in the foreground for deployments that prefer
a separate process. Several workers at once are safe: each job run and each outbox
message is claimed before it is done (see ``booking/jobs.py`` and docs/jobs.md).
"""

from __future__ import annotations

import logging
import threading

from flask import Flask

from . import jobs, notifications
from .extensions import db

log = logging.getLogger(__name__)


def run_round(worker: str) -> None:
    """Run the jobs that are due, then deliver due mail."""
    jobs.run_due_jobs(worker=worker)
    notifications.send_due()


def run_worker(app: Flask, stop: threading.Event, *, interval: float) -> None:
    """Run a round every ``interval`` seconds until stopped."""
    worker = jobs.worker_name()
    while not stop.is_set():
        with app.app_context():
            try:
                run_round(worker)
            except Exception:  # the loop must outlive a database or SMTP hiccup
                db.session.rollback()
                log.exception("worker round failed; trying again later")
            finally:
                db.session.remove()
        stop.wait(interval)


def start_worker(app: Flask) -> tuple[threading.Event, threading.Thread]:
    """Start the worker in a daemon thread; set the returned event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(
        target=run_worker,
        args=(app, stop),
        kwargs={"interval": float(app.config["MAIL_WORKER_INTERVAL"])},
        name="worker",
        daemon=True,
    )
    thread.start()
    return stop, thread
