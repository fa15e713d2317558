"""The background mail worker: sends the outbox and runs the periodic mail jobs.

The deployed service runs it as a daemon thread started by ``create_app`` when
``MAIL_WORKER`` is on (``make run`` turns it on); ``flask mail worker`` runs the same
loop in the foreground for deployments that prefer a separate process. Several
workers at once are safe: each outbox message is claimed before it is sent, and
reminders are deduplicated.
"""

from __future__ import annotations

import logging
import threading
import time

from flask import Flask

from . import bookings, notifications
from .extensions import db

log = logging.getLogger(__name__)

# Offers expire on the hour they are due, give or take this; reminders are deduplicated.
JOBS_EVERY_SECONDS = 900


def run_jobs() -> int:
    """Expire waiting-list offers and queue reminders; return how many reminders were queued."""
    bookings.expire_offers()
    return notifications.queue_reminders()


def run_worker(app: Flask, stop: threading.Event, *, interval: float) -> None:
    """Send due mail every ``interval`` seconds and run the jobs every 15 minutes, until stopped."""
    next_jobs = 0.0
    while not stop.is_set():
        with app.app_context():
            try:
                if time.monotonic() >= next_jobs:
                    run_jobs()
                    next_jobs = time.monotonic() + JOBS_EVERY_SECONDS
                notifications.send_due()
            except Exception:  # the loop must outlive a database or SMTP hiccup
                db.session.rollback()
                log.exception("mail worker round failed; trying again later")
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
        name="mail-worker",
        daemon=True,
    )
    thread.start()
    return stop, thread
