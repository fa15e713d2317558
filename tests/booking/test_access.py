"""Who may see what, and CSRF on every form."""

from __future__ import annotations

import pytest

from booking.app import create_app
from booking.bookings import book_place
from booking.extensions import db
from booking.models import Role

from ..conftest import sign_in


@pytest.fixture
def people(make_employer, make_user, make_nqsw, make_session):
    employer, other_employer = make_employer(), make_employer()
    mine, theirs = make_nqsw(employer), make_nqsw(other_employer)
    session = make_session()
    return {
        "employer": employer,
        "contact": make_user(Role.EMPLOYER_CONTACT, employer=employer),
        "mine": mine,
        "theirs": theirs,
        "their_booking": book_place(theirs, session),
        "session": session,
    }


def test_anonymous_is_sent_to_sign_in(client):
    for path in ("/my/training", "/employer/", "/coordinator/"):
        response = client.get(path)
        assert response.status_code == 302 and "/sign-in" in response.location


def test_roles_cannot_cross(client, people, coordinator):
    sign_in(client, people["mine"].user)
    assert client.get("/my/training").status_code == 200
    assert client.get("/employer/").status_code == 403
    assert client.get("/coordinator/").status_code == 403
    sign_in(client, people["contact"])
    assert client.get("/my/training").status_code == 403
    assert client.get("/employer/").status_code == 200
    sign_in(client, coordinator)
    assert client.get("/employer/").status_code == 403


def test_nqsw_cannot_touch_someone_elses_booking(client, people):
    sign_in(client, people["mine"].user)
    booking = people["their_booking"]
    assert client.get(f"/my/bookings/{booking.id}/cancel").status_code == 404
    assert client.post(f"/my/bookings/{booking.id}/cancel").status_code == 404
    assert booking.is_live


def test_employer_sees_only_their_nqsws(client, people):
    sign_in(client, people["contact"])
    page = client.get("/employer/").get_data(as_text=True)
    assert people["mine"].name in page
    assert client.get(f"/employer/nqsws/{people['mine'].id}").status_code == 200
    assert client.get(f"/employer/nqsws/{people['theirs'].id}").status_code == 404


@pytest.fixture
def csrf_client(app):
    strict = create_app({**app.config, "WTF_CSRF_ENABLED": True, "TESTING": True})
    yield strict.test_client()
    with strict.app_context():
        db.session.remove()
        db.engine.dispose()


def test_every_state_changing_route_needs_a_csrf_token(csrf_client, app, people):
    user = people["mine"].user
    sign_in(csrf_client, user)
    # End the fixture's transaction: on SQLite it holds the write lock the second app needs.
    db.session.commit()
    posts = [
        rule
        for rule in app.url_map.iter_rules()
        if "POST" in (rule.methods or set()) and not rule.rule.startswith("/stripe/")
    ]
    assert len(posts) >= 8
    for rule in posts:
        url = rule.rule
        for arg in rule.arguments:
            url = url.replace(f"<int:{arg}>", "1").replace(f"<{arg}>", "x")
        response = csrf_client.post(url, data={})
        assert response.status_code == 400, f"{rule.rule} accepted a POST without a CSRF token"
