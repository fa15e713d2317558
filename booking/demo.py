"""The demo programme a newcomer sees after `make run`."""

from __future__ import annotations

from datetime import date, time, timedelta

from .accounts import create_user
from .attendance import MarkChange, record_marks
from .bookings import book_place
from .catalogue import seed_pack_courses
from .extensions import db
from .models import (
    NQSW,
    AttendanceMark,
    Booking,
    BookingSource,
    Course,
    CourseLength,
    Employer,
    EmployerOption,
    Programme,
    Role,
    Session,
    User,
    london_to_utc,
    london_today,
)

DEMO_NQSWS = (
    ("Amara Okafor", "amara.okafor@nhs.example", "SW100201", 1.0),
    ("Ben Clarke", "ben.clarke@nhs.example", "SW100202", 1.0),
    ("Chloe Nguyen", "chloe.nguyen@nhs.example", "SW100203", 0.6),
    ("Dev Patel", "dev.patel@council.example", "SW100204", 1.0),
)


def _weekday_on_or_after(day: date, weekday: int) -> date:
    return day + timedelta(days=(weekday - day.weekday()) % 7)


# Course position -> weeks ago its first date ran.
PAST_RUNS = {3: 5, 4: 2}
# Marks per demo NQSW on those dates: Chloe misses both and is at risk.
PAST_MARKS = (
    (AttendanceMark.PRESENT, None),
    (AttendanceMark.LEFT_EARLY, 120),
    (AttendanceMark.ABSENT, None),
    (AttendanceMark.PRESENT, None),
)


def _past_registers(courses: list[Course], nqsws: list[NQSW], coordinator: User) -> None:
    """Book everyone on the dates that have run and take their registers."""
    for index in PAST_RUNS:
        session = courses[index].sessions[0]
        for nqsw in nqsws:
            # Booked before the date, when it was still open; the booking rules refuse past dates.
            db.session.add(
                Booking(
                    session=session,
                    nqsw=nqsw,
                    course_id=session.course_id,
                    source=BookingSource.COORDINATOR,
                    created_at=session.starts_at - timedelta(weeks=4),
                )
            )
        session.taken = len(nqsws)
        db.session.commit()
        record_marks(
            session,
            [
                MarkChange(nqsw.id, mark, minutes, None)
                for nqsw, (mark, minutes) in zip(nqsws, PAST_MARKS, strict=True)
            ],
            by=coordinator,
        )


def seed(today: date | None = None) -> str:
    """Create a published programme year with two dates per course and demo people."""
    today = today or london_today()
    year = today.year if today.month >= 9 else today.year - 1
    programme = Programme(
        slug=f"pan-london-{year}",
        name=f"Pan-London NHS Trust ASYE Programme {year}–{str(year + 1)[-2:]}",
        host_name="East London NHS Foundation Trust",
        host_address="Robert Dolan House\n9 Alie Street\nLondon E1 8DE",
        host_email="asye.programme@nhs.example",
        starts_on=date(year, 9, 1),
        ends_on=date(year + 1, 8, 31),
        published=True,
    )
    db.session.add(programme)
    courses = seed_pack_courses(programme)
    # Two dates a course: one in the next four months, one about five months later;
    # two courses have already had their first date, so registers have something to show.
    first = _weekday_on_or_after(today + timedelta(days=14), 1)
    for index, course in enumerate(courses):
        for run in range(2):
            day = _weekday_on_or_after(first + timedelta(weeks=index + run * 20), 1 + index % 3)
            if run == 0 and index in PAST_RUNS:
                day = _weekday_on_or_after(today - timedelta(weeks=PAST_RUNS[index]), 2)
            half = course.length is CourseLength.HALF_DAY
            db.session.add(
                Session(
                    course=course,
                    starts_at=london_to_utc(day, time(9, 30)),
                    ends_at=london_to_utc(day, time(13, 0) if half else time(16, 30)),
                    # One small session shows the waiting list in action.
                    capacity=2 if (index, run) == (0, 0) else 30,
                    joining_url="https://teams.microsoft.com/l/meetup-join/demo",
                    materials_url="https://example.org/asye/materials",
                    facilitator="ASYE programme team",
                )
            )
    elft = Employer(
        name="East London NHS Foundation Trust",
        option=EmployerOption.FULL_ACCESS,
        billing_name="East London NHS Foundation Trust",
        billing_email="finance@elft.nhs.example",
    )
    council = Employer(
        name="Riverside Borough Council",
        option=EmployerOption.TRAINING_ONLY,
        billing_name="Riverside Borough Council, Adult Social Care",
        billing_email="accounts.payable@riverside.example",
        billing_address="Town Hall\nHigh Street\nLondon E15 1AA",
        po_number="PO-44821",
        po_required=True,
    )
    db.session.add_all([elft, council])
    coordinator = create_user("coordinator@asye.example", "Sam Coordinator", Role.COORDINATOR)
    create_user("manager@elft.nhs.example", "Priya Employer", Role.EMPLOYER_CONTACT, employer=elft)
    create_user(
        "asye.lead@riverside.example", "Tom Employer", Role.EMPLOYER_CONTACT, employer=council
    )
    nqsws = []
    for name, email, swe, fte in DEMO_NQSWS:
        user = create_user(email, name, Role.NQSW)
        nqsw = NQSW(
            user=user,
            employer=council if email.endswith("council.example") else elft,
            programme=programme,
            swe_number=swe,
            asye_start=date(year, 9, 1),
            fte=fte,
            assessor_email=f"assessor.{swe.lower()}@nhs.example",
            line_manager_email=f"manager.{swe.lower()}@nhs.example",
        )
        db.session.add(nqsw)
        nqsws.append(nqsw)
    db.session.commit()
    small = courses[0].sessions[0]
    book_place(nqsws[1], small)
    book_place(nqsws[3], small)
    book_place(nqsws[1], courses[6].sessions[0])
    _past_registers(courses, nqsws, coordinator)
    return (
        f"Demo loaded: {programme.name}, {len(courses)} courses, "
        f"{2 * len(courses)} sessions, {len(nqsws)} NQSWs. Sign in at /sign-in."
    )
