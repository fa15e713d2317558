"""Each coordinator form changes the database when right, and explains itself when wrong."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest
from sqlalchemy import func, select

from booking.extensions import db
from booking.models import (
    Course,
    CourseLength,
    Employer,
    EmployerOption,
    Programme,
    Session,
)

from ..conftest import FUTURE, sign_in
from .coordinator_support import field_error


@pytest.fixture
def signed_in(client, coordinator):
    return sign_in(client, coordinator)


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


EMPLOYER = {
    "name": "Barnet Council",
    "option": "full_access",
    "billing_name": "Barnet Finance",
    "billing_email": "Finance@Barnet.example",
    "billing_address": "1 High Street\nBarnet",
    "po_number": "PO-77",
    "po_required": "y",
}


def test_register_an_employer(signed_in):
    response = signed_in.post("/coordinator/employers/new", data=EMPLOYER)
    assert response.status_code == 302
    employer = db.session.scalar(select(Employer))
    assert employer.name == "Barnet Council"
    assert employer.option is EmployerOption.FULL_ACCESS
    assert employer.billing_email == "finance@barnet.example"
    assert employer.po_number == "PO-77" and employer.po_required
    assert response.headers["Location"].endswith(f"/coordinator/employers/{employer.id}")


def test_register_an_employer_without_option_shows_the_error_by_the_field(signed_in):
    response = signed_in.post("/coordinator/employers/new", data={**EMPLOYER, "option": ""})
    assert response.status_code == 400
    assert field_error(response, "option") == "Choose the employer's option"
    assert _count(Employer) == 0


def test_register_a_duplicate_employer_is_refused_next_to_the_name(signed_in, make_employer):
    make_employer(name="Barnet Council")
    response = signed_in.post("/coordinator/employers/new", data=EMPLOYER)
    assert response.status_code == 400
    assert (
        field_error(response, "name") == "An employer called Barnet Council is already registered."
    )
    assert _count(Employer) == 1


def test_edit_an_employer(signed_in, make_employer):
    employer = make_employer(name="Old Name", option=EmployerOption.TRAINING_ONLY)
    response = signed_in.post(
        f"/coordinator/employers/{employer.id}/edit",
        data={**EMPLOYER, "name": "New Name", "option": "training_only", "po_required": ""},
    )
    assert response.status_code == 302
    db.session.refresh(employer)
    assert employer.name == "New Name" and not employer.po_required


def test_edit_an_employer_to_a_taken_name_is_refused(signed_in, make_employer):
    make_employer(name="Taken")
    employer = make_employer(name="Mine")
    response = signed_in.post(
        f"/coordinator/employers/{employer.id}/edit", data={**EMPLOYER, "name": "Taken"}
    )
    assert response.status_code == 400
    assert field_error(response, "name") == "An employer called Taken is already registered."
    db.session.refresh(employer)
    assert employer.name == "Mine"


PROGRAMME = {
    "name": "Pan-London ASYE 2027-28",
    "slug": "pan-london-2027",
    "host_name": "Pan-London NHS Trust",
    "host_email": "asye@trust.example",
    "host_address": "Trust HQ",
    "starts_on": "2027-09-01",
    "ends_on": "2028-08-31",
    "protected_days_per_week": "0.5",
    "window_weeks": "4",
    "cancellation_cutoff_working_days": "5",
    "waitlist_hold_hours": "48",
}


def test_create_a_programme_year(signed_in):
    response = signed_in.post("/coordinator/programmes/new", data=PROGRAMME)
    assert response.status_code == 302
    programme = db.session.scalar(select(Programme))
    assert programme.slug == "pan-london-2027" and not programme.published
    assert programme.starts_on == date(2027, 9, 1)
    assert programme.protected_days_per_week == 0.5


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"ends_on": "2027-08-01"}, "ends_on", "The programme must end after it starts."),
        ({"slug": "Not A Slug"}, "slug", "Use lower-case letters, digits and hyphens"),
        ({"window_weeks": "0"}, "window_weeks", "Between 1 and 52"),
        ({"starts_on": "next week"}, "starts_on", "Not a valid date value."),
    ],
)
def test_create_a_programme_with_bad_input_changes_nothing(signed_in, change, field, message):
    response = signed_in.post("/coordinator/programmes/new", data={**PROGRAMME, **change})
    assert response.status_code == 400
    assert message in field_error(response, field)
    assert _count(Programme) == 0


def test_create_a_programme_with_a_taken_slug_is_refused(signed_in, make_programme):
    make_programme(slug="pan-london-2027")
    response = signed_in.post("/coordinator/programmes/new", data=PROGRAMME)
    assert response.status_code == 400
    assert field_error(response, "slug") == "The short name 'pan-london-2027' is taken."
    assert _count(Programme) == 1


def test_edit_a_programme_changes_its_rules(signed_in, programme):
    data = {
        **PROGRAMME,
        "slug": programme.slug,
        "starts_on": programme.starts_on.isoformat(),
        "ends_on": programme.ends_on.isoformat(),
        "protected_days_per_week": "1",
        "window_weeks": "6",
        "cancellation_cutoff_working_days": "3",
        "waitlist_hold_hours": "24",
    }
    response = signed_in.post(f"/coordinator/programmes/{programme.id}/edit", data=data)
    assert response.status_code == 302
    db.session.refresh(programme)
    assert programme.protected_days_per_week == 1.0
    assert programme.window_weeks == 6
    assert programme.cancellation_cutoff_working_days == 3
    assert programme.waitlist_hold_hours == 24
    assert programme.name == "Pan-London ASYE 2027-28"


def test_edit_a_programme_with_dates_out_of_order_changes_nothing(signed_in, programme):
    data = {**PROGRAMME, "slug": programme.slug, "starts_on": "2030-01-01", "ends_on": "2029-01-01"}
    response = signed_in.post(f"/coordinator/programmes/{programme.id}/edit", data=data)
    assert response.status_code == 400
    assert field_error(response, "ends_on") == "The programme must end after it starts."
    db.session.expire_all()
    assert db.session.get(Programme, programme.id).name == "Test ASYE Programme"


def test_add_the_programme_pack_courses_once(signed_in, make_programme):
    programme = make_programme(published=False)
    url = f"/coordinator/programmes/{programme.id}/seed-courses"
    assert signed_in.post(url).status_code == 302
    assert _count(Course) == 11
    page = signed_in.post(url, follow_redirects=True).get_data(as_text=True)
    assert "already has courses" in page
    assert _count(Course) == 11


COURSE = {
    "code": "care-act",
    "title": "Care Act",
    "description": "An overview.",
    "length": "half_day",
    "optional": "",
}


def test_add_a_course(signed_in, programme):
    response = signed_in.post(f"/coordinator/programmes/{programme.id}/courses/new", data=COURSE)
    assert response.status_code == 302
    course = db.session.scalar(select(Course))
    assert course.title == "Care Act" and course.length is CourseLength.HALF_DAY
    assert not course.optional


def test_add_a_course_with_a_duplicate_code_is_refused(signed_in, programme, make_course):
    make_course(code="care-act")
    response = signed_in.post(f"/coordinator/programmes/{programme.id}/courses/new", data=COURSE)
    assert response.status_code == 400
    assert field_error(response, "code") == "This programme already has a course 'care-act'."
    assert _count(Course) == 1


def test_add_a_course_without_a_length_is_refused(signed_in, programme):
    response = signed_in.post(
        f"/coordinator/programmes/{programme.id}/courses/new", data={**COURSE, "length": ""}
    )
    assert response.status_code == 400
    assert field_error(response, "length") == "Choose half day or full day"
    assert _count(Course) == 0


def test_edit_a_course_into_an_optional_workshop(signed_in, make_course):
    course = make_course(code="resilience", length=CourseLength.FULL_DAY)
    response = signed_in.post(
        f"/coordinator/courses/{course.id}/edit",
        data={**COURSE, "code": "resilience", "title": "Resilience", "optional": "y"},
    )
    assert response.status_code == 302
    db.session.refresh(course)
    assert course.optional and course.length is CourseLength.HALF_DAY
    assert course.title == "Resilience"


def test_edit_a_course_with_a_bad_code_changes_nothing(signed_in, make_course):
    course = make_course(code="resilience", title="Resilience")
    response = signed_in.post(
        f"/coordinator/courses/{course.id}/edit", data={**COURSE, "code": "Bad Code"}
    )
    assert response.status_code == 400
    assert field_error(response, "code") == "Use lower-case letters, digits and hyphens"
    db.session.refresh(course)
    assert course.code == "resilience" and course.title == "Resilience"


SESSION = {
    "date": "2027-07-13",
    "start_time": "09:30",
    "end_time": "13:00",
    "capacity": "25",
    "mode": "Online (MS Teams)",
    "region": "",
    "joining_url": "https://teams.example/meet/1",
    "materials_url": "",
    "facilitator": "Dr Smith",
}


def test_add_a_session_converts_uk_time_to_utc(signed_in, make_course):
    course = make_course()
    response = signed_in.post(f"/coordinator/courses/{course.id}/sessions/new", data=SESSION)
    assert response.status_code == 302
    session = db.session.scalar(select(Session))
    # 09:30 in July is British Summer Time: 08:30 UTC.
    assert session.starts_at == datetime(2027, 7, 13, 8, 30, tzinfo=UTC)
    assert session.ends_at == datetime(2027, 7, 13, 12, 0, tzinfo=UTC)
    assert session.capacity == 25 and session.region is None
    assert session.facilitator == "Dr Smith"


def test_add_a_winter_session_keeps_gmt(signed_in, make_course):
    course = make_course()
    signed_in.post(
        f"/coordinator/courses/{course.id}/sessions/new", data={**SESSION, "date": "2027-01-12"}
    )
    session = db.session.scalar(select(Session))
    assert session.starts_at == datetime(2027, 1, 12, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"end_time": "09:00"}, "end_time", "The session must end after it starts."),
        ({"capacity": "-1"}, "capacity", "Enter a number of places from 1 to 1000"),
        ({"joining_url": "not a link"}, "joining_url", "Enter a full web address"),
        ({"start_time": ""}, "start_time", "Enter the start time, like 09:30"),
    ],
)
def test_add_a_session_with_bad_input_changes_nothing(
    signed_in, make_course, change, field, message
):
    course = make_course()
    response = signed_in.post(
        f"/coordinator/courses/{course.id}/sessions/new", data={**SESSION, **change}
    )
    assert response.status_code == 400
    assert message in field_error(response, field)
    assert _count(Session) == 0


def test_session_edit_form_shows_uk_times(signed_in, make_session):
    session = make_session(day=date(2027, 7, 13))
    page = signed_in.get(f"/coordinator/sessions/{session.id}/edit").get_data(as_text=True)
    assert 'value="2027-07-13"' in page and 'value="09:30"' in page


def test_edit_a_session_capacity_below_places_taken_is_refused(signed_in, make_session):
    session = make_session(day=FUTURE, capacity=30, taken=10)
    response = signed_in.post(
        f"/coordinator/sessions/{session.id}/edit",
        data={**SESSION, "date": FUTURE.isoformat(), "capacity": "5"},
    )
    assert response.status_code == 400
    assert field_error(response, "capacity") == (
        "10 places are already taken; capacity cannot go below that."
    )
    db.session.refresh(session)
    assert session.capacity == 30 and session.sequence == 0


def test_cancel_a_session_needs_a_reason(signed_in, make_session):
    session = make_session()
    response = signed_in.post(f"/coordinator/sessions/{session.id}/cancel", data={"reason": ""})
    assert response.status_code == 400
    assert field_error(response, "reason") == "Say why the session is cancelled"
    db.session.refresh(session)
    assert not session.is_cancelled


def test_unknown_records_are_not_found(signed_in):
    for url in (
        "/coordinator/employers/999",
        "/coordinator/programmes/999",
        "/coordinator/sessions/999",
        "/coordinator/nqsws/999",
        "/coordinator/outbox/999",
    ):
        assert signed_in.get(url).status_code == 404


def test_dates_in_the_form_are_local_dates(signed_in, make_course):
    # A session at 00:30 UK time in summer is 23:30 UTC the day before; the form must not shift it.
    course = make_course()
    signed_in.post(
        f"/coordinator/courses/{course.id}/sessions/new",
        data={**SESSION, "start_time": "00:30", "end_time": "02:00"},
    )
    session = db.session.scalar(select(Session))
    assert session.starts_at == datetime(2027, 7, 12, 23, 30, tzinfo=UTC)
    page = signed_in.get(f"/coordinator/sessions/{session.id}/edit").get_data(as_text=True)
    assert 'value="2027-07-13"' in page
    assert time(0, 30).strftime("%H:%M") in page
