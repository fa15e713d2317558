"""Issue 14, "build these": the outbox pages, searches by recipient and kind, filters by status.

All of it in the database: the page asks for one page of rows, filtered, never the whole table.
"""

from __future__ import annotations

import re

from sqlalchemy import event

from booking.extensions import db
from booking.models import MessageStatus, OutboxMessage

from ..conftest import sign_in


def _fill() -> None:
    for n in range(120):
        db.session.add(
            OutboxMessage(
                kind="booking_confirmed" if n % 3 else "sign_in_link",
                recipients=f"person{n}@Trust.example" if n != 7 else "odd_100%@trust.example",
                subject=f"Message {n}",
                text_body="x",
                status=MessageStatus.DEAD if n % 10 == 0 else MessageStatus.PENDING,
            )
        )
    db.session.commit()


def _subjects(html: str) -> list[int]:
    return [int(n) for n in re.findall(r">Message (\d+)<span", html)]


def test_pages_of_fifty_newest_first(client, coordinator):
    _fill()
    sign_in(client, coordinator)

    first = client.get("/coordinator/outbox/").text
    last = client.get("/coordinator/outbox/?page=3").text

    assert _subjects(first) == list(range(119, 69, -1))
    assert "Showing 1 to 50 of 120 messages." in first
    assert "Older messages" in first and "Newer messages" not in first
    assert _subjects(last) == list(range(19, -1, -1))
    assert "Showing 101 to 120 of 120 messages." in last
    assert _subjects(client.get("/coordinator/outbox/?page=99").text) == _subjects(last)
    assert _subjects(client.get("/coordinator/outbox/?page=x").text) == _subjects(first)


def test_search_by_recipient_and_kind_and_filter_by_status_together(client, coordinator):
    _fill()
    sign_in(client, coordinator)

    by_recipient = client.get("/coordinator/outbox/?to=PERSON11").text
    literal = client.get("/coordinator/outbox/?to=100%25").text
    by_kind = client.get("/coordinator/outbox/?kind=sign_in_link&status=dead").text
    unknown_kind = client.get("/coordinator/outbox/?kind=nope").text

    assert _subjects(by_recipient) == [119, 118, 117, 116, 115, 114, 113, 112, 111, 110, 11]
    assert _subjects(literal) == [7]  # % is matched as itself, not as a wildcard
    assert _subjects(by_kind) == [90, 60, 30, 0]
    assert "Showing 1 to 4 of 4 messages." in by_kind
    assert 'href="/coordinator/outbox/?status=pending&amp;kind=sign_in_link"' in by_kind
    assert "Showing 1 to 50 of 120" in unknown_kind


def test_the_database_does_the_paging_and_the_filtering(client, coordinator, app):
    _fill()
    sign_in(client, coordinator)
    statements: list[str] = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        client.get("/coordinator/outbox/?to=person1&kind=booking_confirmed&page=2")
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)

    listing = [s for s in statements if "FROM outbox_message" in s and "LIMIT" in s]
    assert listing, statements
    assert all("LIKE" in s and "OFFSET" in s for s in listing)
