"""Attendance pages: registers and Teams imports, rates for NQSWs, employers and coordinators."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired
from wtforms import BooleanField, IntegerField, SelectField
from wtforms.validators import InputRequired, NumberRange

from .. import attendance as service
from .. import catalogue
from ..errors import ImportRejected
from ..extensions import db
from ..forms import ConfirmForm
from ..models import (
    LONDON,
    NQSW,
    AttendanceMark,
    AttendanceStatus,
    Course,
    Employer,
    JobRun,
    OutboxMessage,
    Programme,
    Role,
    Session,
    UnmatchedAttendee,
)
from . import form_status, refusals_shown_on, require_role

bp = Blueprint("attendance", __name__, url_prefix="/attendance")

SORTS = {"name": "Name", "rate": "Rate so far", "best": "Best reachable", "status": "Status"}


class FilterForm(FlaskForm):
    class Meta:
        csrf = False  # a GET form that changes nothing

    programme = SelectField("Programme", coerce=int)
    employer = SelectField("Employer", coerce=int)
    status = SelectField("Status")
    course = SelectField("Course", coerce=int)


class TeamsImportForm(FlaskForm):
    file = FileField(
        "Teams attendance report",
        validators=[
            FileRequired("Choose the attendance report downloaded from Teams"),
            FileAllowed(["csv", "tsv", "txt"], "The file must be a .csv, .tsv or .txt file"),
        ],
    )


class ResolveForm(FlaskForm):
    nqsw_id = SelectField("Who is this?", coerce=int)


class SettingsForm(FlaskForm):
    threshold = IntegerField(
        "Minimum attendance (%)",
        validators=[
            InputRequired("Enter the minimum attendance"),
            NumberRange(1, 100, "Enter a percentage from 1 to 100"),
        ],
    )
    min_share = IntegerField(
        "Share of a session that counts as attending it (%)",
        validators=[
            InputRequired("Enter the share of a session"),
            NumberRange(1, 100, "Enter a percentage from 1 to 100"),
        ],
    )
    late_counts = BooleanField("Arriving late counts as attending")
    apology_excuses = BooleanField("Absence with apology is left out of the rate")
    late_cancellation_missed = BooleanField("A late cancellation counts as a missed session")


def _programme() -> Programme:
    programme_id = request.args.get("programme", type=int)
    if programme_id:
        return db.get_or_404(Programme, programme_id)
    programme = catalogue.current_programme()
    if programme is None:
        programmes = catalogue.all_programmes()
        if not programmes:
            abort(404)
        programme = programmes[0]
    return programme


@dataclass(frozen=True)
class Filters:
    employer: Employer | None
    status: AttendanceStatus | None
    course: Course | None


def _filters(programme: Programme) -> tuple[FilterForm, Filters]:
    form = FilterForm(request.args)
    form.programme.choices = [(p.id, p.name) for p in catalogue.all_programmes()]
    form.programme.data = programme.id
    form.employer.choices = [(0, "All employers")] + [
        (e.id, e.name) for e in service.programme_employers(programme)
    ]
    form.status.choices = [("", "Any status")] + [(s.value, s.label) for s in AttendanceStatus]
    form.course.choices = [(0, "All courses")] + [(c.id, c.title) for c in programme.courses]
    employer = db.session.get(Employer, form.employer.data) if form.employer.data else None
    course = db.session.get(Course, form.course.data) if form.course.data else None
    if course is not None and course.programme_id != programme.id:
        course = None
    status = form.status.data if form.status.data in {s.value for s in AttendanceStatus} else ""
    return form, Filters(employer, AttendanceStatus(status) if status else None, course)


def _sort() -> tuple[str, bool]:
    sort = request.args.get("sort", "name")
    return (sort if sort in SORTS else "name"), request.args.get("dir") == "desc"


# --- NQSW ----------------------------------------------------------------------------


@bp.get("/me")
@require_role(Role.NQSW)
def mine() -> ResponseReturnValue:
    nqsw = current_user.nqsw
    if nqsw is None:
        abort(403)
    return render_template(
        "attendance/nqsw.html", item=service.nqsw_attendance(nqsw), own=True, back=None
    )


# --- Employer ------------------------------------------------------------------------


def _employer() -> Employer:
    employer = current_user.employer
    if employer is None:
        abort(403)
    return employer


@bp.get("/employer")
@require_role(Role.EMPLOYER_CONTACT)
def employer() -> ResponseReturnValue:
    own = _employer()
    sort, descending = _sort()
    programme = _programme()
    items = service.programme_attendance(programme, employer=own, sort=sort, descending=descending)
    return render_template(
        "attendance/employer.html",
        employer=own,
        programme=programme,
        items=items,
        sort=sort,
        descending=descending,
        sorts=SORTS,
    )


@bp.get("/employer/nqsws/<int:nqsw_id>")
@require_role(Role.EMPLOYER_CONTACT)
def employer_nqsw(nqsw_id: int) -> ResponseReturnValue:
    nqsw = db.get_or_404(NQSW, nqsw_id)
    if nqsw.employer_id != _employer().id:
        abort(404)
    return render_template(
        "attendance/nqsw.html",
        item=service.nqsw_attendance(nqsw),
        own=False,
        back=url_for("attendance.employer"),
    )


# --- Coordinator ---------------------------------------------------------------------


@bp.get("/")
@require_role(Role.COORDINATOR)
def overview() -> ResponseReturnValue:
    programme = _programme()
    form, filters = _filters(programme)
    sort, descending = _sort()
    items = service.programme_attendance(
        programme,
        employer=filters.employer,
        status=filters.status,
        course=filters.course,
        sort=sort,
        descending=descending,
    )
    return render_template(
        "attendance/overview.html",
        programme=programme,
        form=form,
        items=items,
        by_session=service.chart_by_session(items, filters.course),
        by_employer=service.chart_by_employer(items),
        sessions=service.programme_sessions(programme),
        sort=sort,
        descending=descending,
        sorts=SORTS,
        counts={s: sum(i.status is s for i in items) for s in AttendanceStatus},
    )


@bp.get("/nqsws/<int:nqsw_id>")
@require_role(Role.COORDINATOR)
def nqsw(nqsw_id: int) -> ResponseReturnValue:
    found = db.get_or_404(NQSW, nqsw_id)
    return render_template(
        "attendance/nqsw.html",
        item=service.nqsw_attendance(found),
        own=False,
        back=url_for("attendance.overview", programme=found.programme_id),
    )


@bp.get("/export/rates.csv")
@require_role(Role.COORDINATOR)
def export_rates() -> ResponseReturnValue:
    programme = _programme()
    _form, filters = _filters(programme)
    items = service.programme_attendance(
        programme, employer=filters.employer, status=filters.status, course=filters.course
    )
    return _csv(service.rates_csv(items), f"attendance-rates-{programme.slug}.csv")


@bp.get("/export/registers.csv")
@require_role(Role.COORDINATOR)
def export_registers() -> ResponseReturnValue:
    programme = _programme()
    return _csv(service.registers_csv(programme), f"registers-{programme.slug}.csv")


def _csv(body: str, filename: str) -> Response:
    return Response(
        body,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _resolve_form(entry: UnmatchedAttendee) -> ResolveForm:
    form = ResolveForm(prefix=f"u{entry.id}")
    form.nqsw_id.choices = [(0, "Not an NQSW: dismiss")] + [
        (n.id, f"{n.name} ({n.email})")
        for n in service.programme_nqsws(entry.session.course.programme_id)
    ]
    return form


def _register_page(
    session: Session,
    *,
    import_form: TeamsImportForm | None = None,
    problems: list[tuple[int, str]] | None = None,
    result: service.ImportResult | None = None,
    row_errors: dict[int, str] | None = None,
    submitted: dict[int, SubmittedRow] | None = None,
    status: int = 200,
) -> ResponseReturnValue:
    unmatched = service.unmatched_attendees(session)
    resolve_forms = {e.id: _resolve_form(e) for e in unmatched}
    opens = service.register_opens_at(session)
    return render_template(
        "attendance/register.html",
        session=session,
        rows=service.register_rows(session),
        history=service.register_history(session),
        marks=list(AttendanceMark),
        form=ConfirmForm(),
        import_form=import_form or TeamsImportForm(),
        problems=problems or [],
        result=result,
        unmatched=unmatched,
        kept_manual=service.kept_manual_marks(session),
        resolve_forms=resolve_forms,
        row_errors=row_errors or {},
        submitted=submitted or {},
        is_open=service.utcnow() >= opens and not session.is_cancelled,
        opens=opens,
        session_minutes=service.session_minutes(session),
    ), status


@bp.route("/sessions/<int:session_id>", methods=["GET", "POST"])
@require_role(Role.COORDINATOR)
def register(session_id: int) -> ResponseReturnValue:
    session = db.get_or_404(Session, session_id)
    if request.method == "GET" or not ConfirmForm().validate_on_submit():
        return _register_page(session)
    changes, row_errors, submitted = _read_register(session)
    row_errors = row_errors or service.mark_problems(session, changes)
    if row_errors:
        # Everything typed stays on the page, with each problem next to its row.
        return _register_page(session, row_errors=row_errors, submitted=submitted, status=400)
    saved = service.record_marks(session, changes, by=current_user)
    flash(f"Register saved: {saved} mark{'' if saved == 1 else 's'} changed.", "success")
    return redirect(url_for("attendance.register", session_id=session.id))


@dataclass(frozen=True)
class SubmittedRow:
    """One register row as the coordinator sent it, to show again if anything is refused."""

    mark: str
    minutes: str
    was: str
    version: str


def _read_register(
    session: Session,
) -> tuple[list[service.MarkChange], dict[int, str], dict[int, SubmittedRow]]:
    """Read the rows a coordinator changed; each row says which version it was loaded at."""
    changes: list[service.MarkChange] = []
    errors: dict[int, str] = {}
    submitted: dict[int, SubmittedRow] = {}
    for row in service.register_rows(session):
        nqsw_id = row.nqsw.id
        if f"was-{nqsw_id}" not in request.form:
            continue  # added to the register after this page was loaded
        mark_value = request.form.get(f"mark-{nqsw_id}", "")
        minutes_text = request.form.get(f"minutes-{nqsw_id}", "").strip()
        submitted[nqsw_id] = SubmittedRow(
            mark_value,
            minutes_text,
            request.form.get(f"was-{nqsw_id}", ""),
            request.form.get(f"version-{nqsw_id}", ""),
        )
        if request.form.get(f"was-{nqsw_id}") == f"{mark_value}|{minutes_text}":
            continue  # unchanged on this page
        if not mark_value:
            errors[nqsw_id] = f"Choose a mark for {row.nqsw.name}"
            continue
        if minutes_text and not minutes_text.isdigit():
            errors[nqsw_id] = f"Enter the minutes for {row.nqsw.name} as a whole number"
            continue
        version_text = request.form.get(f"version-{nqsw_id}", "")
        changes.append(
            service.MarkChange(
                nqsw_id,
                AttendanceMark(mark_value),
                int(minutes_text) if minutes_text else None,
                int(version_text) if version_text.isdigit() else None,
            )
        )
    return changes, errors, submitted


@bp.post("/sessions/<int:session_id>/import")
@require_role(Role.COORDINATOR)
def import_report(session_id: int) -> ResponseReturnValue:
    session = db.get_or_404(Session, session_id)
    form = TeamsImportForm()
    if not form.validate_on_submit():
        return _register_page(session, import_form=form, status=400)
    try:
        result = service.import_teams_report(session, form.file.data.read(), by=current_user)
    except ImportRejected as error:
        form.file.errors = [
            f"Nothing was imported: {len(error.problems)} line(s) need correcting (listed below)."
        ]
        return _register_page(session, import_form=form, problems=error.problems, status=400)
    flash(
        f"Teams report imported: {len(result.marked)} marked from the report, "
        f"{len(result.absent)} not in it, {len(result.unmatched)} not matched, "
        f"{len(result.kept_manual)} manual mark(s) kept.",
        "success",
    )
    return _register_page(session, result=result)


@bp.post("/unmatched/<int:entry_id>")
@require_role(Role.COORDINATOR)
def resolve(entry_id: int) -> ResponseReturnValue:
    entry = db.get_or_404(UnmatchedAttendee, entry_id)
    form = _resolve_form(entry)
    if form.validate_on_submit():
        chosen = db.session.get(NQSW, form.nqsw_id.data) if form.nqsw_id.data else None
        result = service.resolve_unmatched(entry, chosen, by=current_user)
        if chosen is None:
            flash(f"{entry.name} dismissed.", "success")
        elif result.kept_manual:
            flash(f"{entry.name} matched to {chosen.name}; their manual mark was kept.", "success")
        else:
            flash(f"{entry.name} matched to {chosen.name} and marked.", "success")
    else:
        flash("Choose who this person is, or dismiss them.", "error")
    return redirect(url_for("attendance.register", session_id=entry.session_id))


@bp.get("/alerts")
@require_role(Role.COORDINATOR)
def alerts() -> ResponseReturnValue:
    programme = _programme()
    return render_template(
        "attendance/alerts.html",
        programme=programme,
        messages=service.alert_messages(programme),
        form=ConfirmForm(),
        tz=LONDON,
        alerts_run=db.session.get(JobRun, "attendance_alerts"),
    )


@bp.post("/alerts/<int:message_id>/resend")
@require_role(Role.COORDINATOR)
def resend(message_id: int) -> ResponseReturnValue:
    message = db.get_or_404(OutboxMessage, message_id)
    if ConfirmForm().validate_on_submit():
        service.resend_alert(message)
        flash("The alert is queued to be sent again.", "success")
    return redirect(url_for("attendance.alerts", programme=request.args.get("programme")))


@bp.route("/settings", methods=["GET", "POST"])
@require_role(Role.COORDINATOR)
def settings() -> ResponseReturnValue:
    programme = _programme()
    current = service.settings_for(programme)
    form = SettingsForm(
        data={
            "threshold": programme.attendance_threshold_percent,
            "min_share": programme.attendance_min_share_percent,
            "late_counts": current.late_counts_as_attended,
            "apology_excuses": current.apology_excuses,
            "late_cancellation_missed": current.late_cancellation_counts_as_missed,
        }
        if request.method == "GET"
        else None
    )
    if form.validate_on_submit():
        with refusals_shown_on(form):
            service.update_settings(
                programme,
                threshold_percent=form.threshold.data or 0,
                min_share_percent=form.min_share.data or 0,
                late_counts_as_attended=form.late_counts.data,
                apology_excuses=form.apology_excuses.data,
                late_cancellation_counts_as_missed=form.late_cancellation_missed.data,
            )
            flash("Attendance settings saved.", "success")
            return redirect(url_for("attendance.overview", programme=programme.id))
    return render_template("attendance/settings.html", form=form, programme=programme), form_status(
        form
    )
