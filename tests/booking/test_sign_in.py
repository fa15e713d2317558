"""Sign-in by emailed single-use link."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

from sqlalchemy import select

from booking.accounts import redeem_sign_in
from booking.errors import BookingError
from booking.extensions import db
from booking.models import OutboxMessage, Role, SignInToken, utcnow
from booking.tokens import hash_token


def _link_from_outbox() -> str:
    message = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.kind == "sign_in_link")
    ).one()
    return re.search(r"http://asye.test(/sign-in/\S+)", message.text_body).group(1)


def test_link_signs_in_once(client, make_user):
    user = make_user(Role.NQSW, email="nia@example.org")
    page = client.post("/sign-in", data={"email": "Nia@Example.org "})
    assert page.status_code == 200 and "Check your email" in page.get_data(as_text=True)
    path = _link_from_outbox()
    token = path.rsplit("/", 1)[1]
    stored = db.session.scalars(select(SignInToken)).one()
    assert stored.token_hash == hash_token(token) and token not in stored.token_hash

    # Following the link only shows a button; a mail scanner's GET must not spend it.
    assert client.get(path).status_code == 200
    response = client.post(path)
    assert response.status_code == 302 and response.location.endswith("/my/training")
    assert client.get("/my/training").status_code == 200 or user.nqsw is None

    client.post("/sign-out")
    again = client.post(path)
    assert again.status_code == 302
    assert client.get(path).status_code == 400


def test_unknown_address_gets_the_same_answer_and_no_mail(client):
    page = client.post("/sign-in", data={"email": "nobody@example.org"})
    assert "Check your email" in page.get_data(as_text=True)
    assert db.session.scalars(select(OutboxMessage)).all() == []


def test_bad_email_rerenders_with_error_next_to_field(client):
    page = client.post("/sign-in", data={"email": "not-an-address"})
    html = page.get_data(as_text=True)
    assert page.status_code == 400
    assert 'id="email-error"' in html and "Enter an email address like" in html
    assert 'value="not-an-address"' in html


def test_expired_link_is_refused(app, make_user):
    user = make_user(Role.COORDINATOR)
    db.session.add(
        SignInToken(
            user=user,
            token_hash=hash_token("old-token"),
            expires_at=utcnow() - timedelta(seconds=1),
        )
    )
    db.session.commit()
    try:
        redeem_sign_in("old-token")
    except BookingError as error:
        assert "expired" in error.message
    else:
        raise AssertionError("an expired token signed someone in")


def test_link_used_by_two_requests_at_once_works_once(app, make_user):
    user = make_user(Role.COORDINATOR)
    db.session.add(
        SignInToken(
            user=user, token_hash=hash_token("race"), expires_at=utcnow() + timedelta(minutes=5)
        )
    )
    db.session.commit()
    db.session.remove()
    results: list[str] = []
    barrier = threading.Barrier(5)

    def redeem():
        with app.app_context():
            barrier.wait()
            try:
                redeem_sign_in("race")
                results.append("ok")
            except BookingError:
                results.append("refused")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=redeem) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == ["ok"] + ["refused"] * 4
