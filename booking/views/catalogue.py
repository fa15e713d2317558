"""The public catalogue: programme years, courses and their dates.

Coordinators also see a programme before it is published, as a preview.
"""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from .. import catalogue as service
from ..models import Programme

bp = Blueprint("catalogue", __name__)


def _visible(slug: str) -> Programme:
    """Return the programme if it is published, or to a coordinator as a preview; else 404."""
    previewing = current_user.is_authenticated and current_user.is_coordinator
    found = service.programme_by_slug(slug, published_only=not previewing)
    if found is None:
        abort(404)
    return found


@bp.get("/")
def index() -> ResponseReturnValue:
    programmes = service.published_programmes()
    if not programmes:
        return render_template("catalogue/none.html")
    if len(programmes) == 1:
        return redirect(url_for("catalogue.programme", slug=programmes[0].slug))
    return render_template(
        "catalogue/index.html", programmes=programmes, current=service.current_programme()
    )


@bp.get("/programmes/<slug>/")
def programme(slug: str) -> ResponseReturnValue:
    found = _visible(slug)
    return render_template(
        "catalogue/programme.html",
        programme=found,
        groups=service.catalogue(found),
        others=[p for p in service.published_programmes() if p.id != found.id],
    )


@bp.get("/programmes/<slug>/courses/<code>")
def course(slug: str, code: str) -> ResponseReturnValue:
    found = _visible(slug)
    course = service.course_by_code(found, code)
    if course is None:
        abort(404)
    return render_template("catalogue/course.html", programme=found, course=course)
