"""Enrolling NQSWs, one at a time or from an employer's CSV file."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select

from .accounts import create_user, normalise_email
from .bookings import live_bookings, release_booking
from .errors import ImportRejected, InvalidInput
from .extensions import db
from .models import NQSW, Employer, Programme, Role, User, utcnow
from .notifications import queue_message

CSV_COLUMNS = (
    "name",
    "email",
    "swe_number",
    "asye_start",
    "fte",
    "assessor_email",
    "line_manager_email",
)
SWE_NUMBER = re.compile(r"^SW\d{1,8}$")


@dataclass(frozen=True)
class Enrolment:
    """One validated NQSW to enrol."""

    name: str
    email: str
    swe_number: str
    asye_start: date
    fte: float
    assessor_email: str
    line_manager_email: str


def _email(value: str, label: str, *, required: bool = True) -> str:
    value = value.strip()
    if not value:
        if required:
            raise ValueError(f"{label} is missing")
        return ""
    try:
        return normalise_email(validate_email(value, check_deliverability=False).normalized)
    except EmailNotValidError:
        raise ValueError(f"{label} '{value}' is not a valid email address") from None


def _date(value: str) -> date:
    value = value.strip()
    for pattern in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(value, pattern).date()
        except ValueError:
            continue
    raise ValueError(f"ASYE start date '{value}' is not a date (use YYYY-MM-DD or DD/MM/YYYY)")


def _fte(value: str) -> float:
    value = value.strip() or "1"
    try:
        fte = float(value)
    except ValueError:
        raise ValueError(f"FTE '{value}' is not a number") from None
    if not 0 < fte <= 1:
        raise ValueError(f"FTE {value} must be more than 0 and at most 1")
    return round(fte, 2)


def parse_enrolment(raw: dict[str, str], programme: Programme) -> Enrolment:
    """Validate one NQSW's details; raise ValueError naming every problem found."""
    problems: list[str] = []

    def take(parse: Callable[[], object]) -> object:
        try:
            return parse()
        except ValueError as error:
            problems.append(str(error))
            return None

    name = (raw.get("name") or "").strip()
    if not name:
        problems.append("name is missing")
    email = take(lambda: _email(raw.get("email") or "", "email"))
    swe = (raw.get("swe_number") or "").strip().upper().replace(" ", "")
    if not SWE_NUMBER.match(swe):
        problems.append(
            f"Social Work England number '{raw.get('swe_number') or ''}' should look like SW123456"
        )
    start = take(lambda: _date(raw.get("asye_start") or ""))
    if isinstance(start, date) and not (
        date(programme.starts_on.year - 1, 1, 1) <= start <= programme.ends_on
    ):
        problems.append(f"ASYE start date {start:%d/%m/%Y} is not near this programme year")
    fte = take(lambda: _fte(raw.get("fte") or ""))
    assessor = take(
        lambda: _email(raw.get("assessor_email") or "", "assessor email", required=False)
    )
    manager = take(
        lambda: _email(raw.get("line_manager_email") or "", "line manager email", required=False)
    )
    if problems:
        raise ValueError("; ".join(problems))
    return Enrolment(
        name=name,
        email=str(email),
        swe_number=swe,
        asye_start=start,  # type: ignore[arg-type]
        fte=float(fte),  # type: ignore[arg-type]
        assessor_email=str(assessor),
        line_manager_email=str(manager),
    )


def _conflicts(enrolment: Enrolment) -> list[tuple[str, str]]:
    """Return (field, problem) for each clash with someone already enrolled."""
    problems = []
    if db.session.scalar(select(User.id).where(User.email == enrolment.email)) is not None:
        problems.append(("email", f"an account already exists for {enrolment.email}"))
    if (
        db.session.scalar(select(NQSW.id).where(NQSW.swe_number == enrolment.swe_number))
        is not None
    ):
        problems.append(
            ("swe_number", f"Social Work England number {enrolment.swe_number} is already enrolled")
        )
    return problems


def _add(employer: Employer, programme: Programme, enrolment: Enrolment) -> NQSW:
    user = create_user(enrolment.email, enrolment.name, Role.NQSW, employer=None)
    nqsw = NQSW(
        user=user,
        employer=employer,
        programme=programme,
        swe_number=enrolment.swe_number,
        asye_start=enrolment.asye_start,
        fte=enrolment.fte,
        assessor_email=enrolment.assessor_email,
        line_manager_email=enrolment.line_manager_email,
        enrolled_at=utcnow(),
    )
    db.session.add(nqsw)
    queue_message(
        "nqsw_enrolled",
        enrolment.email,
        f"Welcome to {programme.name}",
        nqsw=nqsw,
        programme=programme,
        employer=employer,
    )
    return nqsw


def enrol_nqsw(employer: Employer, programme: Programme, raw: dict[str, str]) -> NQSW:
    """Enrol one NQSW; raise InvalidInput naming the problem."""
    try:
        enrolment = parse_enrolment(raw, programme)
    except ValueError as error:
        raise InvalidInput(f"{error}.") from None
    for field, problem in _conflicts(enrolment):
        raise InvalidInput(problem[0].upper() + problem[1:] + ".", field=field)
    nqsw = _add(employer, programme, enrolment)
    db.session.commit()
    return nqsw


def read_csv(data: bytes) -> list[tuple[int, dict[str, str]]]:
    """Return (line number, row) pairs from CSV bytes; raise ImportRejected if unreadable."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportRejected([(1, "the file is not UTF-8 text; save it as CSV UTF-8")]) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise ImportRejected([(1, f"missing column(s): {', '.join(missing)}")])
    reader.fieldnames = header
    rows = []
    for row in reader:
        values = {k: (v or "") for k, v in row.items() if k is not None}
        if not any(v.strip() for v in values.values()):
            continue
        rows.append((reader.line_num, values))
    if not rows:
        raise ImportRejected([(1, "the file has no NQSW rows")])
    return rows


def import_csv(
    employer: Employer,
    programme: Programme,
    data: bytes,
    *,
    progress: Callable[[Iterable[tuple[int, dict[str, str]]]], Iterable[tuple[int, dict[str, str]]]]
    | None = None,
) -> list[NQSW]:
    """Enrol every row of a CSV file, or none: each bad row is reported with its line."""
    rows = read_csv(data)
    problems: list[tuple[int, str]] = []
    valid: list[Enrolment] = []
    seen_email: dict[str, int] = {}
    seen_swe: dict[str, int] = {}
    for line, row in progress(rows) if progress else rows:
        try:
            enrolment = parse_enrolment(row, programme)
        except ValueError as error:
            problems.append((line, str(error)))
            continue
        row_problems = [problem for _field, problem in _conflicts(enrolment)]
        if enrolment.email in seen_email:
            row_problems.append(f"email repeats line {seen_email[enrolment.email]}")
        if enrolment.swe_number in seen_swe:
            row_problems.append(
                f"Social Work England number repeats line {seen_swe[enrolment.swe_number]}"
            )
        seen_email.setdefault(enrolment.email, line)
        seen_swe.setdefault(enrolment.swe_number, line)
        if row_problems:
            problems.append((line, "; ".join(row_problems)))
        else:
            valid.append(enrolment)
    if problems:
        raise ImportRejected(problems)
    added = [_add(employer, programme, e) for e in valid]
    db.session.commit()
    return added


def withdraw_nqsw(nqsw: NQSW) -> NQSW:
    """Withdraw an NQSW and cancel their future bookings, all in one transaction."""
    if nqsw.withdrawn_at is not None:
        raise InvalidInput(f"{nqsw.name} has already been withdrawn.")
    now = utcnow()
    for booking in live_bookings(nqsw):
        if booking.session.starts_at > now:
            release_booking(booking, now=now)
    nqsw.withdrawn_at = now
    db.session.commit()
    return nqsw


def update_nqsw(nqsw: NQSW, raw: dict[str, str]) -> NQSW:
    """Change an NQSW's start date, FTE and assessor or manager addresses."""
    try:
        nqsw.asye_start = _date(raw["asye_start"]) if raw.get("asye_start") else nqsw.asye_start
        nqsw.fte = _fte(raw["fte"]) if raw.get("fte") else nqsw.fte
        nqsw.assessor_email = _email(
            raw.get("assessor_email", ""), "assessor email", required=False
        )
        nqsw.line_manager_email = _email(
            raw.get("line_manager_email", ""), "line manager email", required=False
        )
    except ValueError as error:
        db.session.rollback()
        raise InvalidInput(f"{error}.") from None
    db.session.commit()
    return nqsw
