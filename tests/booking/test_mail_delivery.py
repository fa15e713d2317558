"""Delivery through a real SMTP server on loopback (aiosmtpd): what arrives, and how often."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from icalendar import Calendar
from sqlalchemy import select

from booking import bookings, notifications, worker
from booking.extensions import db, mail
from booking.models import MessageStatus, OutboxMessage, utcnow

from ..conftest import FUTURE


class Inbox:
    """An aiosmtpd handler that keeps every message it is given."""

    def __init__(self, delay: float = 0.0) -> None:
        self.messages: list[EmailMessage] = []
        self.delay = delay
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd calls it by this name
        if self.delay:
            time.sleep(self.delay)  # widens the window in which two senders could overlap
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            self.messages.append(parsed)
        return "250 Message accepted"

    def ids(self) -> list[str]:
        return [m["X-ASYE-Message-Id"] for m in self.messages]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _point_mail_at(app, port: int) -> None:
    app.config.update(
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=port,
        MAIL_SUPPRESS_SEND=False,
        MAIL_DELIVER=True,
        MAIL_USE_TLS=False,
        MAIL_USE_SSL=False,
    )
    mail.init_app(app)


class SMTPServer:
    def __init__(self, port: int, inbox: Inbox) -> None:
        self.port = port
        self.inbox = inbox
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp(app) -> Iterator[SMTPServer]:
    server = SMTPServer(_free_port(), Inbox())
    _point_mail_at(app, server.port)
    server.start()
    yield server
    server.stop()


def _parts(message: EmailMessage) -> dict[str, EmailMessage]:
    return {part.get_content_type(): part for part in message.walk() if not part.is_multipart()}


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
        parts = _parts(message)
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
        Calendar.from_ical(_parts(m)["text/calendar"].get_content()).walk("VEVENT")[0]["SEQUENCE"]
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
    assert "http://asye.test/sign-in/" in _parts(message)["text/plain"].get_content()
    assert user.name in _parts(message)["text/html"].get_content()


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
    server = SMTPServer(_free_port(), Inbox())
    _point_mail_at(app, server.port)  # nothing listens there yet
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
    server = SMTPServer(_free_port(), Inbox(delay=0.005))
    _point_mail_at(app, server.port)
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
    server = SMTPServer(_free_port(), Inbox())
    _point_mail_at(app, server.port)
    [message_id] = _queue(1)
    now = utcnow()
    for hour in range(3):
        notifications.send_due(now=now + timedelta(hours=hour))

    message = db.session.get(OutboxMessage, message_id)
    assert message.status is MessageStatus.DEAD
    assert message.attempts == 3
    assert notifications.dead_messages() == [message]

    notifications.resend(message)
    server.start()
    try:
        report = notifications.send_due()
    finally:
        server.stop()
    assert report.sent == 1
    assert server.inbox.ids() == [str(message_id)]
    assert notifications.dead_messages() == []


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
        parts = _parts(message)
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
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_worker, args=(app, stop), kwargs={"interval": 0.05})
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not smtp.inbox.messages and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=20)
    assert not thread.is_alive()
    assert [m["To"] for m in smtp.inbox.messages] == ["worker@example.org"]
