"""Issue 14, "build these": coordinators preview an unpublished catalogue; / lists the years."""

from __future__ import annotations

from datetime import date

import pytest

from booking.models import Role

from ..conftest import sign_in


@pytest.fixture
def draft(make_programme, make_course, make_session):
    programme = make_programme(published=False, name="Draft Programme 2027-28")
    course = make_course(programme=programme, code="care-act", title="Care Act")
    make_session(course)
    return programme


def test_a_coordinator_previews_an_unpublished_catalogue(client, coordinator, draft):
    sign_in(client, coordinator)

    page = client.get(f"/programmes/{draft.slug}/")
    course = client.get(f"/programmes/{draft.slug}/courses/care-act")

    assert page.status_code == 200 and course.status_code == 200
    assert "Preview." in page.text and "only coordinators can see this page" in page.text
    assert "Care Act" in page.text and "Preview." in course.text
    programme_page = client.get(f"/coordinator/programmes/{draft.id}").text
    assert f'href="/programmes/{draft.slug}/">Preview its catalogue' in programme_page


@pytest.mark.parametrize("role", [None, Role.NQSW, Role.EMPLOYER_CONTACT])
def test_nobody_else_sees_an_unpublished_catalogue(client, make_user, draft, role):
    if role is not None:
        sign_in(client, make_user(role))
    assert client.get(f"/programmes/{draft.slug}/").status_code == 404
    assert client.get(f"/programmes/{draft.slug}/courses/care-act").status_code == 404


def test_a_published_catalogue_shows_no_preview_notice(client, coordinator, programme):
    sign_in(client, coordinator)
    assert "Preview." not in client.get(f"/programmes/{programme.slug}/").text


def test_the_home_page_lists_the_published_programmes_when_there_are_several(
    client, make_programme
):
    older = make_programme(
        name="Programme 2025-26", starts_on=date(2025, 9, 1), ends_on=date(2026, 8, 31)
    )
    newer = make_programme(
        name="Programme 2026-27", starts_on=date(2026, 9, 1), ends_on=date(2027, 8, 31)
    )
    make_programme(name="Hidden draft", published=False)

    page = client.get("/")

    assert page.status_code == 200
    assert f'href="/programmes/{older.slug}/"' in page.text
    assert f'href="/programmes/{newer.slug}/"' in page.text
    assert "Hidden draft" not in page.text


def test_the_home_page_goes_straight_to_the_only_programme(client, programme):
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/programmes/{programme.slug}/")


def test_the_home_page_with_nothing_published(client, app):
    assert "No programme is published yet" in client.get("/").text
