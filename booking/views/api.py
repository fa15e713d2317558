"""A small JSON API: the public catalogue, and booking for a signed-in NQSW."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, jsonify, request
from flask.typing import ResponseReturnValue
from flask_login import current_user

from .. import bookings, catalogue
from ..errors import InvalidInput
from ..extensions import db
from ..models import Role, Session
from . import require_role

bp = Blueprint("api", __name__, url_prefix="/api")


def _session_json(session: Session) -> dict[str, Any]:
    return {
        "id": session.id,
        "starts_at": session.starts_at.isoformat().replace("+00:00", "Z"),
        "ends_at": session.ends_at.isoformat().replace("+00:00", "Z"),
        "local_start": session.local_start.isoformat(),
        "mode": session.mode,
        "capacity": session.capacity,
        "places_left": session.places_left,
        "status": session.status.value,
    }


@bp.get("/programmes/<slug>/catalogue")
def programme_catalogue(slug: str) -> ResponseReturnValue:
    programme = catalogue.programme_by_slug(slug)
    if programme is None:
        abort(404)
    return jsonify(
        programme={"slug": programme.slug, "name": programme.name},
        groups=[
            {
                "heading": group.heading,
                "courses": [
                    {
                        "code": c.code,
                        "title": c.title,
                        "description": c.description,
                        "length": c.length.value,
                        "days": c.days,
                        "optional": c.optional,
                        "sessions": [_session_json(s) for s in c.sessions],
                    }
                    for c in group.courses
                ],
            }
            for group in catalogue.catalogue(programme)
        ],
    )


@bp.post("/bookings")
@require_role(Role.NQSW)
def create_booking() -> ResponseReturnValue:
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict) or not isinstance(payload.get("session_id"), int):
        raise InvalidInput('Send JSON like {"session_id": 12}.', field="session_id")
    session = db.session.get(Session, payload["session_id"])
    if session is None:
        abort(404)
    booking = bookings.book_place(current_user.nqsw, session, by=current_user)
    return jsonify(id=booking.id, session=_session_json(session), status=booking.status.value), 201
