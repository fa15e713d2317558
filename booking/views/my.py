"""An NQSW's own training: book, cancel, move, wait and accept offers."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from wtforms import SelectChoice

from .. import allocation, attendance
from .. import bookings as service
from ..extensions import db
from ..forms import ConfirmForm, MoveForm
from ..models import NQSW, Booking, Course, Role, Session, WaitlistEntry
from . import form_status, require_role

bp = Blueprint("my", __name__, url_prefix="/my")


def _me() -> NQSW:
    nqsw = current_user.nqsw
    if nqsw is None:
        abort(403)
    return nqsw


def _own_booking(booking_id: int) -> Booking:
    booking = db.get_or_404(Booking, booking_id)
    if booking.nqsw_id != _me().id:
        abort(404)  # not 403: do not reveal that someone else's booking exists
    return booking


def _own_entry(entry_id: int) -> WaitlistEntry:
    entry = db.get_or_404(WaitlistEntry, entry_id)
    if entry.nqsw_id != _me().id:
        abort(404)
    return entry


@bp.get("/training")
@require_role(Role.NQSW)
def training() -> ResponseReturnValue:
    nqsw = _me()
    now = service.utcnow()
    plan = service.training_plan(nqsw, now=now)
    return render_template(
        "my/training.html",
        nqsw=nqsw,
        plan=plan,
        form=ConfirmForm(),
        past=attendance.started_outcomes([c.booking for c in plan.courses if c.booking], now=now),
        cancelled=service.cancelled_by_programme(nqsw),
        wanted=allocation.wanted_workshops(nqsw),
    )


def _refuse_if_started(booking: Booking) -> ResponseReturnValue | None:
    """Send a past booking back to the plan: it can no longer be cancelled or moved."""
    if booking.session.starts_at > service.utcnow():
        return None
    flash(
        f"{booking.session.course.title} on {booking.session.local_start:%A %-d %B %Y} "
        "has already started, so your place can no longer be cancelled or moved.",
        "info",
    )
    return redirect(url_for("my.training"))


@bp.post("/courses/<int:course_id>/want", defaults={"choice": "want"})
@bp.post("/courses/<int:course_id>/unwant", defaults={"choice": "unwant"})
@require_role(Role.NQSW)
def want(course_id: int, choice: str) -> ResponseReturnValue:
    course = db.get_or_404(Course, course_id)
    if ConfirmForm().validate_on_submit():
        wanted = choice == "want"
        allocation.set_workshop_wanted(_me(), course, wanted, by=current_user)
        flash(
            f"You have asked for a place on {course.title}."
            if wanted
            else f"You will not be given a place on {course.title}.",
            "success",
        )
    return redirect(url_for("my.training", _anchor=f"course-{course.code}"))


@bp.post("/sessions/<int:session_id>/book")
@require_role(Role.NQSW)
def book(session_id: int) -> ResponseReturnValue:
    session = db.get_or_404(Session, session_id)
    if ConfirmForm().validate_on_submit():
        service.book_place(_me(), session, by=current_user)
        flash(f"You are booked on {session.course.title}.", "success")
    return redirect(url_for("my.training"))


@bp.route("/bookings/<int:booking_id>/cancel", methods=["GET", "POST"])
@require_role(Role.NQSW)
def cancel(booking_id: int) -> ResponseReturnValue:
    booking = _own_booking(booking_id)
    if (refused := _refuse_if_started(booking)) is not None:
        return refused
    form = ConfirmForm()
    if form.validate_on_submit():
        service.cancel_booking(booking, by=current_user)
        message = f"Your place on {booking.session.course.title} is cancelled."
        if booking.late_cancellation:
            message += " This was inside the cancellation cut-off, so it is recorded as late."
        flash(message, "success")
        return redirect(url_for("my.training"))
    late = service.is_late(booking.session, service.utcnow())
    return render_template("my/cancel.html", booking=booking, form=form, late=late)


@bp.route("/bookings/<int:booking_id>/move", methods=["GET", "POST"])
@require_role(Role.NQSW)
def move(booking_id: int) -> ResponseReturnValue:
    booking = _own_booking(booking_id)
    if (refused := _refuse_if_started(booking)) is not None:
        return refused
    plan = service.training_plan(_me())
    item = next(c for c in plan.courses if c.course.id == booking.course_id)
    others = [s for s in item.options if s.id != booking.session_id]
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
        service.move_booking(booking, target, by=current_user)
        flash(f"Moved to {target.local_start:%A %-d %B %Y}.", "success")
        return redirect(url_for("my.training"))
    return render_template(
        "my/move.html",
        booking=booking,
        form=form,
        full=[s for s in others if s.places_left == 0],
        waiting={e.session_id for e in item.waiting},
    ), form_status(form)


@bp.post("/sessions/<int:session_id>/wait")
@require_role(Role.NQSW)
def wait(session_id: int) -> ResponseReturnValue:
    session = db.get_or_404(Session, session_id)
    if ConfirmForm().validate_on_submit():
        entry = service.join_waitlist(_me(), session)
        flash(
            f"You are number {service.waitlist_position(entry)} on the waiting list. "
            "We will email you if a place frees up.",
            "success",
        )
    return redirect(url_for("my.training"))


@bp.post("/waiting/<int:entry_id>/leave")
@require_role(Role.NQSW)
def leave(entry_id: int) -> ResponseReturnValue:
    entry = _own_entry(entry_id)
    if ConfirmForm().validate_on_submit():
        service.leave_waitlist(entry)
        flash("You have left the waiting list.", "success")
    return redirect(url_for("my.training"))


@bp.route("/offers/<int:entry_id>", methods=["GET", "POST"])
@require_role(Role.NQSW)
def offer(entry_id: int) -> ResponseReturnValue:
    entry = _own_entry(entry_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        service.accept_offer(entry)
        flash(f"You are booked on {entry.session.course.title}.", "success")
        return redirect(url_for("my.training"))
    return render_template("my/offer.html", entry=entry, form=form, now=service.utcnow())
