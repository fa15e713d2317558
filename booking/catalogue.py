"""Publishing and browsing the catalogue: programme years, courses and sessions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from .errors import InvalidInput
from .extensions import db
from .models import (
    LONDON,
    BookingStatus,
    Course,
    CourseLength,
    Programme,
    Session,
    SessionStatus,
    london_today,
)
from .notifications import queue_invitation

# The Pan-London NHS Trust ASYE programme pack's courses, in its order.
PACK_COURSES: tuple[tuple[str, str, CourseLength, bool, str], ...] = (
    (
        "care-act",
        "Care Act",
        CourseLength.HALF_DAY,
        False,
        "This training session provides an overview and update of the Care Act 2014, in "
        "particular its application to mental health.",
    ),
    (
        "record-keeping",
        "Record Keeping and Report Writing",
        CourseLength.HALF_DAY,
        False,
        "This session provides best practice guidance on recording case notes and social work "
        "interventions.",
    ),
    (
        "cultural-sensitivity",
        "Cultural Sensitivity",
        CourseLength.HALF_DAY,
        False,
        "The session will provide an opportunity to explore different aspects of culture and "
        "how our own culture informs our understanding and approach to others.",
    ),
    (
        "mental-health-conditions",
        "Introduction to Mental Health Conditions",
        CourseLength.HALF_DAY,
        False,
        "This half day session will provide an overview of the different mental disorders.",
    ),
    (
        "personality-disorder",
        "Key Issues in Personality Disorder / Complex Needs",
        CourseLength.HALF_DAY,
        False,
        "This course aims to provide participants with a working knowledge of the diagnosis and "
        "symptoms of personality disorder.",
    ),
    (
        "experts-by-experience",
        "Experts by Experience",
        CourseLength.HALF_DAY,
        False,
        "Service users and experts by experience share their experiences of assessment and "
        "interventions within mental health services.",
    ),
    (
        "mca",
        "Mental Capacity Act in Practice",
        CourseLength.FULL_DAY,
        False,
        "This course aims to enable those working in adult social care to maximise their skills "
        "in implementing the Mental Capacity Act 2005 confidently.",
    ),
    (
        "risks-benefits",
        "Risks, Benefits and Decision Making",
        CourseLength.FULL_DAY,
        False,
        "This session will provide NQSWs with the practical skills in assessing and managing "
        "risks specific to mental health.",
    ),
    (
        "mha",
        "Mental Health Act",
        CourseLength.FULL_DAY,
        False,
        "This session will provide an overview of the Mental Health Act.",
    ),
    (
        "resilience",
        "Resilience and Wellbeing",
        CourseLength.HALF_DAY,
        True,
        "This session will provide a clear framework for boundary setting and identify what "
        "participants need for their own resilience in social work.",
    ),
    (
        "social-circumstances",
        "Social Circumstances Reports",
        CourseLength.HALF_DAY,
        True,
        "A workshop on writing social circumstances reports for Mental Health Tribunals and "
        "hospital managers' hearings.",
    ),
)


def published_programmes() -> Sequence[Programme]:
    """Return every published programme, newest year first."""
    return db.session.scalars(
        select(Programme).where(Programme.published.is_(True)).order_by(Programme.starts_on.desc())
    ).all()


def all_programmes() -> Sequence[Programme]:
    """Return every programme, newest year first."""
    return db.session.scalars(select(Programme).order_by(Programme.starts_on.desc())).all()


def current_programme(today: date | None = None) -> Programme | None:
    """Return the published programme running today, else the newest published one."""
    today = today or london_today()
    programmes = published_programmes()
    for programme in programmes:
        if programme.starts_on <= today <= programme.ends_on:
            return programme
    return programmes[0] if programmes else None


@dataclass(frozen=True)
class CatalogueGroup:
    """Courses of one length, as the catalogue shows them."""

    heading: str
    courses: list[Course]


def catalogue(programme: Programme) -> list[CatalogueGroup]:
    """Return the programme's courses grouped as the pack does: half day, full day, workshops."""
    courses = db.session.scalars(
        select(Course)
        .where(Course.programme_id == programme.id)
        .options(selectinload(Course.sessions))
        .order_by(Course.position, Course.title)
    ).all()
    groups = [
        CatalogueGroup(
            "Half-day courses",
            [c for c in courses if c.length is CourseLength.HALF_DAY and not c.optional],
        ),
        CatalogueGroup(
            "Full-day courses",
            [c for c in courses if c.length is CourseLength.FULL_DAY and not c.optional],
        ),
        CatalogueGroup("Optional workshops", [c for c in courses if c.optional]),
    ]
    return [g for g in groups if g.courses]


def programme_by_slug(slug: str, *, published_only: bool = True) -> Programme | None:
    """Return a programme by its URL slug."""
    query = select(Programme).where(Programme.slug == slug)
    if published_only:
        query = query.where(Programme.published.is_(True))
    return db.session.scalar(query)


def course_by_code(programme: Programme, code: str) -> Course | None:
    """Return a course of the programme by its code."""
    return db.session.scalar(
        select(Course).where(Course.programme_id == programme.id, Course.code == code)
    )


PROGRAMME_FIELDS = {
    "name", "slug", "host_name", "host_address", "host_email", "starts_on", "ends_on",
    "protected_days_per_week", "window_weeks", "cancellation_cutoff_working_days",
    "waitlist_hold_hours", "joining_info_days_before", "attendance_threshold_percent",
    "attendance_min_share_percent", "price_per_nqsw_pence", "vat_rate_basis_points",
    "invoice_prefix", "payment_terms_days",
}  # fmt: skip


def _check_programme(programme: Programme) -> None:
    if programme.ends_on <= programme.starts_on:
        raise InvalidInput("The programme must end after it starts.", field="ends_on")
    clash = db.session.scalar(
        select(Programme.id).where(Programme.slug == programme.slug, Programme.id != programme.id)
    )
    if clash is not None:
        raise InvalidInput(f"The short name '{programme.slug}' is taken.", field="slug")


def create_programme(**fields: object) -> Programme:
    """Create a programme year (unpublished until the coordinator publishes it)."""
    unknown = set(fields) - PROGRAMME_FIELDS
    if unknown:
        raise InvalidInput(f"Unknown programme field(s): {', '.join(sorted(unknown))}.")
    programme = Programme(**fields)
    # Checked before it joins the session, so a bad date or taken slug is a message, not a crash.
    _check_programme(programme)
    db.session.add(programme)
    db.session.commit()
    return programme


def update_programme(programme: Programme, **fields: object) -> Programme:
    """Change a programme's details or rules."""
    unknown = set(fields) - PROGRAMME_FIELDS
    if unknown:
        raise InvalidInput(f"Unknown programme field(s): {', '.join(sorted(unknown))}.")
    for key, value in fields.items():
        setattr(programme, key, value)
    try:
        # Without autoflush the check's query cannot trip the table's own constraints first.
        with db.session.no_autoflush:
            _check_programme(programme)
    except InvalidInput:
        db.session.rollback()
        raise
    db.session.commit()
    return programme


def set_published(programme: Programme, published: bool) -> Programme:
    """Publish or unpublish a programme's catalogue."""
    programme.published = published
    db.session.commit()
    return programme


def add_course(programme: Programme, **fields: object) -> Course:
    """Add a course to the programme's catalogue."""
    code = str(fields.get("code", "")).strip()
    if course_by_code(programme, code) is not None:
        raise InvalidInput(f"This programme already has a course '{code}'.", field="code")
    if "position" not in fields:
        fields["position"] = len(programme.courses)
    course = Course(programme=programme, **fields)
    db.session.add(course)
    db.session.commit()
    return course


def update_course(course: Course, **fields: object) -> Course:
    """Change a course's details."""
    code = fields.get("code")
    if (
        code is not None
        and code != course.code
        and course_by_code(course.programme, str(code)) is not None
    ):
        raise InvalidInput(f"This programme already has a course '{code}'.", field="code")
    for key, value in fields.items():
        setattr(course, key, value)
    db.session.commit()
    return course


def _check_session(course: Course, starts_at: datetime, ends_at: datetime, capacity: int) -> None:
    if ends_at <= starts_at:
        raise InvalidInput("The session must end after it starts.", field="end_time")
    programme = course.programme
    day = starts_at.astimezone(LONDON).date()
    if not programme.starts_on <= day <= programme.ends_on:
        raise InvalidInput(
            f"The date must be inside the programme year, {programme.starts_on:%-d %B %Y} "
            f"to {programme.ends_on:%-d %B %Y}.",
            field="date",
        )
    if capacity < 1:
        raise InvalidInput("A session needs at least 1 place.", field="capacity")


def add_session(
    course: Course,
    *,
    starts_at: datetime,
    ends_at: datetime,
    capacity: int,
    **fields: object,
) -> Session:
    """Schedule a dated session of a course."""
    _check_session(course, starts_at, ends_at, capacity)
    session = Session(
        course=course, starts_at=starts_at, ends_at=ends_at, capacity=capacity, **fields
    )
    db.session.add(session)
    db.session.commit()
    return session


# Changes to these fields are what a calendar or an attendee must hear about.
CALENDAR_FIELDS = {"starts_at", "ends_at", "joining_url", "mode", "status"}


def update_session(session: Session, **fields: object) -> Session:
    """Change a session; a change of time or place raises its calendar sequence."""
    starts_at = fields.get("starts_at", session.starts_at)
    ends_at = fields.get("ends_at", session.ends_at)
    assert isinstance(starts_at, datetime) and isinstance(ends_at, datetime)
    capacity = fields.get("capacity", session.capacity)
    assert isinstance(capacity, int)
    _check_session(session.course, starts_at, ends_at, capacity)
    if capacity < session.taken:
        raise InvalidInput(
            f"{session.taken} places are already taken; capacity cannot go below that.",
            field="capacity",
        )
    if session.status is SessionStatus.CANCELLED:
        raise InvalidInput("A cancelled session cannot be changed.")
    changed = {k for k, v in fields.items() if getattr(session, k) != v}
    for key in changed:
        setattr(session, key, fields[key])
    if changed & CALENDAR_FIELDS:
        session.touch()
        _tell_attendees_of_change(session, changed)
    db.session.commit()
    return session


def _tell_attendees_of_change(session: Session, changed: set[str]) -> None:
    for booking in session.bookings:
        if booking.status is BookingStatus.BOOKED:
            queue_invitation(
                "session_changed",
                booking.nqsw,
                session,
                f"Changed: {session.course.title}, {session.local_date:%a} "
                f"{session.local_date.day} {session.local_date:%b %Y}",
                cancel=session.is_cancelled,
                changed=sorted(changed),
            )


def seed_pack_courses(programme: Programme) -> list[Course]:
    """Add the programme pack's eleven courses to an empty programme."""
    if programme.courses:
        raise InvalidInput("This programme already has courses; add any others one by one.")
    courses = [
        Course(
            programme=programme,
            code=code,
            title=title,
            length=length,
            optional=optional,
            description=description,
            position=position,
        )
        for position, (code, title, length, optional, description) in enumerate(PACK_COURSES)
    ]
    db.session.add_all(courses)
    db.session.commit()
    return courses
