"""The audit log records who acted, on what, from what to what."""

from __future__ import annotations

import json

from sqlalchemy import select

from booking.audit.models import AuditEvent
from booking.audit.services import record
from booking.extensions import db
from booking.models import BookingStatus


def test_an_entry_names_the_actor_target_and_change(make_nqsw, coordinator):
    nqsw = make_nqsw()
    record(
        "nqsw.withdraw",
        nqsw,
        actor=coordinator,
        before={"status": BookingStatus.BOOKED},
        after={"status": "withdrawn"},
        nqsw_id=nqsw.id,
        reason="left the employer",
    )
    db.session.commit()
    event = db.session.scalars(select(AuditEvent)).one()
    assert (event.actor_id, event.actor_label) == (coordinator.id, "")
    assert (event.target_type, event.target_id, event.nqsw_id) == ("nqsw", nqsw.id, nqsw.id)
    assert json.loads(event.before) == {"status": "booked"}
    assert json.loads(event.after) == {"status": "withdrawn"}
    assert event.reason == "left the employer"


def test_outside_a_request_the_system_is_the_actor(app):
    record("offer.expire", ("waitlist_entry", 7))
    record("invoice.paid", ("invoice", 3), actor="stripe")
    db.session.commit()
    events = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    assert [(e.actor_id, e.actor_label, e.target_type, e.target_id) for e in events] == [
        (None, "system", "waitlist_entry", 7),
        (None, "stripe", "invoice", 3),
    ]


def test_a_rolled_back_change_leaves_no_entry(app):
    record("session.cancel", ("session", 1))
    db.session.rollback()
    assert db.session.scalars(select(AuditEvent)).all() == []
