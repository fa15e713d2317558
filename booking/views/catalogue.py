"""The public catalogue: programme years, courses and their dates."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from .. import catalogue as service

bp = Blueprint("catalogue", __name__)


@bp.get("/")
def index() -> ResponseReturnValue:
    programme = service.current_programme()
    if programme is None:
        return render_template("catalogue/none.html")
    return redirect(url_for("catalogue.programme", slug=programme.slug))


@bp.get("/programmes/<slug>/")
def programme(slug: str) -> ResponseReturnValue:
    found = service.programme_by_slug(slug)
    if found is None:
        abort(404)
    return render_template(
        "catalogue/programme.html",
        programme=found,
        groups=service.catalogue(found),
        others=[p for p in service.published_programmes() if p.id != found.id],
    )


@bp.get("/programmes/<slug>/courses/<code>")
def course(slug: str, code: str) -> ResponseReturnValue:
    found = service.programme_by_slug(slug)
    course = service.course_by_code(found, code) if found else None
    if course is None:
        abort(404)
    return render_template("catalogue/course.html", programme=found, course=course)
