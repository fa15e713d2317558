"""The demo programme a newcomer sees after `make run`."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from .accounts import create_user
from .bookings import book_place
from .catalogue import seed_pack_courses
from .extensions import db
from .models import (
    LONDON,
    NQSW,
    CourseLength,
    Employer,
    EmployerOption,
    Programme,
    Role,
    Session,
    utcnow,
)

DEMO_NQSWS = (
    ("Amara Okafor", "amara.okafor@nhs.example", "SW100201", 1.0),
    ("Ben Clarke", "ben.clarke@nhs.example", "SW100202", 1.0),
    ("Chloe Nguyen", "chloe.nguyen@nhs.example", "SW100203", 0.6),
    ("Dev Patel", "dev.patel@council.example", "SW100204", 1.0),
)


def _at(day: date, clock: time) -> datetime:
    return datetime.combine(day, clock, tzinfo=LONDON).astimezone(UTC)


def _weekday_on_or_after(day: date, weekday: int) -> date:
    return day + timedelta(days=(weekday - day.weekday()) % 7)


def seed(today: date | None = None) -> str:
    """Create a published programme year with two dates per course and demo people."""
    today = today or utcnow().astimezone(LONDON).date()
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
    # Two dates a course: one in the next four months, one about five months later.
    first = _weekday_on_or_after(today + timedelta(days=14), 1)
    for index, course in enumerate(courses):
        for run in range(2):
            day = _weekday_on_or_after(first + timedelta(weeks=index + run * 20), 1 + index % 3)
            half = course.length is CourseLength.HALF_DAY
            db.session.add(
                Session(
                    course=course,
                    starts_at=_at(day, time(9, 30)),
                    ends_at=_at(day, time(13, 0) if half else time(16, 30)),
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
    create_user("coordinator@asye.example", "Sam Coordinator", Role.COORDINATOR)
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
    return (
        f"Demo loaded: {programme.name}, {len(courses)} courses, "
        f"{2 * len(courses)} sessions, {len(nqsws)} NQSWs. Sign in at /sign-in."
    )
