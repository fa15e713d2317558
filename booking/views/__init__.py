"""Thin blueprints: load, call one service, render or redirect."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, abort
from flask_login import current_user, login_required
from flask_wtf import FlaskForm

from ..errors import BookingError
from ..extensions import db
from ..models import Role

F = TypeVar("F", bound=Callable[..., Any])


def require_role(*roles: Role) -> Callable[[F], F]:
    """Let only signed-in users with one of ``roles`` through; others get 403."""

    def decorator(view: F) -> F:
        @wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


def attach_error(form: FlaskForm, error: BookingError) -> None:
    """Show a service's refusal next to the field it names (or the form's first field)."""
    name = (
        error.field
        if error.field in form._fields
        else next(n for n in form._fields if n != "csrf_token")
    )
    field = form._fields[name]
    field.errors = [*field.errors, error.message]


def form_status(form: FlaskForm) -> int:
    """Return 400 for a form re-rendered with errors, else 200."""
    return 400 if form.errors else 200


@contextmanager
def refusals_shown_on(form: FlaskForm) -> Iterator[None]:
    """Show a service's refusal next to the form field it names, and carry on to the form."""
    try:
        yield
    except BookingError as error:
        # Undo anything half-done so the page re-renders from what is really stored.
        db.session.rollback()
        attach_error(form, error)


def register_blueprints(app: Flask) -> None:
    """Attach every blueprint to the app."""
    from . import allocation, api, attendance, auth, catalogue, coordinator, employer, feeds, my

    for module in (catalogue, auth, my, employer, coordinator, allocation, api, attendance, feeds):
        app.register_blueprint(module.bp)
