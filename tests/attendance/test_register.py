"""Registers: the opening time, the audit trail and concurrent updates."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select

from booking import attendance
from booking.attendance import MarkChange, RegisterConflict, RegisterNotOpen
from booking.errors import InvalidInput
from booking.extensions import db
from booking.models import (
    NQSW,
    AttendanceChange,
    AttendanceMark,
    AttendanceRecord,
    Booking,
    Session,
    SessionStatus,
    User,
)


@pytest.fixture
def booked(
    make_session: Callable[..., Session],
    make_nqsw: Callable[..., NQSW],
    make_booking: Callable[..., Booking],
) -> tuple[Session, NQSW]:
    session = make_session()
    nqsw = make_nqsw(name="Amira Khan")
    make_booking(nqsw, session)
    return session, nqsw


def _record(session: Session, nqsw: NQSW) -> AttendanceRecord:
    db.session.expire_all()
    found = db.session.scalar(
        select(AttendanceRecord).where(
            AttendanceRecord.session_id == session.id, AttendanceRecord.nqsw_id == nqsw.id
        )
    )
    assert found is not None
    return found


def test_register_opens_fifteen_minutes_before_the_start(
    booked: tuple[Session, NQSW], coordinator: User
) -> None:
    session, nqsw = booked
    change = [MarkChange(nqsw.id, AttendanceMark.PRESENT, None, None)]
    with pytest.raises(RegisterNotOpen, match="opens at"):
        attendance.record_marks(
            session, change, by=coordinator, now=session.starts_at - timedelta(minutes=16)
        )
    assert db.session.scalar(select(AttendanceRecord.id)) is None
    attendance.record_marks(
        session, change, by=coordinator, now=session.starts_at - timedelta(minutes=15)
    )
    assert _record(session, nqsw).mark is AttendanceMark.PRESENT


def test_cancelled_sessions_have_no_register(
    booked: tuple[Session, NQSW], coordinator: User
) -> None:
    session, nqsw = booked
    session.status = SessionStatus.CANCELLED
    db.session.commit()
    with pytest.raises(RegisterNotOpen, match="cancelled"):
        attendance.record_marks(
            session,
            [MarkChange(nqsw.id, AttendanceMark.PRESENT, None, None)],
            by=coordinator,
            now=session.ends_at,
        )


def test_every_change_is_recorded_with_who_when_and_old_to_new(
    booked: tuple[Session, NQSW], coordinator: User, make_user: Callable[..., User]
) -> None:
    session, nqsw = booked
    other = make_user(name="Olu Other")
    attendance.record_marks(
        session,
        [MarkChange(nqsw.id, AttendanceMark.PRESENT, None, None)],
        by=coordinator,
        now=session.starts_at,
    )
    later = session.ends_at + timedelta(days=2)
    attendance.record_marks(
        session,
        [MarkChange(nqsw.id, AttendanceMark.LEFT_EARLY, 200, 1)],
        by=other,
        now=later,
    )
    record = _record(session, nqsw)
    assert (record.mark, record.minutes_attended, record.version) == (
        AttendanceMark.LEFT_EARLY,
        200,
        2,
    )
    history = attendance.register_history(session)
    assert [(h.changed_by, h.old_mark, h.new_mark, h.new_minutes) for h in history] == [
        (other, AttendanceMark.PRESENT, AttendanceMark.LEFT_EARLY, 200),
        (coordinator, None, AttendanceMark.PRESENT, None),
    ]
    assert history[0].changed_at == later


def test_left_early_needs_minutes_within_the_session(
    booked: tuple[Session, NQSW], coordinator: User
) -> None:
    session, nqsw = booked
    for minutes in (None, 421):
        with pytest.raises(InvalidInput):
            attendance.record_marks(
                session,
                [MarkChange(nqsw.id, AttendanceMark.LEFT_EARLY, minutes, None)],
                by=coordinator,
                now=session.ends_at,
            )
    assert db.session.scalar(select(AttendanceRecord.id)) is None


def test_a_stale_update_is_refused_and_changes_nothing(
    booked: tuple[Session, NQSW],
    coordinator: User,
    make_user: Callable[..., User],
    make_nqsw: Callable[..., NQSW],
    make_booking: Callable[..., Booking],
) -> None:
    session, nqsw = booked
    second = make_nqsw(name="Ben O'Neill")
    make_booking(second, session)
    now = session.ends_at
    attendance.record_marks(
        session, [MarkChange(nqsw.id, AttendanceMark.PRESENT, None, None)], by=coordinator, now=now
    )
    # Both coordinators loaded version 1; the other saves first.
    attendance.record_marks(
        session, [MarkChange(nqsw.id, AttendanceMark.ABSENT, None, 1)], by=make_user(), now=now
    )
    with pytest.raises(RegisterConflict, match="Amira Khan"):
        attendance.record_marks(
            session,
            [
                MarkChange(second.id, AttendanceMark.PRESENT, None, None),
                MarkChange(nqsw.id, AttendanceMark.LATE, None, 1),
            ],
            by=coordinator,
            now=now,
        )
    assert _record(session, nqsw).mark is AttendanceMark.ABSENT
    assert (
        db.session.scalar(select(AttendanceRecord).where(AttendanceRecord.nqsw_id == second.id))
        is None
    )


@pytest.mark.parametrize("existing", [True, False], ids=["update", "first-mark"])
def test_two_coordinators_racing_cannot_both_win(
    app: Flask,
    booked: tuple[Session, NQSW],
    coordinator: User,
    make_user: Callable[..., User],
    existing: bool,
) -> None:
    session, nqsw = booked
    now = session.ends_at
    version = None
    if existing:
        attendance.record_marks(
            session,
            [MarkChange(nqsw.id, AttendanceMark.PRESENT, None, None)],
            by=coordinator,
            now=now,
        )
        version = 1
    users = [coordinator.id, make_user().id]
    marks = [AttendanceMark.ABSENT, AttendanceMark.LATE]
    ids = (session.id, nqsw.id)
    db.session.remove()
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def take(user_id: int, mark: AttendanceMark) -> None:
        with app.app_context():
            session_ = db.session.get(Session, ids[0])
            user = db.session.get(User, user_id)
            db.session.rollback()  # start the race with no transaction open
            barrier.wait()
            try:
                attendance.record_marks(
                    session_, [MarkChange(ids[1], mark, None, version)], by=user, now=now
                )
            except RegisterConflict:
                outcomes.append("conflict")
            else:
                outcomes.append("saved")
            finally:
                db.session.remove()

    threads = [
        threading.Thread(target=take, args=(u, m)) for u, m in zip(users, marks, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(outcomes) == ["conflict", "saved"]
    record = _record(db.session.get(Session, ids[0]), db.session.get(NQSW, ids[1]))
    changes = db.session.scalars(select(AttendanceChange).order_by(AttendanceChange.id)).all()
    assert changes[-1].new_mark is record.mark
    assert record.version == (2 if existing else 1)
    assert len(changes) == (2 if existing else 1)
