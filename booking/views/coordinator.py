"""The coordinator's pages: programmes, courses, sessions, employers, NQSWs and the outbox."""

from __future__ import annotations

import re
import secrets
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user
from flask_wtf import FlaskForm
from markupsafe import Markup, escape
from wtforms import SelectChoice

from .. import (
    accounts,
    allocation,
    attendance,
    bookings,
    catalogue,
    enrolment,
    jobs,
    notifications,
    outreach,
    oversight,
)
from ..audit.services import record
from ..errors import BookingError
from ..extensions import db
from ..forms import (
    BookForSomeoneForm,
    CancelSessionForm,
    ConfirmForm,
    ContactForm,
    CourseForm,
    EmployerForm,
    MoveForm,
    NQSWDetailsForm,
    ProgrammeForm,
    SessionForm,
    SessionMessageForm,
)
from ..models import (
    LONDON,
    NQSW,
    Booking,
    BookingSource,
    Course,
    CourseLength,
    Employer,
    EmployerOption,
    MessageAudience,
    MessageStatus,
    OutboxMessage,
    Programme,
    Role,
    Session,
    london_to_utc,
)
from . import attach_error, form_status, refusals_shown_on, require_role

bp = Blueprint("coordinator", __name__, url_prefix="/coordinator")


@bp.before_request
@require_role(Role.COORDINATOR)
def _coordinators_only() -> None:
    """Let only coordinators reach any page of this blueprint."""


LINK = re.compile(r"https?://[^\s<>\"']+")
TRAILING = ".,;:!?)]"


def linkify(text: str) -> Markup:
    """Escape plain text and turn its web addresses into links."""
    parts: list[str] = []
    position = 0
    for match in LINK.finditer(text):
        # A sentence's closing punctuation is not part of the address it ends with.
        url = match.group().rstrip(TRAILING)
        end = match.start() + len(url)
        parts += [
            escape(text[position : match.start()]),
            f'<a href="{escape(url)}">{escape(url)}</a>',
        ]
        position = end
    parts.append(escape(text[position:]))
    return Markup("".join(str(p) for p in parts))


@bp.context_processor
def _page_helpers() -> dict[str, Any]:
    # Times are stored in UTC; every coordinator page shows them in UK time.
    return {"LONDON": LONDON, "linkify": linkify}


def _form_page(form: FlaskForm, *, title: str, submit: str, back: str, **context: Any) -> Any:
    return render_template(
        "coordinator/form.html", form=form, title=title, submit=submit, back=back, **context
    ), form_status(form)


# Dashboard -------------------------------------------------------------------------------


@bp.get("/")
def dashboard() -> ResponseReturnValue:
    programmes = catalogue.all_programmes()
    return render_template(
        "coordinator/dashboard.html",
        programmes=[(p, oversight.programme_counts(p)) for p in programmes],
        outbox=oversight.outbox_counts(),
    )


# Employers -------------------------------------------------------------------------------


@bp.get("/employers/")
def employers() -> ResponseReturnValue:
    return render_template("coordinator/employers.html", employers=oversight.employers())


def _employer_fields(form: EmployerForm) -> dict[str, Any]:
    return {
        "name": form.name.data or "",
        "option": EmployerOption(form.option.data),
        "billing_name": form.billing_name.data or "",
        "billing_email": form.billing_email.data or "",
        "billing_address": form.billing_address.data or "",
        "po_number": form.po_number.data or "",
        "po_required": bool(form.po_required.data),
    }


@bp.route("/employers/new", methods=["GET", "POST"])
def register_employer() -> ResponseReturnValue:
    form = EmployerForm()
    if form.validate_on_submit():
        with refusals_shown_on(form):
            employer = accounts.register_employer(**_employer_fields(form))
            flash(f"{employer.name} is registered.", "success")
            return redirect(url_for("coordinator.employer", employer_id=employer.id))
    return _form_page(
        form,
        title="Register an employer",
        submit="Register the employer",
        back=url_for("coordinator.employers"),
    )


@bp.get("/employers/<int:employer_id>")
def employer(employer_id: int) -> ResponseReturnValue:
    found = db.get_or_404(Employer, employer_id)
    return render_template(
        "coordinator/employer.html", employer=found, nqsws=oversight.employer_nqsws(found)
    )


@bp.route("/employers/<int:employer_id>/edit", methods=["GET", "POST"])
def edit_employer(employer_id: int) -> ResponseReturnValue:
    found = db.get_or_404(Employer, employer_id)
    form = EmployerForm(obj=found, data={"option": found.option.value})
    if form.validate_on_submit():
        with refusals_shown_on(form):
            accounts.update_employer(found, **_employer_fields(form))
            flash(f"{found.name}'s details are saved.", "success")
            return redirect(url_for("coordinator.employer", employer_id=found.id))
    return _form_page(
        form,
        title=f"Change {found.name}'s details",
        submit="Save changes",
        back=url_for("coordinator.employer", employer_id=found.id),
    )


@bp.route("/employers/<int:employer_id>/contacts/new", methods=["GET", "POST"])
def invite_contact(employer_id: int) -> ResponseReturnValue:
    found = db.get_or_404(Employer, employer_id)
    form = ContactForm()
    if form.validate_on_submit():
        with refusals_shown_on(form):
            user = accounts.invite_contact(
                found, email=form.email.data or "", name=form.name.data or ""
            )
            flash(
                f"{user.name} is invited and has been sent a sign-in link (see the outbox).",
                "success",
            )
            return redirect(url_for("coordinator.employer", employer_id=found.id))
    return _form_page(
        form,
        title=f"Invite a contact for {found.name}",
        submit="Send the invitation",
        back=url_for("coordinator.employer", employer_id=found.id),
        intro="They get an account and an email with a single-use sign-in link.",
    )


# Programme years -------------------------------------------------------------------------


@bp.get("/programmes/")
def programmes() -> ResponseReturnValue:
    return render_template("coordinator/programmes.html", programmes=catalogue.all_programmes())


def _programme_fields(form: ProgrammeForm) -> dict[str, Any]:
    fields = {
        name: field.data
        for name, field in form._fields.items()
        if name != "csrf_token" and name in catalogue.PROGRAMME_FIELDS
    }
    fields["protected_days_per_week"] = float(form.protected_days_per_week.data or 0)
    fields["host_email"] = fields.get("host_email") or ""
    fields["host_address"] = fields.get("host_address") or ""
    return fields


@bp.route("/programmes/new", methods=["GET", "POST"])
def create_programme() -> ResponseReturnValue:
    form = ProgrammeForm()
    if form.validate_on_submit():
        with refusals_shown_on(form):
            programme = catalogue.create_programme(**_programme_fields(form))
            flash(f"{programme.name} is created. Add its courses, then publish it.", "success")
            return redirect(url_for("coordinator.programme", programme_id=programme.id))
    return _form_page(
        form,
        title="Create a programme year",
        submit="Create the programme year",
        back=url_for("coordinator.programmes"),
    )


@bp.get("/programmes/<int:programme_id>")
def programme(programme_id: int) -> ResponseReturnValue:
    found = db.get_or_404(Programme, programme_id)
    return render_template(
        "coordinator/programme.html",
        programme=found,
        counts=oversight.programme_counts(found),
        form=ConfirmForm(),
    )


@bp.route("/programmes/<int:programme_id>/edit", methods=["GET", "POST"])
def edit_programme(programme_id: int) -> ResponseReturnValue:
    found = db.get_or_404(Programme, programme_id)
    form = ProgrammeForm(obj=found)
    if form.validate_on_submit():
        with refusals_shown_on(form):
            catalogue.update_programme(found, **_programme_fields(form))
            flash(f"{found.name} is saved.", "success")
            return redirect(url_for("coordinator.programme", programme_id=found.id))
    return _form_page(
        form,
        title=f"Change {found.name}",
        submit="Save changes",
        back=url_for("coordinator.programme", programme_id=found.id),
    )


@bp.post("/programmes/<int:programme_id>/publish")
def publish(programme_id: int) -> ResponseReturnValue:
    found = db.get_or_404(Programme, programme_id)
    if ConfirmForm().validate_on_submit():
        catalogue.set_published(found, True)
        flash(f"{found.name} is published: its catalogue is public.", "success")
    return redirect(url_for("coordinator.programme", programme_id=found.id))


@bp.post("/programmes/<int:programme_id>/unpublish")
def unpublish(programme_id: int) -> ResponseReturnValue:
    found = db.get_or_404(Programme, programme_id)
    if ConfirmForm().validate_on_submit():
        catalogue.set_published(found, False)
        flash(f"{found.name} is no longer published.", "success")
    return redirect(url_for("coordinator.programme", programme_id=found.id))


@bp.post("/programmes/<int:programme_id>/seed-courses")
def seed_courses(programme_id: int) -> ResponseReturnValue:
    found = db.get_or_404(Programme, programme_id)
    if ConfirmForm().validate_on_submit():
        added = catalogue.seed_pack_courses(found)
        flash(f"Added the programme pack's {len(added)} courses.", "success")
    return redirect(url_for("coordinator.programme", programme_id=found.id))


# Courses ---------------------------------------------------------------------------------


def _course_fields(form: CourseForm) -> dict[str, Any]:
    return {
        "code": form.code.data or "",
        "title": form.title.data or "",
        "description": form.description.data or "",
        "length": CourseLength(form.length.data),
        "optional": bool(form.optional.data),
    }


@bp.route("/programmes/<int:programme_id>/courses/new", methods=["GET", "POST"])
def add_course(programme_id: int) -> ResponseReturnValue:
    found = db.get_or_404(Programme, programme_id)
    form = CourseForm()
    if form.validate_on_submit():
        with refusals_shown_on(form):
            course = catalogue.add_course(found, **_course_fields(form))
            flash(f"{course.title} is added.", "success")
            return redirect(url_for("coordinator.programme", programme_id=found.id))
    return _form_page(
        form,
        title=f"Add a course to {found.name}",
        submit="Add the course",
        back=url_for("coordinator.programme", programme_id=found.id),
    )


@bp.route("/courses/<int:course_id>/edit", methods=["GET", "POST"])
def edit_course(course_id: int) -> ResponseReturnValue:
    course = db.get_or_404(Course, course_id)
    form = CourseForm(obj=course, data={"length": course.length.value})
    if form.validate_on_submit():
        with refusals_shown_on(form):
            catalogue.update_course(course, **_course_fields(form))
            flash(f"{course.title} is saved.", "success")
            return redirect(url_for("coordinator.programme", programme_id=course.programme_id))
    return _form_page(
        form,
        title=f"Change {course.title}",
        submit="Save changes",
        back=url_for("coordinator.programme", programme_id=course.programme_id),
    )


# Sessions --------------------------------------------------------------------------------


def _session_fields(form: SessionForm) -> dict[str, Any]:
    assert form.date.data and form.start_time.data and form.end_time.data
    return {
        "starts_at": london_to_utc(form.date.data, form.start_time.data),
        "ends_at": london_to_utc(form.date.data, form.end_time.data),
        "capacity": int(form.capacity.data or 0),
        "mode": form.mode.data or "",
        "region": (form.region.data or "").strip() or None,
        "joining_url": form.joining_url.data or "",
        "materials_url": form.materials_url.data or "",
        "facilitator": form.facilitator.data or "",
    }


@bp.route("/courses/<int:course_id>/sessions/new", methods=["GET", "POST"])
def add_session(course_id: int) -> ResponseReturnValue:
    course = db.get_or_404(Course, course_id)
    form = SessionForm()
    if form.validate_on_submit():
        with refusals_shown_on(form):
            session = catalogue.add_session(course, **_session_fields(form))
            flash(f"{course.title} on {session.local_start:%-d %B %Y} is scheduled.", "success")
            return redirect(url_for("coordinator.session", session_id=session.id))
    return _form_page(
        form,
        title=f"Schedule a date for {course.title}",
        submit="Schedule the session",
        back=url_for("coordinator.programme", programme_id=course.programme_id),
    )


def _session_page(session: Session, form: BookForSomeoneForm) -> Any:
    return render_template(
        "coordinator/session.html",
        session=session,
        bookings=oversight.session_bookings(session),
        waiting=oversight.session_waitlist(session),
        messages=outreach.session_messages(session),
        form=form,
        confirm=ConfirmForm(),
    ), form_status(form)


def _book_form(session: Session) -> BookForSomeoneForm:
    form = BookForSomeoneForm()
    form.nqsw_id.choices = [SelectChoice(0, "Choose an NQSW")] + [
        SelectChoice(n.id, f"{n.name} ({n.employer.name})")
        for n in oversight.bookable_nqsws(session)
    ]
    return form


@bp.get("/sessions/<int:session_id>")
def session(session_id: int) -> ResponseReturnValue:
    found = db.get_or_404(Session, session_id)
    return _session_page(found, _book_form(found))


@bp.post("/sessions/<int:session_id>/book")
def book_for_someone(session_id: int) -> ResponseReturnValue:
    found = db.get_or_404(Session, session_id)
    form = _book_form(found)
    if form.validate_on_submit():
        nqsw = db.session.get(NQSW, form.nqsw_id.data) if form.nqsw_id.data else None
        if nqsw is None:
            form.nqsw_id.errors = ["Choose an NQSW"]
        else:
            try:
                booking = bookings.book_place(
                    nqsw,
                    found,
                    by=current_user,
                    source=BookingSource.COORDINATOR,
                    override_reason=form.override_reason.data or "",
                )
            except BookingError as error:
                db.session.rollback()
                if error.overridable:
                    error = BookingError(
                        f"{error.message} To book {nqsw.name} anyway, say why in the reason "
                        "for an exception.",
                        field="override_reason",
                    )
                attach_error(form, error)
            else:
                exception = " as an exception" if booking.override_reason else ""
                flash(f"{nqsw.name} is booked on this session{exception}.", "success")
                return redirect(url_for("coordinator.session", session_id=found.id))
    return _session_page(found, form)


@bp.route("/sessions/<int:session_id>/edit", methods=["GET", "POST"])
def edit_session(session_id: int) -> ResponseReturnValue:
    found = db.get_or_404(Session, session_id)
    if found.is_cancelled:
        flash("A cancelled session cannot be changed.", "error")
        return redirect(url_for("coordinator.session", session_id=found.id))
    form = SessionForm(
        obj=found,
        data={
            "date": found.local_date,
            "start_time": found.local_start.time(),
            "end_time": found.local_end.time(),
            "region": found.region or "",
        },
    )
    if form.validate_on_submit():
        with refusals_shown_on(form):
            catalogue.update_session(found, **_session_fields(form))
            flash("The session is saved. Anyone booked is told of a new time or link.", "success")
            return redirect(url_for("coordinator.session", session_id=found.id))
    return _form_page(
        form,
        title=f"Change {found.course.title} on {found.local_start:%-d %B %Y}",
        submit="Save changes",
        back=url_for("coordinator.session", session_id=found.id),
        intro="If you change the time, mode or joining link, everyone booked is emailed "
        "and their calendars update.",
    )


@bp.route("/sessions/<int:session_id>/cancel", methods=["GET", "POST"])
def cancel_session(session_id: int) -> ResponseReturnValue:
    found = db.get_or_404(Session, session_id)
    form = CancelSessionForm()
    if form.validate_on_submit():
        with refusals_shown_on(form):
            told = bookings.cancel_session(found, reason=form.reason.data or "", by=current_user)
            people = (
                "nobody was booked or waiting"
                if not told
                else ("1 person was told" if told == 1 else f"{told} people were told")
            )
            flash(f"The session is cancelled; {people}.", "success")
            return redirect(url_for("coordinator.session", session_id=found.id))
    return _form_page(
        form,
        title=f"Cancel {found.course.title} on {found.local_start:%-d %B %Y}",
        submit="Cancel the session",
        back=url_for("coordinator.session", session_id=found.id),
        intro="Everyone booked and everyone on the waiting list is emailed with your reason "
        "and the course's other dates.",
        warning=True,
    )


@bp.route("/sessions/<int:session_id>/message", methods=["GET", "POST"])
def message_session(session_id: int) -> ResponseReturnValue:
    found = db.get_or_404(Session, session_id)
    form = SessionMessageForm()
    sizes = outreach.audience_sizes(found)
    form.audience.choices = [
        SelectChoice(a.value, f"{a.label} ({sizes[a]})") for a in MessageAudience
    ]
    if request.method == "GET":
        form.form_token.data = secrets.token_urlsafe(24)
    if form.validate_on_submit():
        with refusals_shown_on(form):
            sent = outreach.message_session(
                found,
                audience=MessageAudience(form.audience.data),
                subject=form.subject.data or "",
                body=form.body.data or "",
                by=current_user,
                form_token=form.form_token.data or "",
            )
            people = "1 person" if sent.recipients == 1 else f"{sent.recipients} people"
            flash(f"Your message is in the outbox for {people}.", "success")
            return redirect(url_for("coordinator.session", session_id=found.id))
    return render_template(
        "coordinator/session_message.html", session=found, form=form
    ), form_status(form)


@bp.get("/sessions/<int:session_id>/sign-in-sheet")
def sign_in_sheet(session_id: int) -> ResponseReturnValue:
    found = db.get_or_404(Session, session_id)
    return render_template(
        "coordinator/sign_in_sheet.html", session=found, bookings=outreach.attendees(found)
    )


@bp.get("/sessions/<int:session_id>/attendees.csv")
def attendees_csv(session_id: int) -> ResponseReturnValue:
    found = db.get_or_404(Session, session_id)
    name = f"attendees-{found.course.code}-{found.local_date.isoformat()}.csv"
    return Response(
        outreach.attendee_csv(found),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.get("/courses/<int:course_id>/needs")
def still_needs(course_id: int) -> ResponseReturnValue:
    course = db.get_or_404(Course, course_id)
    return render_template(
        "coordinator/still_needs.html",
        course=course,
        needs=outreach.still_needs(course),
        form=ConfirmForm(),
    )


@bp.post("/courses/<int:course_id>/needs/<int:nqsw_id>/offer")
def offer_next_date(course_id: int, nqsw_id: int) -> ResponseReturnValue:
    course = db.get_or_404(Course, course_id)
    found = db.get_or_404(NQSW, nqsw_id)
    if ConfirmForm().validate_on_submit():
        try:
            entry = outreach.offer_next_date(course, found, by=current_user)
        except BookingError as error:
            db.session.rollback()
            flash(error.message, "error")
        else:
            assert entry.offer_expires_at is not None
            flash(
                f"{found.name} is offered {course.title} on "
                f"{entry.session.local_start:%A %-d %B}; the place is held for them until "
                f"{entry.offer_expires_at.astimezone(LONDON):%H:%M on %-d %B}.",
                "success",
            )
    return redirect(url_for("coordinator.still_needs", course_id=course.id))


@bp.post("/courses/<int:course_id>/needs/offer-all")
def offer_everyone(course_id: int) -> ResponseReturnValue:
    course = db.get_or_404(Course, course_id)
    if ConfirmForm().validate_on_submit():
        offered, refused = 0, []
        for need in outreach.still_needs(course):
            if need.offer is not None:
                continue
            try:
                outreach.offer_next_date(course, need.nqsw, by=current_user)
                offered += 1
            except BookingError as error:
                db.session.rollback()
                refused.append(f"{need.nqsw.name}: {error.message}")
        message = f"{offered} offer{'' if offered == 1 else 's'} sent."
        if refused:
            message += " Not offered: " + " ".join(refused)
        flash(message, "error" if refused else "success")
    return redirect(url_for("coordinator.still_needs", course_id=course.id))


# NQSWs -----------------------------------------------------------------------------------


@bp.get("/programmes/<int:programme_id>/nqsws")
def nqsws(programme_id: int) -> ResponseReturnValue:
    found = db.get_or_404(Programme, programme_id)
    employer_id = request.args.get("employer", type=int)
    return render_template(
        "coordinator/nqsws.html",
        programme=found,
        nqsws=oversight.programme_nqsws(found, employer_id=employer_id),
        employers=oversight.employers(),
        employer_id=employer_id,
    )


@bp.get("/nqsws/<int:nqsw_id>")
def nqsw(nqsw_id: int) -> ResponseReturnValue:
    found = db.get_or_404(NQSW, nqsw_id)
    now = bookings.utcnow()
    plan = bookings.training_plan(found, now=now)
    return render_template(
        "coordinator/nqsw.html",
        nqsw=found,
        plan=plan,
        form=ConfirmForm(),
        past=attendance.started_outcomes([c.booking for c in plan.courses if c.booking], now=now),
        cancelled=bookings.cancelled_by_programme(found),
        wanted=allocation.wanted_workshops(found),
        avoided=allocation.avoided_sessions(found),
    )


def _refuse_if_started(booking: Booking) -> ResponseReturnValue | None:
    """Send a past booking back to the NQSW's page: it can no longer be cancelled or moved."""
    if booking.session.starts_at > bookings.utcnow():
        return None
    flash(
        f"{booking.session.course.title} on {booking.session.local_start:%A %-d %B %Y} has "
        f"already started, so {booking.nqsw.name}'s place can no longer be cancelled or moved. "
        "Record what happened on the register.",
        "info",
    )
    return redirect(url_for("coordinator.nqsw", nqsw_id=booking.nqsw_id))


@bp.post("/nqsws/<int:nqsw_id>/workshops/<int:course_id>/want", defaults={"choice": "want"})
@bp.post("/nqsws/<int:nqsw_id>/workshops/<int:course_id>/unwant", defaults={"choice": "unwant"})
def want_workshop(nqsw_id: int, course_id: int, choice: str) -> ResponseReturnValue:
    found = db.get_or_404(NQSW, nqsw_id)
    course = db.get_or_404(Course, course_id)
    if ConfirmForm().validate_on_submit():
        wanted = choice == "want"
        allocation.set_workshop_wanted(found, course, wanted, by=current_user)
        flash(
            f"{found.name} {'will' if wanted else 'will not'} be placed on {course.title}"
            " when places are allocated.",
            "success",
        )
    return redirect(url_for("coordinator.nqsw", nqsw_id=found.id, _anchor=f"course-{course.code}"))


@bp.post("/nqsws/<int:nqsw_id>/avoided/clear")
def clear_avoided(nqsw_id: int) -> ResponseReturnValue:
    found = db.get_or_404(NQSW, nqsw_id)
    if ConfirmForm().validate_on_submit():
        allocation.clear_avoided(found, by=current_user)
        flash(f"Allocation may now offer {found.name} any date again.", "success")
    return redirect(url_for("coordinator.nqsw", nqsw_id=found.id))


@bp.route("/nqsws/<int:nqsw_id>/edit", methods=["GET", "POST"])
def edit_nqsw(nqsw_id: int) -> ResponseReturnValue:
    found = db.get_or_404(NQSW, nqsw_id)
    form = NQSWDetailsForm(obj=found)
    if form.validate_on_submit():
        raw = {
            name: str(field.data or "")
            for name, field in form._fields.items()
            if name != "csrf_token"
        }
        with refusals_shown_on(form):
            enrolment.update_nqsw(found, raw)
            flash(f"{found.name}'s details are saved.", "success")
            return redirect(url_for("coordinator.nqsw", nqsw_id=found.id))
    return _form_page(
        form,
        title=f"Change {found.name}'s details",
        submit="Save changes",
        back=url_for("coordinator.nqsw", nqsw_id=found.id),
    )


@bp.post("/nqsws/<int:nqsw_id>/sessions/<int:session_id>/book")
def book_nqsw(nqsw_id: int, session_id: int) -> ResponseReturnValue:
    found = db.get_or_404(NQSW, nqsw_id)
    target = db.get_or_404(Session, session_id)
    if ConfirmForm().validate_on_submit():
        # A refusal becomes a flashed message through the app's BookingError handler.
        bookings.book_place(found, target, by=current_user, source=BookingSource.COORDINATOR)
        flash(f"{found.name} is booked on {target.course.title}.", "success")
    return redirect(url_for("coordinator.nqsw", nqsw_id=found.id))


@bp.route("/bookings/<int:booking_id>/move", methods=["GET", "POST"])
def move_booking(booking_id: int) -> ResponseReturnValue:
    booking = db.get_or_404(Booking, booking_id)
    if (refused := _refuse_if_started(booking)) is not None:
        return refused
    plan = bookings.training_plan(booking.nqsw)
    options = next(c.options for c in plan.courses if c.course.id == booking.course_id)
    others = [s for s in options if s.id != booking.session_id]
    form = MoveForm()
    form.session_id.choices = [
        SelectChoice(
            s.id,
            f"{s.local_start:%A %-d %B %Y, %H:%M}–{s.local_end:%H:%M}"
            f" ({s.places_left} places left)",
        )
        for s in others
        if s.places_left > 0
    ]
    if form.validate_on_submit():
        target = db.get_or_404(Session, form.session_id.data)
        with refusals_shown_on(form):
            bookings.move_booking(
                booking, target, by=current_user, source=BookingSource.COORDINATOR
            )
            flash(f"Moved to {target.local_start:%A %-d %B %Y}.", "success")
            return redirect(url_for("coordinator.nqsw", nqsw_id=booking.nqsw_id))
    return render_template(
        "coordinator/move.html",
        booking=booking,
        form=form,
        full=[s for s in others if s.places_left == 0],
    ), form_status(form)


@bp.route("/bookings/<int:booking_id>/cancel", methods=["GET", "POST"])
def cancel_booking(booking_id: int) -> ResponseReturnValue:
    booking = db.get_or_404(Booking, booking_id)
    if (refused := _refuse_if_started(booking)) is not None:
        return refused
    form = ConfirmForm()
    if form.validate_on_submit():
        bookings.cancel_booking(booking, by=current_user)
        message = f"{booking.nqsw.name}'s place on {booking.session.course.title} is cancelled."
        if booking.late_cancellation:
            message += " It was inside the cancellation cut-off, so it is recorded as late."
        flash(message, "success")
        return redirect(url_for("coordinator.nqsw", nqsw_id=booking.nqsw_id))
    late = bookings.is_late(booking.session, bookings.utcnow())
    return render_template("coordinator/cancel_booking.html", booking=booking, form=form, late=late)


@bp.route("/nqsws/<int:nqsw_id>/withdraw", methods=["GET", "POST"])
def withdraw_nqsw(nqsw_id: int) -> ResponseReturnValue:
    found = db.get_or_404(NQSW, nqsw_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        enrolment.withdraw_nqsw(found)
        flash(f"{found.name} is withdrawn; their future bookings are cancelled.", "success")
        return redirect(url_for("coordinator.nqsw", nqsw_id=found.id))
    return render_template("coordinator/withdraw.html", nqsw=found, form=form)


# Outbox ----------------------------------------------------------------------------------


@bp.get("/outbox/")
def outbox() -> ResponseReturnValue:
    status = request.args.get("status")
    chosen = MessageStatus(status) if status in {s.value for s in MessageStatus} else None
    kinds = oversight.outbox_kinds()
    kind = request.args.get("kind", "")
    recipient = request.args.get("to", "")[:200]
    found = oversight.outbox_page(
        status=chosen,
        kind=kind if kind in kinds else "",
        recipient=recipient,
        page=request.args.get("page", 1, type=int) or 1,
    )
    return render_template(
        "coordinator/outbox.html",
        found=found,
        messages=found.messages,
        counts=oversight.outbox_counts(),
        chosen=chosen,
        kinds=kinds,
        kind=kind if kind in kinds else "",
        recipient=recipient,
    )


@bp.get("/outbox/<int:message_id>")
def message(message_id: int) -> ResponseReturnValue:
    found = db.get_or_404(OutboxMessage, message_id)
    return render_template("coordinator/message.html", message=found, form=ConfirmForm())


@bp.post("/outbox/<int:message_id>/resend")
def resend(message_id: int) -> ResponseReturnValue:
    found = db.get_or_404(OutboxMessage, message_id)
    if found.status is MessageStatus.PENDING:
        flash("This message is already waiting to be sent.", "info")
    elif ConfirmForm().validate_on_submit():
        notifications.resend(found)
        flash("The message is back in the queue and will be sent again.", "success")
    return redirect(url_for("coordinator.message", message_id=found.id))


# Periodic jobs ---------------------------------------------------------------------------


@bp.get("/jobs/")
def job_list() -> ResponseReturnValue:
    return render_template("coordinator/jobs.html", states=jobs.job_states(), form=ConfirmForm())


@bp.post("/jobs/<name>/run")
def run_job(name: str) -> ResponseReturnValue:
    job = jobs.find_job(name)
    if job is None:
        abort(404)
    if ConfirmForm().validate_on_submit():
        outcome = jobs.run_job(name, trigger=f"coordinator {current_user.id}", force=True)
        if outcome is None:
            flash(
                f"“{job.title}” is running in the worker right now; it was not run twice.", "info"
            )
        else:
            record(
                "job.run",
                ("job_run", None),
                actor=current_user,
                after={"job": name, "ok": outcome.ok},
            )
            db.session.commit()
            if outcome.ok:
                flash(f"“{job.title}” ran: {outcome.result}", "success")
            else:
                flash(f"“{job.title}” failed: {outcome.error}", "error")
    return redirect(url_for("coordinator.job_list"))
