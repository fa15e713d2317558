"""The public catalogue: grouped courses, two dates each, London times, places left."""

from __future__ import annotations

from datetime import date, time

from booking.catalogue import seed_pack_courses
from booking.extensions import db
from booking.models import Session

from ..conftest import london


def test_catalogue_groups_the_pack_courses_with_london_times(client, programme):
    courses = seed_pack_courses(programme)
    mca = next(c for c in courses if c.code == "mca")
    # 09:30 in July is 08:30Z (BST); 09:30 in January is 09:30Z (GMT).
    db.session.add_all(
        [
            Session(
                course=mca,
                starts_at=london(date(2027, 1, 12), time(9, 30)),
                ends_at=london(date(2027, 1, 12), time(16, 30)),
                capacity=30,
                taken=29,
            ),
            Session(
                course=mca,
                starts_at=london(date(2027, 7, 13), time(9, 30)),
                ends_at=london(date(2027, 7, 13), time(16, 30)),
                capacity=30,
                taken=30,
            ),
        ]
    )
    db.session.commit()

    page = client.get(f"/programmes/{programme.slug}/").get_data(as_text=True)

    assert (
        page.index("Half-day courses")
        < page.index("Full-day courses")
        < page.index("Optional workshops")
    )
    for course in courses:
        assert course.title.replace("'", "&#39;") in page
    assert page.count("Tuesday 12 January 2027") == 1
    assert "09:30 to 16:30" in page
    assert "1 of 30" in page
    assert "Full" in page


def test_course_page_lists_its_sessions(client, programme, make_course, make_session):
    course = make_course(code="care-act", title="Care Act")
    make_session(course, day=date(2027, 3, 2))
    page = client.get(f"/programmes/{programme.slug}/courses/care-act")
    assert page.status_code == 200
    assert "Tuesday 2 March 2027" in page.get_data(as_text=True)


def test_unpublished_programme_is_not_shown(client, make_programme):
    hidden = make_programme(published=False)
    assert client.get(f"/programmes/{hidden.slug}/").status_code == 404


def test_catalogue_json(client, programme, make_course, make_session):
    course = make_course(code="mha", title="Mental Health Act")
    make_session(course, day=date(2027, 1, 12), capacity=10)
    body = client.get(f"/api/programmes/{programme.slug}/catalogue").get_json()
    [group] = body["groups"]
    assert group["heading"] == "Full-day courses"
    [session] = group["courses"][0]["sessions"]
    assert session["starts_at"] == "2027-01-12T09:30:00Z"
    assert session["places_left"] == 10
