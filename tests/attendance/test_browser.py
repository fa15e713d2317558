"""Attendance journeys in headless Chromium, every page checked with axe-core (WCAG 2.2 AA)."""

from __future__ import annotations

import re
from datetime import date, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import expect
from sqlalchemy import select

from booking.extensions import db
from booking.models import NQSW, AttendanceMark, AttendanceRecord, Booking, Course, Session
from tests.browser.conftest import (  # noqa: F401  (fixtures shared with the main browser tests)
    assert_accessible,
    browser,
    demo_sign_in,
    live_app,
    page,
)
from tests.conftest import london

pytestmark = pytest.mark.browser

REPORT = "\r\n".join(
    [
        "1. Summary",
        "Meeting title\tDemo session",
        "",
        "2. Participants",
        "Name\tFirst Join\tLast Leave\tIn-Meeting Duration\tEmail\tParticipant ID (UPN)\tRole",
        "Amara Okafor\t1/1/26, 9:30:00 AM\t1/1/26, 4:30:00 PM\t7h\tamara.okafor@nhs.example\t\tAttendee",
        "Visiting Speaker\t1/1/26, 9:30:00 AM\t1/1/26, 10:30:00 AM\t1h\tspeaker@else.example\t\tPresenter",
    ]
)


@pytest.fixture(scope="module")
def past_session(live_app: tuple[Flask, str]) -> int:  # noqa: F811
    """Add a session that took place last week, with the demo NQSWs booked on it."""
    app, _base = live_app
    with app.app_context():
        course = db.session.scalars(select(Course).order_by(Course.position)).all()[1]
        day = date.today() - timedelta(days=7)
        session = Session(
            course=course,
            starts_at=london(day, time(9, 30)),
            ends_at=london(day, time(16, 30)),
            capacity=30,
        )
        db.session.add(session)
        nqsws = db.session.scalars(select(NQSW).order_by(NQSW.id)).all()
        for nqsw in nqsws:
            db.session.add(Booking(session=session, nqsw=nqsw, course_id=course.id))
        db.session.add(AttendanceRecord(session=session, nqsw=nqsws[1], mark=AttendanceMark.ABSENT))
        db.session.commit()
        session_id = session.id
        db.session.remove()
    return session_id


def test_coordinator_takes_a_register_and_imports_teams(
    page: Any,  # noqa: F811
    live_app: tuple[Flask, str],  # noqa: F811
    past_session: int,
    tmp_path: Path,
) -> None:
    _app, base = live_app
    demo_sign_in(page, base, re.compile("Sam Coordinator"))
    page.get_by_role("link", name="Attendance").first.click()
    assert page.get_by_role("heading", level=1).inner_text() == "Attendance"
    expect(page.locator("#chart-by-session")).to_be_visible()
    assert_accessible(page)

    page.goto(f"{base}/attendance/sessions/{past_session}")
    assert_accessible(page)
    page.get_by_label("Mark for Chloe Nguyen").select_option("present")
    page.get_by_role("button", name="Save the register").click()
    assert (
        "Register saved: 1 mark changed." in page.locator(".nhsuk-notification-banner").inner_text()
    )

    report = tmp_path / "report.csv"
    report.write_bytes(REPORT.encode("utf-16"))
    page.locator("input[type=file][name=file]").set_input_files(str(report))
    page.get_by_role("button", name="Import the report").click()
    assert "Visiting Speaker" in page.locator("#unmatched").inner_text()
    assert "Chloe Nguyen" in page.locator("#kept-manual").inner_text()
    assert_accessible(page)

    page.get_by_label("Who is Visiting Speaker?").select_option(label="Not an NQSW: dismiss")
    page.get_by_role("button", name=re.compile("Resolve")).click()
    assert "Visiting Speaker dismissed." in page.locator(".nhsuk-notification-banner").inner_text()
    assert "Present" in page.locator("#history").inner_text()

    page.goto(f"{base}/attendance/settings")
    assert_accessible(page)
    page.goto(f"{base}/attendance/alerts")
    assert_accessible(page)


def test_employer_sees_their_nqsws(
    page: Any,  # noqa: F811
    live_app: tuple[Flask, str],  # noqa: F811
    past_session: int,
) -> None:
    _app, base = live_app
    demo_sign_in(page, base, re.compile("Priya Employer"))
    page.get_by_role("link", name="Attendance").first.click()
    assert "Ben Clarke" in page.locator("#attendance-table").inner_text()
    assert_accessible(page)
    page.get_by_role("link", name=re.compile("^Status")).click()
    assert_accessible(page)


def test_nqsw_sees_their_attendance(
    page: Any,  # noqa: F811
    live_app: tuple[Flask, str],  # noqa: F811
    past_session: int,
) -> None:
    _app, base = live_app
    demo_sign_in(page, base, re.compile("Ben Clarke"))
    page.get_by_role("link", name="My attendance").click()
    assert "Missed" in page.locator("#attendance-sessions").inner_text()
    assert_accessible(page)
