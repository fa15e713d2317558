"""An employer contact's view of their NQSWs: enrol one, or many from a CSV file."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from .. import catalogue, enrolment
from ..bookings import training_plan
from ..errors import ImportRejected
from ..extensions import db
from ..forms import ImportForm, NQSWForm
from ..models import NQSW, Booking, Employer, Programme, Role
from . import form_status, refusals_shown_on, require_role

bp = Blueprint("employer", __name__, url_prefix="/employer")


def _employer() -> Employer:
    employer = current_user.employer
    if employer is None:
        abort(403)
    return employer


def _programme() -> Programme:
    programme = catalogue.current_programme()
    if programme is None:
        abort(404)
    return programme


@bp.get("/")
@require_role(Role.EMPLOYER_CONTACT)
def dashboard() -> ResponseReturnValue:
    employer = _employer()
    nqsws = db.session.scalars(
        select(NQSW)
        .where(NQSW.employer_id == employer.id)
        .options(selectinload(NQSW.bookings).selectinload(Booking.session), selectinload(NQSW.user))
        .order_by(NQSW.id)
    ).all()
    return render_template("employer/dashboard.html", employer=employer, nqsws=nqsws)


@bp.get("/nqsws/<int:nqsw_id>")
@require_role(Role.EMPLOYER_CONTACT)
def nqsw(nqsw_id: int) -> ResponseReturnValue:
    found = db.get_or_404(NQSW, nqsw_id)
    if found.employer_id != _employer().id:
        abort(404)
    return render_template("employer/nqsw.html", nqsw=found, plan=training_plan(found))


@bp.route("/nqsws/new", methods=["GET", "POST"])
@require_role(Role.EMPLOYER_CONTACT)
def enrol() -> ResponseReturnValue:
    employer, programme = _employer(), _programme()
    form = NQSWForm()
    if form.validate_on_submit():
        raw = {name: str(field.data or "") for name, field in form._fields.items()}
        with refusals_shown_on(form):
            added = enrolment.enrol_nqsw(employer, programme, raw)
            flash(f"{added.name} is enrolled on {programme.name}.", "success")
            return redirect(url_for("employer.dashboard"))
    return render_template("employer/enrol.html", form=form, programme=programme), form_status(form)


@bp.route("/nqsws/import", methods=["GET", "POST"])
@require_role(Role.EMPLOYER_CONTACT)
def import_csv() -> ResponseReturnValue:
    employer, programme = _employer(), _programme()
    form = ImportForm()
    problems: list[tuple[int, str]] = []
    if form.validate_on_submit():
        try:
            added = enrolment.import_csv(employer, programme, form.file.data.read())
        except ImportRejected as error:
            problems = error.problems
            form.file.errors = [
                f"Nothing was imported: {len(problems)} row(s) need correcting (listed below)."
            ]
        else:
            flash(f"Enrolled {len(added)} NQSWs on {programme.name}.", "success")
            return redirect(url_for("employer.dashboard"))
    return render_template(
        "employer/import.html",
        form=form,
        problems=problems,
        columns=enrolment.CSV_COLUMNS,
        programme=programme,
    ), form_status(form)
