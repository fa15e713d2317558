"""Every coordinator page renders for a coordinator and is closed to everyone else."""

from __future__ import annotations

from datetime import date, time

import pytest

from booking.bookings import book_place, join_waitlist
from booking.extensions import db
from booking.models import OutboxMessage, Role

from ..conftest import london, sign_in


@pytest.fixture
def world(programme, make_course, make_session, make_employer, make_nqsw, make_user):
    """A programme with a course, a full session with a waiting list, and people."""
    employer = make_employer(name="Barnet Council")
    contact = make_user(Role.EMPLOYER_CONTACT, employer=employer, name="Ema Contact")
    course = make_course(code="mca", title="Mental Capacity Act in Practice")
    session = make_session(course, capacity=1)
    nqsw = make_nqsw(employer, name="Nia Booked")
    waiter = make_nqsw(employer, name="Wes Waiting")
    booking = book_place(nqsw, session)
    join_waitlist(waiter, session)
    message = db.session.scalars(db.select(OutboxMessage)).first()
    return {
        "programme": programme,
        "employer": employer,
        "contact": contact,
        "course": course,
        "session": session,
        "nqsw": nqsw,
        "booking": booking,
        "message": message,
    }


PAGES = [
    "/coordinator/",
    "/coordinator/employers/",
    "/coordinator/employers/new",
    "/coordinator/employers/{employer}",
    "/coordinator/employers/{employer}/edit",
    "/coordinator/employers/{employer}/contacts/new",
    "/coordinator/programmes/",
    "/coordinator/programmes/new",
    "/coordinator/programmes/{programme}",
    "/coordinator/programmes/{programme}/edit",
    "/coordinator/programmes/{programme}/courses/new",
    "/coordinator/programmes/{programme}/nqsws",
    "/coordinator/programmes/{programme}/nqsws?employer={employer}",
    "/coordinator/courses/{course}/edit",
    "/coordinator/courses/{course}/sessions/new",
    "/coordinator/sessions/{session}",
    "/coordinator/sessions/{session}/edit",
    "/coordinator/sessions/{session}/cancel",
    "/coordinator/nqsws/{nqsw}",
    "/coordinator/nqsws/{nqsw}/edit",
    "/coordinator/nqsws/{nqsw}/withdraw",
    "/coordinator/bookings/{booking}/move",
    "/coordinator/bookings/{booking}/cancel",
    "/coordinator/outbox/",
    "/coordinator/outbox/?status=pending",
    "/coordinator/outbox/{message}",
]


def _url(template: str, world: dict) -> str:
    return template.format(**{k: getattr(v, "id", v) for k, v in world.items()})


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_for_a_coordinator(client, coordinator, world, page):
    sign_in(client, coordinator)
    response = client.get(_url(page, world))
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert "<h1" in response.get_data(as_text=True)


@pytest.mark.parametrize("page", PAGES)
def test_page_is_forbidden_to_nqsws_and_employer_contacts(client, world, page):
    for user in (world["nqsw"].user, world["contact"]):
        sign_in(client, user)
        assert client.get(_url(page, world)).status_code == 403


@pytest.mark.parametrize("page", PAGES)
def test_page_sends_anonymous_visitors_to_sign_in(client, world, page):
    response = client.get(_url(page, world))
    assert response.status_code == 302
    assert "/sign-in" in response.headers["Location"]


def test_state_changing_posts_are_closed_to_others(client, world):
    sign_in(client, world["contact"])
    programme = world["programme"]
    assert client.post(f"/coordinator/programmes/{programme.id}/unpublish").status_code == 403
    assert client.post(f"/coordinator/sessions/{world['session'].id}/cancel").status_code == 403
    db.session.refresh(programme)
    assert programme.published


def test_dashboard_shows_programmes_counts_and_outbox(client, coordinator, world, make_programme):
    make_programme(name="Next Year Programme", published=False)
    sign_in(client, coordinator)
    page = client.get("/coordinator/").get_data(as_text=True)
    assert "Test ASYE Programme" in page and "Next Year Programme" in page
    assert "Not published" in page and "Published" in page
    # One NQSW booked the only place; the other waits: 2 NQSWs, 1 booking, 1 full session.
    assert 'NQSWs enrolled</dt><dd class="nhsuk-summary-list__value">2' in page
    assert 'Full upcoming sessions</dt><dd class="nhsuk-summary-list__value">1' in page
    assert "2 messages waiting to be sent, 0 failed" in page


def test_session_page_lists_attendees_and_the_waiting_list_in_order(client, coordinator, world):
    sign_in(client, coordinator)
    page = client.get(f"/coordinator/sessions/{world['session'].id}").get_data(as_text=True)
    assert "Nia Booked" in page and "Barnet Council" in page
    assert "Wes Waiting" in page and "Waiting" in page
    assert "1 of 1 taken, 0 left" in page


def test_nqsw_list_filters_by_employer(client, coordinator, world, make_employer, make_nqsw):
    other = make_employer(name="Camden Council")
    make_nqsw(other, name="Omar Other")
    sign_in(client, coordinator)
    base = f"/coordinator/programmes/{world['programme'].id}/nqsws"
    everyone = client.get(base).get_data(as_text=True)
    assert "Omar Other" in everyone and "Nia Booked" in everyone
    filtered = client.get(f"{base}?employer={other.id}").get_data(as_text=True)
    assert "Omar Other" in filtered and "Nia Booked" not in filtered


def test_session_times_show_in_uk_time(client, coordinator, make_session, make_course):
    course = make_course(title="Care Act")
    session = make_session(
        course,
        starts_at=london(date(2027, 7, 13), time(9, 30)),
        ends_at=london(date(2027, 7, 13), time(13, 0)),
    )
    sign_in(client, coordinator)
    page = client.get(f"/coordinator/sessions/{session.id}").get_data(as_text=True)
    assert "Tuesday 13 July 2027, 09:30 to 13:00" in page
