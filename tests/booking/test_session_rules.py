"""Issue 14 item 4: sessions that cannot be right are refused; past dates say so."""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest
from sqlalchemy import func, select

from booking import catalogue
from booking.errors import InvalidInput
from booking.extensions import db
from booking.models import Session

from ..conftest import london, sign_in
from .coordinator_support import field_error

FORM = {
    "start_time": "09:30",
    "end_time": "13:00",
    "capacity": "25",
    "mode": "Online (MS Teams)",
    "region": "",
    "joining_url": "",
    "materials_url": "",
    "facilitator": "",
}


def _sessions() -> int:
    return db.session.scalar(select(func.count()).select_from(Session))


def test_the_form_refuses_a_session_with_no_places(client, coordinator, make_course, programme):
    course = make_course()
    sign_in(client, coordinator)
    day = programme.starts_on + timedelta(days=30)

    response = client.post(
        f"/coordinator/courses/{course.id}/sessions/new",
        data={**FORM, "date": day.isoformat(), "capacity": "0"},
    )

    assert response.status_code == 400
    assert field_error(response, "capacity") == "Enter a number of places from 1 to 1000"
    assert _sessions() == 0


@pytest.mark.parametrize("outside", ["after", "before"])
def test_the_form_refuses_a_date_outside_the_programme_year(
    client, coordinator, make_course, programme, outside
):
    course = make_course()
    sign_in(client, coordinator)
    day = (
        programme.ends_on + timedelta(days=500)
        if outside == "after"
        else programme.starts_on - timedelta(days=1)
    )

    response = client.post(
        f"/coordinator/courses/{course.id}/sessions/new", data={**FORM, "date": day.isoformat()}
    )

    assert response.status_code == 400
    assert field_error(response, "date").startswith("The date must be inside the programme year")
    assert f"{programme.starts_on:%-d %B %Y}" in field_error(response, "date")
    assert _sessions() == 0


def test_a_change_cannot_move_a_session_out_of_the_year_or_empty_it(
    client, coordinator, make_session, programme
):
    session = make_session()
    sign_in(client, coordinator)
    before = (session.starts_at, session.capacity)
    late = programme.ends_on + timedelta(days=1)

    moved = client.post(
        f"/coordinator/sessions/{session.id}/edit", data={**FORM, "date": late.isoformat()}
    )
    emptied = client.post(
        f"/coordinator/sessions/{session.id}/edit",
        data={**FORM, "date": session.local_date.isoformat(), "capacity": "0"},
    )

    assert moved.status_code == 400 and "programme year" in field_error(moved, "date")
    assert emptied.status_code == 400 and field_error(emptied, "capacity")
    db.session.refresh(session)
    assert (session.starts_at, session.capacity) == before


def test_the_service_refuses_too(make_course, programme):
    course = make_course()
    inside = programme.starts_on + timedelta(days=10)
    with pytest.raises(InvalidInput, match="at least 1 place"):
        catalogue.add_session(
            course,
            starts_at=london(inside, time(9, 30)),
            ends_at=london(inside, time(13, 0)),
            capacity=0,
        )
    outside = date(programme.ends_on.year + 1, 1, 1)
    with pytest.raises(InvalidInput, match="inside the programme year"):
        catalogue.add_session(
            course,
            starts_at=london(outside, time(9, 30)),
            ends_at=london(outside, time(13, 0)),
            capacity=30,
        )
    assert _sessions() == 0


def test_the_catalogue_does_not_offer_places_on_past_dates(client, make_course, make_session):
    course = make_course(code="care-act", title="Care Act")
    past = make_session(course, day=date.today() - timedelta(days=3), taken=4)
    make_session(course, taken=4)
    programme = course.programme

    page = client.get(f"/programmes/{programme.slug}/courses/care-act").text

    assert "26 of 30" in page  # the future date
    assert page.count("26 of 30") == 1
    row = page.split(f'datetime="{past.starts_at.isoformat()}"', 1)[1].split("</tr>", 1)[0]
    assert "This date has passed" in row
