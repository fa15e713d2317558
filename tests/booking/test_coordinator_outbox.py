"""Inviting contacts, and reading and resending the outbox (the demo's mailbox)."""

from __future__ import annotations

import re

from sqlalchemy import select

from booking.extensions import db
from booking.models import MessageStatus, OutboxMessage, Role, User
from booking.views.coordinator import linkify

from ..conftest import sign_in
from .coordinator_support import field_error


def test_invite_a_contact_whose_sign_in_link_works(app, client, coordinator, make_employer):
    employer = make_employer(name="Barnet Council")
    sign_in(client, coordinator)

    response = client.post(
        f"/coordinator/employers/{employer.id}/contacts/new",
        data={"name": "Ema Contact", "email": "Ema@Barnet.example"},
    )

    assert response.status_code == 302
    user = db.session.scalar(select(User).where(User.email == "ema@barnet.example"))
    assert user.role is Role.EMPLOYER_CONTACT and user.employer_id == employer.id
    message = db.session.scalar(
        select(OutboxMessage).where(OutboxMessage.kind == "contact_invited")
    )
    assert message.recipients == "ema@barnet.example"

    # The outbox shows the link as a clickable link, which is how a demo user reads it.
    page = client.get(f"/coordinator/outbox/{message.id}").get_data(as_text=True)
    link = re.search(r'<a href="(http://asye\.test/sign-in/[^"]+)"', page)
    assert link is not None
    path = link.group(1).removeprefix("http://asye.test")

    newcomer = app.test_client()
    signed_in = newcomer.post(path)
    assert signed_in.status_code == 302
    assert signed_in.headers["Location"].endswith("/employer/")
    assert newcomer.get("/employer/").status_code == 200
    # Single use: the same link does not sign anyone in a second time.
    latecomer = app.test_client()
    again = latecomer.post(path, follow_redirects=True)
    assert "already been used" in again.get_data(as_text=True)
    assert latecomer.get("/employer/").status_code == 302


def test_invite_a_contact_with_a_taken_address_changes_nothing(
    client, coordinator, make_employer, make_user
):
    employer = make_employer()
    make_user(Role.NQSW, email="taken@example.org")
    sign_in(client, coordinator)
    response = client.post(
        f"/coordinator/employers/{employer.id}/contacts/new",
        data={"name": "Someone", "email": "taken@example.org"},
    )
    assert response.status_code == 400
    assert field_error(response, "email") == "An account already exists for taken@example.org."
    assert db.session.scalars(select(OutboxMessage)).all() == []
    assert db.session.scalar(select(User).where(User.employer_id == employer.id)) is None


def test_invite_a_contact_with_a_bad_address(client, coordinator, make_employer):
    employer = make_employer()
    sign_in(client, coordinator)
    response = client.post(
        f"/coordinator/employers/{employer.id}/contacts/new",
        data={"name": "Someone", "email": "not-an-address"},
    )
    assert response.status_code == 400
    assert field_error(response, "email") == "Enter a valid email address"
    assert db.session.scalars(select(OutboxMessage)).all() == []


def _message(**overrides) -> OutboxMessage:
    fields = {
        "kind": "sign_in_link",
        "recipients": "a@example.org,b@example.org",
        "subject": "Your sign-in link",
        "text_body": "Sign in at http://asye.test/sign-in/abc <now>",
        "html_body": '<p>Hello <script>alert("x")</script><a href="http://asye.test">in</a></p>',
    }
    fields.update(overrides)
    message = OutboxMessage(**fields)
    db.session.add(message)
    db.session.commit()
    return message


def test_outbox_lists_messages_newest_first_with_their_state(client, coordinator):
    _message(subject="Older message")
    _message(subject="Newer message", status=MessageStatus.DEAD, attempts=6, last_error="SMTP down")
    sign_in(client, coordinator)
    page = client.get("/coordinator/outbox/").get_data(as_text=True)
    assert page.index("Newer message") < page.index("Older message")
    assert "SMTP down" in page and "a@example.org, b@example.org" in page
    dead_only = client.get("/coordinator/outbox/?status=dead").get_data(as_text=True)
    assert "Newer message" in dead_only and "Older message" not in dead_only


def test_message_page_escapes_text_and_sandboxes_html(client, coordinator):
    message = _message()
    sign_in(client, coordinator)
    page = client.get(f"/coordinator/outbox/{message.id}").get_data(as_text=True)
    assert "&lt;now&gt;" in page
    assert '<a href="http://asye.test/sign-in/abc"' in page
    assert "<script>alert" not in page
    assert re.search(r'<iframe[^>]* sandbox srcdoc="&lt;p&gt;Hello', page)


def test_resend_a_dead_message(client, coordinator):
    message = _message(status=MessageStatus.DEAD, attempts=6, last_error="SMTP down")
    sign_in(client, coordinator)
    response = client.post(f"/coordinator/outbox/{message.id}/resend")
    assert response.status_code == 302
    db.session.refresh(message)
    assert message.status is MessageStatus.PENDING and message.attempts == 0


def test_a_pending_message_is_not_resent(client, coordinator):
    message = _message(attempts=2)
    sign_in(client, coordinator)
    client.post(f"/coordinator/outbox/{message.id}/resend")
    db.session.refresh(message)
    assert message.attempts == 2


def test_linkify_leaves_sentence_punctuation_out_of_links():
    html = str(linkify("Ask at http://asye.test/sign-in): or <b> http://asye.test/sign-in/t0k3n."))
    assert '<a href="http://asye.test/sign-in">http://asye.test/sign-in</a>):' in html
    assert '<a href="http://asye.test/sign-in/t0k3n">http://asye.test/sign-in/t0k3n</a>.' in html
    assert "&lt;b&gt;" in html
