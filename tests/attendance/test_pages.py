"""The attendance pages, exports and commands, as each role sees them."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from booking.extensions import db
from booking.models import (
    NQSW,
    AttendanceMark,
    AttendanceRecord,
    Booking,
    Course,
    Employer,
    MessageStatus,
    OutboxMessage,
    Programme,
    Role,
    Session,
    UnmatchedAttendee,
    User,
)
from tests.conftest import sign_in

from .conftest import FIXTURES


@dataclass
class World:
    programme: Programme
    session: Session
    later: Session
    amira: NQSW
    ben: NQSW
    other: NQSW
    employer: Employer
    contact: User


@pytest.fixture
def world(
    programme: Programme,
    make_course: Callable[..., Course],
    make_session: Callable[..., Session],
    make_employer: Callable[..., Employer],
    make_user: Callable[..., User],
    nqsw_with_email: Callable[..., NQSW],
    make_booking: Callable[..., Booking],
) -> World:
    employer = make_employer(name="Wirral Council")
    contact = make_user(Role.EMPLOYER_CONTACT, employer=employer, name="Erin Employer")
    course = make_course(title="Mental Capacity Act in Practice")
    session = make_session(course, day=date.today() - timedelta(days=7))
    later = make_session(make_course(title="Report Writing"), day=date.today() - timedelta(days=3))
    amira = nqsw_with_email("amira.khan@council.example", "Amira Khan", employer=employer)
    ben = nqsw_with_email("ben.oneill@council.example", "Ben O'Neill", employer=employer)
    other = nqsw_with_email("cara.dunn@council.example", "Cara Dunn")  # another employer
    for nqsw in (amira, ben, other):
        make_booking(nqsw, session)
        make_booking(nqsw, later)
    db.session.add_all(
        [
            AttendanceRecord(session=later, nqsw=amira, mark=AttendanceMark.PRESENT),
            AttendanceRecord(session=later, nqsw=ben, mark=AttendanceMark.ABSENT),
            AttendanceRecord(session=later, nqsw=other, mark=AttendanceMark.PRESENT),
        ]
    )
    db.session.commit()
    return World(programme, session, later, amira, ben, other, employer, contact)


def _record(session: Session, nqsw: NQSW) -> AttendanceRecord | None:
    db.session.expire_all()
    return db.session.scalar(
        select(AttendanceRecord).where(
            AttendanceRecord.session_id == session.id, AttendanceRecord.nqsw_id == nqsw.id
        )
    )


def test_an_nqsw_sees_their_own_attendance(client: FlaskClient, world: World) -> None:
    assert client.get("/attendance/me").status_code == 302  # signed out: to sign-in
    sign_in(client, world.ben.user)
    page = client.get("/attendance/me").get_data(as_text=True)
    assert "My attendance" in page
    assert "Cannot reach" in page  # 0 of 1 so far, 1 still to be registered: 50% at best
    assert "Report Writing" in page and "Missed" in page
    assert "Register not taken yet" in page
    assert client.get("/attendance/").status_code == 403


def test_an_employer_sees_only_their_nqsws_sorted(client: FlaskClient, world: World) -> None:
    sign_in(client, world.contact)
    page = client.get("/attendance/employer?sort=rate&dir=desc").get_data(as_text=True)
    assert page.index("Amira Khan") < page.index("Ben O&#39;Neill")
    assert "Cara Dunn" not in page
    assert 'aria-sort="descending"' in page
    page = client.get("/attendance/employer?sort=rate&dir=asc").get_data(as_text=True)
    assert page.index("Ben O&#39;Neill") < page.index("Amira Khan")
    assert client.get(f"/attendance/employer/nqsws/{world.amira.id}").status_code == 200
    assert client.get(f"/attendance/employer/nqsws/{world.other.id}").status_code == 404


def test_the_coordinator_filters_charts_and_exports(
    client: FlaskClient, world: World, coordinator: User
) -> None:
    sign_in(client, coordinator)
    page = client.get("/attendance/").get_data(as_text=True)
    assert all(n in page for n in ("Amira Khan", "Cara Dunn", "Ben O&#39;Neill"))
    assert 'id="chart-by-session"' in page and 'id="chart-by-employer"' in page
    assert "Report Writing" in page and "67%" in page  # 2 of 3 attended that session

    filtered = client.get(f"/attendance/?employer={world.employer.id}&status=cannot_reach")
    text = filtered.get_data(as_text=True)
    table = text[text.index('id="attendance-table"') : text.index('id="chart-by-session"')]
    assert "Ben O&#39;Neill" in table and "Amira Khan" not in table and "Cara Dunn" not in table

    rates = client.get(f"/attendance/export/rates.csv?employer={world.employer.id}")
    assert rates.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(rates.get_data(as_text=True))))
    assert {r["name"]: r["status"] for r in rows} == {
        "Amira Khan": "on_track",
        "Ben O'Neill": "cannot_reach",
    }
    registers = client.get("/attendance/export/registers.csv").get_data(as_text=True)
    marks = [(r["name"], r["mark"]) for r in csv.DictReader(io.StringIO(registers))]
    assert ("Ben O'Neill", "absent") in marks and len(marks) == 3


def test_registers_are_for_coordinators_only(client: FlaskClient, world: World) -> None:
    sign_in(client, world.contact)
    assert client.get(f"/attendance/sessions/{world.session.id}").status_code == 403


def _form(world: World, **rows: tuple[str, str, str, str]) -> dict[str, str]:
    """Build a register post: name -> (mark, minutes, version, was)."""
    people = {"amira": world.amira, "ben": world.ben, "other": world.other}
    data: dict[str, str] = {}
    for name, (mark, minutes, version, was) in rows.items():
        nid = people[name].id
        data |= {
            f"mark-{nid}": mark,
            f"minutes-{nid}": minutes,
            f"version-{nid}": version,
            f"was-{nid}": was,
        }
    return data


def test_taking_a_register_and_being_told_of_a_clash(
    client: FlaskClient, world: World, coordinator: User, make_user: Callable[..., User]
) -> None:
    sign_in(client, coordinator)
    url = f"/attendance/sessions/{world.session.id}"
    page = client.get(url).get_data(as_text=True)
    assert "Mark for Amira Khan" in page

    response = client.post(
        url,
        data=_form(
            world,
            amira=("present", "", "", "|"),
            ben=("left_early", "120", "", "|"),
            other=("", "", "", "|"),  # untouched row
        ),
        follow_redirects=True,
    )
    assert "Register saved: 2 marks changed." in response.get_data(as_text=True)
    assert _record(world.session, world.amira).mark is AttendanceMark.PRESENT
    assert _record(world.session, world.other) is None

    # Another coordinator changes Amira's mark while this page is still open at version 1.
    second = client.application.test_client()
    sign_in(second, make_user(name="Sam Second"))
    second.post(url, data=_form(world, amira=("absent_apology", "", "1", "present|")))
    response = client.post(
        url, data=_form(world, amira=("late", "", "1", "present|")), follow_redirects=True
    )
    assert "Someone else changed the mark for Amira Khan" in response.get_data(as_text=True)
    assert _record(world.session, world.amira).mark is AttendanceMark.ABSENT_APOLOGY

    history = client.get(url).get_data(as_text=True)
    assert "Present → Absent with apology" in history and "Sam Second" in history


def test_register_rows_with_bad_minutes_are_shown_next_to_the_row(
    client: FlaskClient, world: World, coordinator: User
) -> None:
    sign_in(client, coordinator)
    response = client.post(
        f"/attendance/sessions/{world.session.id}",
        data=_form(world, amira=("left_early", "two hours", "", "|")),
    )
    assert response.status_code == 400
    assert "Enter the minutes for Amira Khan as a whole number" in response.get_data(as_text=True)
    assert _record(world.session, world.amira) is None


def test_importing_a_teams_report_in_the_browser(
    client: FlaskClient, world: World, coordinator: User
) -> None:
    sign_in(client, coordinator)
    url = f"/attendance/sessions/{world.session.id}/import"
    bad = client.post(
        url,
        data={"file": (io.BytesIO((FIXTURES / "teams_report_bad.csv").read_bytes()), "bad.csv")},
        content_type="multipart/form-data",
    )
    text = bad.get_data(as_text=True)
    assert bad.status_code == 400
    assert "Nothing was imported: 2 line(s) need correcting" in text
    assert "cannot read the duration &#39;about an hour&#39;" in text
    assert _record(world.session, world.amira) is None

    good = client.post(
        url,
        data={"file": (io.BytesIO((FIXTURES / "teams_report_utf16.csv").read_bytes()), "r.csv")},
        content_type="multipart/form-data",
    )
    text = good.get_data(as_text=True)
    assert good.status_code == 200
    # The organiser (Fran) is not an attendee; the unverified guest is left to match.
    assert "Fran Facilitator" not in text and "Jo Guest (Unverified)" in text
    assert _record(world.session, world.ben).minutes_attended == 340
    assert _record(world.session, world.other).mark is AttendanceMark.LEFT_EARLY

    guest = db.session.scalar(
        select(UnmatchedAttendee).where(UnmatchedAttendee.name == "Jo Guest (Unverified)")
    )
    response = client.post(
        f"/attendance/unmatched/{guest.id}",
        data={f"u{guest.id}-nqsw_id": str(world.other.id)},
        follow_redirects=True,
    )
    assert "Jo Guest (Unverified) matched to Cara Dunn and marked." in response.get_data(
        as_text=True
    )
    record = _record(world.session, world.other)
    assert (record.mark, record.minutes_attended) == (AttendanceMark.LEFT_EARLY, 240)  # 180 + 60


def test_alerts_are_listed_and_resent(
    client: FlaskClient, runner, world: World, coordinator: User
) -> None:
    result = runner.invoke(args=["attendance", "alerts"])
    assert result.exit_code == 0
    assert "1 attendance alert(s) queued." in result.output
    message = db.session.scalar(select(OutboxMessage))
    message.status = MessageStatus.DEAD
    db.session.commit()

    sign_in(client, coordinator)
    page = client.get("/attendance/alerts").get_data(as_text=True)
    assert "ASYE attendance for Ben O&#39;Neill: cannot reach" in page
    client.post(f"/attendance/alerts/{message.id}/resend")
    db.session.expire_all()
    assert db.session.get(OutboxMessage, message.id).status is MessageStatus.PENDING


def test_the_report_command_prints_the_table(runner, world: World) -> None:
    result = runner.invoke(args=["attendance", "report", "--programme", world.programme.slug])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].endswith("threshold 75%")
    ben = next(line for line in lines if line.startswith("Ben O'Neill"))
    assert "0/1" in ben and "Cannot reach" in ben
    assert "3 NQSW(s)." in lines[-1]
    only = runner.invoke(
        args=["attendance", "report", "--programme", world.programme.slug, "--status", "on_track"]
    )
    assert "Ben O'Neill" not in only.output and "Amira Khan" in only.output
    csv_out = runner.invoke(
        args=["attendance", "report", "--programme", world.programme.slug, "--csv"]
    )
    assert csv_out.output.startswith("name,email,employer,")
    missing = runner.invoke(args=["attendance", "report", "--programme", "nope"])
    assert missing.exit_code == 1


def test_settings_change_the_threshold(
    client: FlaskClient, world: World, coordinator: User
) -> None:
    sign_in(client, coordinator)
    assert client.get("/attendance/settings").status_code == 200
    bad = client.post("/attendance/settings", data={"threshold": "150", "min_share": "80"})
    assert bad.status_code == 400
    client.post(
        "/attendance/settings",
        data={"threshold": "50", "min_share": "70", "late_counts": "y"},
    )
    db.session.expire_all()
    assert world.programme.attendance_threshold_percent == 50
    assert world.programme.attendance_min_share_percent == 70
