"""An NQSW subscribes from the page, then books, moves and cancels through the site."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
import recurring_ical_events
import vobject
from icalendar import Calendar
from sqlalchemy import select

from booking import notifications
from booking.extensions import db
from booking.models import Booking

from ..conftest import FUTURE, sign_in
from .mailserver import SMTPServer, mime_parts, running_smtp


@pytest.fixture
def smtp(app) -> Iterator[SMTPServer]:
    with running_smtp(app) as server:
        yield server


def _events(client, url):
    body = client.get(url).data
    by_ical = {str(e["UID"]): e for e in Calendar.from_ical(body).walk("VEVENT")}
    parsed = vobject.readOne(body.decode())
    by_vobject = {e.uid.value: e for e in getattr(parsed, "vevent_list", [])}
    in_year = recurring_ical_events.of(Calendar.from_ical(body)).between(
        FUTURE - timedelta(days=365), FUTURE + timedelta(days=365)
    )
    assert set(by_ical) == set(by_vobject) == {str(e["UID"]) for e in in_year}
    return {
        uid: (str(e["STATUS"]), e["SEQUENCE"], e["DTSTART"].dt, str(e["SUMMARY"]))
        for uid, e in by_ical.items()
    }


def test_subscribe_book_move_cancel_and_receive_each_mail_once(
    client, smtp, programme, make_course, make_session, make_nqsw
):
    course = make_course(title="Care Act")
    first = make_session(course, day=FUTURE, joining_url="https://teams.example/first")
    second = make_session(course, day=FUTURE + timedelta(days=28))
    nqsw = make_nqsw()
    sign_in(client, nqsw.user)

    page = client.get("/account/calendar").get_data(as_text=True)
    assert "Get a calendar link" in page
    page = client.post("/account/calendar/link").get_data(as_text=True)
    [token] = set(re.findall(r"webcal://asye\.test/feeds/nqsw/([\w-]+)\.ics", page))
    url = f"/feeds/nqsw/{token}.ics"
    assert _events(client, url) == {}

    client.post(f"/my/sessions/{first.id}/book")
    assert _events(client, url) == {
        first.uid: ("CONFIRMED", 0, first.starts_at, "Care Act"),
    }

    booking = db.session.scalars(select(Booking)).one()
    client.post(f"/my/bookings/{booking.id}/move", data={"session_id": second.id})
    feed = _events(client, url)
    assert feed[second.uid] == ("CONFIRMED", 0, second.starts_at, "Care Act")
    assert feed[first.uid][0] == "CANCELLED"
    assert feed[first.uid][1] == 1
    assert feed[first.uid][3] == "Cancelled: Care Act"

    moved = db.session.scalars(select(Booking).where(Booking.session_id == second.id)).one()
    client.post(f"/my/bookings/{moved.id}/cancel")
    feed = _events(client, url)
    assert feed[second.uid][:2] == ("CANCELLED", 1)
    assert feed[first.uid][:2] == ("CANCELLED", 1)

    notifications.send_due()
    assert notifications.send_due().sent == 0
    inbox = smtp.inbox.messages
    assert [m["Subject"].split(":")[0] for m in inbox] == ["Booked", "Moved", "Cancelled"]
    invites = [Calendar.from_ical(mime_parts(m)["text/calendar"].get_content()) for m in inbox]
    assert [str(c["METHOD"]) for c in invites] == ["REQUEST", "REQUEST", "CANCEL"]
    events = [c.walk("VEVENT")[0] for c in invites]
    assert len({str(e["UID"]) for e in events}) == 1
    assert [e["SEQUENCE"] for e in events] == [0, 1, 2]
    assert [e["DTSTART"].dt for e in events] == [
        first.starts_at,
        second.starts_at,
        second.starts_at,
    ]
