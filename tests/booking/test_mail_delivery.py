"""Delivery through a real SMTP server on loopback (aiosmtpd): what arrives, and how often."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from icalendar import Calendar
from sqlalchemy import select

from booking import bookings, notifications, worker
from booking.extensions import db
from booking.models import MessageStatus, OutboxMessage, utcnow

from ..conftest import FUTURE, sign_in
from .mailserver import Inbox, SMTPServer, free_port, mime_parts, point_mail_at, running_smtp


@pytest.fixture
def smtp(app) -> Iterator[SMTPServer]:
    with running_smtp(app) as server:
        yield server


def test_booking_mails_arrive_with_both_parts_and_the_invitation(
    smtp, programme, make_course, make_session, make_nqsw
):
    course = make_course(title="Care Act")
    first, second = make_session(course), make_session(course, day=FUTURE + timedelta(days=30))
    nqsw = make_nqsw()
    booking = bookings.book_place(nqsw, first)
    moved = bookings.move_booking(booking, second)
    bookings.cancel_booking(moved)

    report = notifications.send_due()

    assert (report.sent, report.failed, report.dead) == (3, 0, 0)
    inbox = smtp.inbox.messages
    assert [m["Subject"].split(":")[0] for m in inbox] == ["Booked", "Moved", "Cancelled"]
    assert all(m["To"] == nqsw.email for m in inbox)
    methods = []
    for message in inbox:
        parts = mime_parts(message)
        assert "Care Act" in parts["text/plain"].get_content()
        assert "<html" in parts["text/html"].get_content()
        # The invitation sits beside the text and HTML, and is attached as invite.ics too.
        [alternative] = [
            p for p in message.walk() if p.get_content_type() == "multipart/alternative"
        ]
        kinds = [p.get_content_type() for p in alternative.iter_parts()]
        assert kinds == ["text/plain", "text/html", "text/calendar"]
        invite = parts["text/calendar"]
        methods.append(invite.get_param("method"))
        ical = Calendar.from_ical(invite.get_content())
        assert str(ical["METHOD"]) == invite.get_param("method")
        attached = parts["application/ics"]
        assert attached.get_filename() == "invite.ics"
        assert Calendar.from_ical(attached.get_content()) == ical
    assert methods == ["REQUEST", "REQUEST", "CANCEL"]
    sequences = [
        Calendar.from_ical(mime_parts(m)["text/calendar"].get_content()).walk("VEVENT")[0][
            "SEQUENCE"
        ]
        for m in inbox
    ]
    assert sequences == [0, 1, 2]
    statuses = db.session.scalars(select(OutboxMessage.status)).all()
    assert statuses == [MessageStatus.SENT] * 3


def test_sign_in_link_arrives(app, smtp, make_user):
    from booking import accounts

    user = make_user(email="someone@example.org")
    accounts.request_sign_in("someone@example.org")
    db.session.commit()
    notifications.send_due()
    [message] = smtp.inbox.messages
    assert message["To"] == "someone@example.org"
    assert "http://asye.test/sign-in/" in mime_parts(message)["text/plain"].get_content()
    assert user.name in mime_parts(message)["text/html"].get_content()


def _queue(count: int) -> list[int]:
    ids = []
    for n in range(count):
        message = notifications.queue_message(
            "waitlist_expired_probe",
            f"person{n}@example.org",
            f"Message {n}",
            template="sign_in_link",
            user={"name": f"Person {n}"},
            token=f"t{n}",
            minutes=30,
        )
        assert message is not None
        db.session.flush()
        ids.append(message.id)
    db.session.commit()
    return ids


def test_an_smtp_outage_loses_nothing_and_sends_each_once_after(app):
    server = SMTPServer(free_port(), Inbox())
    point_mail_at(app, server.port)  # nothing listens there yet
    ids = _queue(3)
    now = utcnow()

    down = notifications.send_due(now=now)

    assert (down.sent, down.failed) == (0, 3)
    rows = db.session.scalars(select(OutboxMessage)).all()
    assert {r.status for r in rows} == {MessageStatus.PENDING}
    assert all(r.attempts == 1 and "Error" in r.last_error for r in rows)
    # Not due again until the back-off has passed.
    assert notifications.send_due(now=now + timedelta(seconds=30)).failed == 0

    server.start()
    try:
        up = notifications.send_due(now=now + timedelta(minutes=2))
        again = notifications.send_due(now=now + timedelta(hours=1))
    finally:
        server.stop()

    assert up.sent == 3
    assert again.sent == 0
    assert sorted(server.inbox.ids()) == sorted(str(i) for i in ids)


def test_two_senders_at_once_never_send_a_message_twice(app):
    server = SMTPServer(free_port(), Inbox(delay=0.005))
    point_mail_at(app, server.port)
    ids = _queue(40)
    start = threading.Barrier(2)
    reports: list[notifications.SendReport] = []
    errors: list[BaseException] = []

    def sender() -> None:
        with app.app_context():
            try:
                start.wait()
                reports.append(notifications.send_due())
            except BaseException as error:  # surfaced below, not lost in the thread
                errors.append(error)
            finally:
                db.session.remove()

    server.start()
    try:
        threads = [threading.Thread(target=sender) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        server.stop()

    assert errors == []
    delivered = server.inbox.ids()
    assert sorted(delivered) == sorted(str(i) for i in ids)
    assert len(delivered) == len(set(delivered)) == 40
    assert sum(r.sent for r in reports) == 40
    db.session.expire_all()
    assert set(db.session.scalars(select(OutboxMessage.status)).all()) == {MessageStatus.SENT}


def test_a_message_that_keeps_failing_goes_dead_and_can_be_resent(app):
    app.config["MAIL_MAX_ATTEMPTS"] = 3
    server = SMTPServer(free_port(), Inbox())
    point_mail_at(app, server.port)
    [message_id] = _queue(1)
    now = utcnow()
    for hour in range(3):
        notifications.send_due(now=now + timedelta(hours=hour))

    message = db.session.get(OutboxMessage, message_id)
    assert message.status is MessageStatus.DEAD
    assert message.attempts == 3
    assert message.last_error.startswith("ConnectionRefusedError")

    notifications.resend(message)
    server.start()
    try:
        report = notifications.send_due()
    finally:
        server.stop()
    assert report.sent == 1
    assert server.inbox.ids() == [str(message_id)]
    assert db.session.get(OutboxMessage, message_id).status is MessageStatus.SENT


def test_backoff_grows(app):
    waits = [notifications.backoff(n) for n in range(1, 12)]
    assert waits == sorted(waits)
    assert waits[0] == timedelta(minutes=1)
    assert waits[-1] == timedelta(hours=6)


def test_reminders_are_sent_once_each(smtp, programme, make_course, make_session, make_nqsw):
    now = utcnow()
    soon = (now + timedelta(days=3)).date()
    session = make_session(
        make_course(title="Care Act"),
        day=soon,
        joining_url="https://teams.example/join/7",
        materials_url="https://files.example/care-act.pdf",
    )
    nqsw = make_nqsw()
    bookings.book_place(nqsw, session)
    day_before = session.starts_at - timedelta(hours=20)

    assert notifications.queue_reminders(now=now) == 1
    assert notifications.queue_reminders(now=now) == 0
    assert notifications.queue_reminders(now=day_before) == 1
    assert notifications.queue_reminders(now=day_before) == 0
    notifications.send_due()

    inbox = smtp.inbox.messages
    subjects = [m["Subject"] for m in inbox]
    assert subjects[0].startswith("Booked")
    assert subjects[1].startswith("Joining details: Care Act")
    assert subjects[2] == "Tomorrow: Care Act"
    assert len(inbox) == 3
    for message in inbox[1:]:
        parts = mime_parts(message)
        for kind in ("text/plain", "text/html"):
            assert "https://teams.example/join/7" in parts[kind].get_content()
            assert "https://files.example/care-act.pdf" in parts[kind].get_content()


def test_late_booking_gets_joining_details_without_a_second_reminder(
    smtp, programme, make_course, make_session, make_nqsw
):
    now = utcnow()
    session = make_session(make_course(), day=(now + timedelta(days=1)).date())
    bookings.book_place(make_nqsw(), session, now=now)
    assert notifications.queue_reminders(now=now) == 1
    assert notifications.queue_reminders(now=now) == 0
    kinds = db.session.scalars(select(OutboxMessage.kind).order_by(OutboxMessage.id)).all()
    assert kinds == ["booking_confirmed", "joining_info"]


def test_flask_mail_send_and_remind_commands(
    smtp, runner, programme, make_course, make_session, make_nqsw
):
    session = make_session(make_course(title="Care Act"), day=(utcnow() + timedelta(days=2)).date())
    bookings.book_place(make_nqsw(), session)

    remind = runner.invoke(args=["mail", "remind"])
    assert "Queued 1 reminder" in remind.output
    sent = runner.invoke(args=["mail", "send"])

    assert sent.exit_code == 0, sent.output
    assert "Sent 2" in sent.output
    assert [m["Subject"].split(":")[0] for m in smtp.inbox.messages] == [
        "Booked",
        "Joining details",
    ]
    assert runner.invoke(args=["mail", "remind"]).output.startswith("Queued 0")


def test_the_background_worker_delivers_without_being_asked(app, smtp, make_user):
    from booking import accounts

    make_user(email="worker@example.org")
    accounts.request_sign_in("worker@example.org")
    db.session.commit()
    app.config["MAIL_WORKER_INTERVAL"] = 0.05
    stop, thread = worker.start_worker(app)
    try:
        deadline = time.monotonic() + 20
        while not smtp.inbox.messages and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=20)
    assert not thread.is_alive()
    assert [m["To"] for m in smtp.inbox.messages] == ["worker@example.org"]


def test_coordinator_finds_dead_mail_and_sends_it_again_once(app, client, coordinator):
    app.config["MAIL_MAX_ATTEMPTS"] = 1
    server = SMTPServer(free_port(), Inbox())
    point_mail_at(app, server.port)
    [message_id] = _queue(1)
    notifications.send_due()
    assert db.session.get(OutboxMessage, message_id).status is MessageStatus.DEAD

    sign_in(client, coordinator)
    page = client.get("/coordinator/outbox/?status=dead").get_data(as_text=True)
    assert "Message 0" in page
    client.post(f"/coordinator/outbox/{message_id}/resend")
    assert db.session.get(OutboxMessage, message_id).status is MessageStatus.PENDING
    server.start()
    try:
        notifications.send_due()
        notifications.send_due()
    finally:
        server.stop()
    assert server.inbox.ids() == [str(message_id)]


def test_joining_details_follow_the_programme_setting(
    programme, make_course, make_session, make_nqsw
):
    now = utcnow()
    session = make_session(make_course(), day=(now + timedelta(days=5)).date())
    bookings.book_place(make_nqsw(), session)

    assert notifications.queue_reminders(now=now) == 0  # default: 3 days before
    programme.joining_info_days_before = 5
    db.session.commit()
    assert notifications.queue_reminders(now=now) == 1


def test_two_reminder_runs_at_once_queue_each_message_once(
    app, programme, make_course, make_session, make_nqsw
):
    now = utcnow()
    for _ in range(5):
        session = make_session(make_course(), day=(now + timedelta(days=2)).date())
        bookings.book_place(make_nqsw(), session)
    start = threading.Barrier(2)
    counts: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        with app.app_context():
            try:
                start.wait()
                counts.append(notifications.queue_reminders(now=now))
            except BaseException as error:  # surfaced below, not lost in the thread
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sum(counts) == 5
    kinds = db.session.scalars(select(OutboxMessage.kind)).all()
    assert kinds.count("joining_info") == 5
