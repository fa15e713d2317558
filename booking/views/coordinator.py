"""The coordinator's pages: programmes, courses, sessions, employers and the outbox."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

from .. import catalogue
from ..models import Role
from . import require_role

bp = Blueprint("coordinator", __name__, url_prefix="/coordinator")


@bp.get("/")
@require_role(Role.COORDINATOR)
def dashboard() -> ResponseReturnValue:
    return render_template("coordinator/dashboard.html", programmes=catalogue.all_programmes())
