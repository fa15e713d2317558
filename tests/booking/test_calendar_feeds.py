"""Calendar feeds: parsed by icalendar, vobject and recurring-ical-events after changes."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, date, datetime, time, timedelta

import recurring_ical_events
import vobject
from icalendar import Calendar

from booking import bookings, calendar, catalogue
from booking.extensions import db
from booking.models import FeedToken, Role

from ..conftest import FUTURE, london, sign_in

DAY = FUTURE


def _feed(client, url):
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    return response


def _parse_all(body: bytes):
    """Parse with three independent parsers; return their views of the events."""
    ical = Calendar.from_ical(body)
    events = {str(e["UID"]): e for e in ical.walk("VEVENT")}
    vcal = vobject.readOne(body.decode("utf-8"))
    vevents = {e.uid.value: e for e in vcal.vevent_list} if hasattr(vcal, "vevent") else {}
    window = recurring_ical_events.of(ical).between(
        datetime(DAY.year - 1, 1, 1, tzinfo=UTC), datetime(DAY.year + 2, 1, 1, tzinfo=UTC)
    )
    occurrences = {str(e["UID"]): e for e in window}
    return ical, events, vevents, occurrences


def _token_from(page: str, kind: str) -> str:
    match = re.search(rf"https?://[^/\s\"<]+/feeds/{kind}/([A-Za-z0-9_-]+)\.ics", page)
    assert match, "no feed link on the page"
    assert f"webcal://asye.test/feeds/{kind}/{match.group(1)}.ics" in page
    return match.group(1)


def test_programme_feed_is_valid_for_three_parsers(client, programme, make_course, make_session):
    course = make_course(code="mca", title="Mental Capacity Act")
    first = make_session(course, day=DAY)
    second = make_session(course, day=DAY + timedelta(days=90))

    body = _feed(client, f"/feeds/programme/{programme.slug}.ics").data
    text = body.decode("utf-8")

    assert "REFRESH-INTERVAL;VALUE=DURATION:PT1H" in text
    assert "X-PUBLISHED-TTL:PT1H" in text
    assert f"X-WR-CALNAME:{programme.name}" in text
    assert f"DTSTART:{first.starts_at:%Y%m%dT%H%M%S}Z" in text
    ical, events, vevents, occurrences = _parse_all(body)
    assert str(ical["NAME"]) == programme.name
    assert ical["DESCRIPTION"]
    assert set(events) == set(vevents) == set(occurrences) == {first.uid, second.uid}
    for session in (first, second):
        assert events[session.uid]["DTSTART"].dt == session.starts_at
        assert vevents[session.uid].dtstart.value == session.starts_at
        assert occurrences[session.uid]["DTEND"].dt == session.ends_at
        assert events[session.uid]["SEQUENCE"] == 0
        assert events[session.uid]["DTSTAMP"].dt == session.updated_at.replace(microsecond=0)
        assert str(events[session.uid]["STATUS"]) == "CONFIRMED"
    # The catalogue feed is public: it must not carry joining links.
    assert first.joining_url == "" or first.joining_url not in text


def test_moved_session_keeps_its_uid_and_raises_sequence(
    client, programme, make_course, make_session, make_nqsw
):
    course = make_course(title="Care Act")
    session = make_session(course, day=DAY, joining_url="https://teams.example/j/1")
    nqsw = make_nqsw()
    bookings.book_place(nqsw, session)
    token = calendar.issue_feed_token(nqsw.user)
    new_start = london(DAY + timedelta(days=7), time(13, 0))

    catalogue.update_session(session, starts_at=new_start, ends_at=new_start + timedelta(hours=3))

    for url in (
        f"/feeds/programme/{programme.slug}.ics",
        f"/feeds/course/{programme.slug}/{course.code}.ics",
        f"/feeds/nqsw/{token}.ics",
    ):
        body = _feed(client, url).data
        _, events, vevents, occurrences = _parse_all(body)
        assert list(events) == [session.uid], url
        event = events[session.uid]
        assert event["DTSTART"].dt == new_start
        assert vevents[session.uid].dtstart.value == new_start
        assert occurrences[session.uid]["DTSTART"].dt == new_start
        assert int(vevents[session.uid].sequence.value) == event["SEQUENCE"] == 1
        assert event["DTSTAMP"].dt == session.updated_at.replace(microsecond=0)
        assert str(event["STATUS"]) == "CONFIRMED"
    # Only the personal feed carries the joining link.
    assert "https://teams.example/j/1" in body.decode()


def test_cancelled_session_stays_as_cancelled_for_a_while(
    client, programme, make_course, make_session, make_nqsw, make_user
):
    course = make_course(title="Mental Health Act")
    session = make_session(course, day=DAY)
    nqsw = make_nqsw()
    bookings.book_place(nqsw, session)
    token = calendar.issue_feed_token(nqsw.user)
    manager = make_user(Role.EMPLOYER_CONTACT, employer=nqsw.employer)
    manager_token = calendar.issue_feed_token(manager)

    bookings.cancel_session(session, reason="Trainer unwell")

    for url in (
        f"/feeds/programme/{programme.slug}.ics",
        f"/feeds/course/{programme.slug}/{course.code}.ics",
        f"/feeds/nqsw/{token}.ics",
        f"/feeds/employer/{manager_token}.ics",
    ):
        _, events, vevents, occurrences = _parse_all(_feed(client, url).data)
        event = events[session.uid]
        assert str(event["STATUS"]) == "CANCELLED"
        assert vevents[session.uid].status.value == "CANCELLED"
        assert str(event["SUMMARY"]).startswith("Cancelled: Mental Health Act")
        assert event["SEQUENCE"] >= 1
        assert event["DTSTAMP"].dt == session.updated_at.replace(microsecond=0)
        assert occurrences[session.uid]["DTSTART"].dt == session.starts_at
    assert "Trainer unwell" in str(event["DESCRIPTION"])

    later = session.updated_at + timedelta(days=31)
    assert calendar.programme_feed(programme, now=later).events == []
    assert calendar.nqsw_feed(nqsw, now=later).events == []


def test_feeds_answer_conditional_requests_without_compression(
    client, programme, make_course, make_session
):
    session = make_session(make_course())
    url = f"/feeds/programme/{programme.slug}.ics"
    first = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in first.headers
    assert "no-transform" in first.headers["Cache-Control"]
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]

    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert client.get(url, headers={"If-Modified-Since": modified}).status_code == 304
    assert client.get(url, headers={"If-None-Match": etag}).data == b""

    catalogue.update_session(session, mode="Online (Zoom)")
    changed = client.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert b"Online (Zoom)" in changed.data


def test_personal_feed_link_from_the_page_shows_only_own_bookings(
    client, programme, make_course, make_session, make_nqsw
):
    course = make_course(title="Care Act")
    mine = make_session(course, day=DAY, joining_url="https://teams.example/mine")
    other = make_session(make_course(title="Other"), day=DAY + timedelta(days=40))
    me, someone = make_nqsw(name="Me Myself"), make_nqsw(name="Someone Else")
    bookings.book_place(me, mine)
    bookings.book_place(someone, other)

    sign_in(client, me.user)
    assert "Add my bookings to my calendar" in client.get("/my/training").get_data(as_text=True)
    page = client.post("/account/calendar/link").get_data(as_text=True)
    token = _token_from(page, "nqsw")

    stored = db.session.scalars(db.select(FeedToken)).one()
    assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in stored.token_hash

    client.post("/sign-out")
    body = _feed(client, f"/feeds/nqsw/{token}.ics").data
    _, events, vevents, _ = _parse_all(body)
    assert set(events) == set(vevents) == {mine.uid}
    assert "https://teams.example/mine" in str(events[mine.uid]["DESCRIPTION"])
    assert str(events[mine.uid]["URL"]) == "https://teams.example/mine"

    assert client.get("/feeds/nqsw/not-a-token.ics").status_code == 404
    assert client.get(f"/feeds/employer/{token}.ics").status_code == 404


def test_reset_my_calendar_links_stops_old_links(client, programme, make_nqsw):
    nqsw = make_nqsw()
    old = calendar.issue_feed_token(nqsw.user)
    assert client.get(f"/feeds/nqsw/{old}.ics").status_code == 200

    sign_in(client, nqsw.user)
    response = client.post("/account/calendar/reset", follow_redirects=True)

    assert "1 old link stopped working" in response.get_data(as_text=True)
    assert client.get(f"/feeds/nqsw/{old}.ics").status_code == 404
    new = _token_from(client.post("/account/calendar/link").get_data(as_text=True), "nqsw")
    assert client.get(f"/feeds/nqsw/{new}.ics").status_code == 200


def test_own_cancellation_shows_cancelled_then_rebooking_raises_sequence(
    client, programme, make_course, make_session, make_nqsw
):
    session = make_session(make_course(), day=DAY)
    nqsw = make_nqsw()
    token = calendar.issue_feed_token(nqsw.user)
    booking = bookings.book_place(nqsw, session)
    url = f"/feeds/nqsw/{token}.ics"
    sequences = [_parse_all(_feed(client, url).data)[1][session.uid]["SEQUENCE"]]

    bookings.cancel_booking(booking)
    _, events, _, _ = _parse_all(_feed(client, url).data)
    assert str(events[session.uid]["STATUS"]) == "CANCELLED"
    sequences.append(events[session.uid]["SEQUENCE"])

    bookings.book_place(nqsw, session)
    _, events, _, _ = _parse_all(_feed(client, url).data)
    assert str(events[session.uid]["STATUS"]) == "CONFIRMED"
    sequences.append(events[session.uid]["SEQUENCE"])
    assert sequences == sorted(set(sequences))


def test_employer_feed_shows_only_their_nqsws(
    client, programme, make_course, make_session, make_employer, make_nqsw, make_user
):
    ours, theirs = make_employer(name="Ours"), make_employer(name="Theirs")
    course = make_course(title="Care Act")
    shared = make_session(course, day=DAY)
    only_theirs = make_session(make_course(title="Other"), day=DAY + timedelta(days=40))
    bookings.book_place(make_nqsw(ours, name="Ada Ours"), shared)
    bookings.book_place(make_nqsw(ours, name="Ben Ours"), shared)
    bookings.book_place(make_nqsw(theirs, name="Cy Theirs"), only_theirs)
    contact = make_user(Role.EMPLOYER_CONTACT, employer=ours)

    sign_in(client, contact)
    assert "Add our NQSWs" in client.get("/employer/").get_data(as_text=True)
    token = _token_from(client.post("/account/calendar/link").get_data(as_text=True), "employer")

    body = _feed(client, f"/feeds/employer/{token}.ics").data
    _, events, vevents, _ = _parse_all(body)
    assert set(events) == set(vevents) == {shared.uid}
    assert "Ada Ours, Ben Ours" in str(events[shared.uid]["DESCRIPTION"])
    assert "Cy Theirs" not in body.decode()
    assert client.get(f"/feeds/nqsw/{token}.ics").status_code == 404


def test_feed_pages_offer_https_and_webcal_links(client, programme, make_course):
    course = make_course(code="mca", title="Mental Capacity Act")
    page = client.get(f"/programmes/{programme.slug}/calendars").get_data(as_text=True)
    assert f'href="webcal://asye.test/feeds/programme/{programme.slug}.ics"' in page
    assert f'href="http://asye.test/feeds/programme/{programme.slug}.ics"' in page
    assert f"webcal://asye.test/feeds/course/{programme.slug}/mca.ics" in page
    course_page = client.get(f"/programmes/{programme.slug}/courses/{course.code}/calendar")
    assert f"webcal://asye.test/feeds/course/{programme.slug}/mca.ics" in course_page.get_data(
        as_text=True
    )
    assert "Add the training dates to your calendar" in client.get(
        f"/programmes/{programme.slug}/"
    ).get_data(as_text=True)


def test_unpublished_programme_has_no_public_feed(client, make_programme):
    hidden = make_programme(published=False)
    assert client.get(f"/feeds/programme/{hidden.slug}.ics").status_code == 404


def test_feed_times_are_utc_across_the_clock_change(client, programme, make_course, make_session):
    course = make_course()
    summer = make_session(course, day=date(DAY.year + 1, 7, 13), capacity=5)
    text = _feed(client, f"/feeds/course/{programme.slug}/{course.code}.ics").get_data(as_text=True)
    # 09:30 in London in July is 08:30 UTC.
    assert f"DTSTART:{summer.starts_at:%Y%m%d}T083000Z" in text
