"""``flask check`` finds a session whose count disagrees with its bookings."""

from __future__ import annotations

from sqlalchemy import update

from booking.bookings import book_place
from booking.extensions import db
from booking.invariants import run_checks
from booking.models import Session


def test_a_consistent_programme_passes(make_nqsw, make_session, runner):
    book_place(make_nqsw(), make_session())
    assert run_checks() == []
    result = runner.invoke(args=["check"])
    assert result.exit_code == 0, result.output
    assert "hold" in result.output


def test_a_miscounted_session_is_reported_and_exits_1(make_nqsw, make_session, runner):
    session = make_session(capacity=3)
    book_place(make_nqsw(), session)
    db.session.execute(update(Session).where(Session.id == session.id).values(taken=0))
    db.session.commit()
    problems = run_checks()
    assert [p.check for p in problems] == ["session places"]
    assert f"session {session.id}: taken 0" in problems[0].detail
    result = runner.invoke(args=["check"])
    assert result.exit_code == 1
    assert "1 problem(s) found" in result.output
