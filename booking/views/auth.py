"""Sign in by emailed single-use link; demo accounts for a newcomer."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select

from .. import accounts
from ..extensions import db, login_manager
from ..forms import ConfirmForm, SignInForm
from ..models import Role, User
from . import form_status

bp = Blueprint("auth", __name__)


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id))


def home_for(user: User) -> str:
    """Return the page a user lands on after signing in."""
    return {
        Role.NQSW: url_for("my.training"),
        Role.EMPLOYER_CONTACT: url_for("employer.dashboard"),
        Role.COORDINATOR: url_for("coordinator.dashboard"),
    }[user.role]


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> ResponseReturnValue:
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    form = SignInForm()
    if form.validate_on_submit():
        accounts.request_sign_in(form.email.data or "")
        # The same answer whether or not an account exists, so addresses cannot be probed.
        return render_template("auth/check_email.html", email=form.email.data)
    demo_users = _demo_users() if current_app.config["DEMO"] else []
    return render_template("auth/sign_in.html", form=form, demo_users=demo_users), form_status(form)


@bp.route("/sign-in/<token>", methods=["GET", "POST"])
def redeem(token: str) -> ResponseReturnValue:
    # A GET only shows a button: mail scanners that follow links must not use up the token.
    form = ConfirmForm()
    if request.method == "POST" and form.validate_on_submit():
        user = accounts.redeem_sign_in(token)
        login_user(user)
        flash(f"Signed in as {user.name}.", "success")
        return redirect(home_for(user))
    valid = accounts.sign_in_token_state(token)
    return render_template("auth/redeem.html", form=form, valid=valid), (200 if valid else 400)


@bp.post("/sign-out")
def sign_out() -> ResponseReturnValue:
    form = ConfirmForm()
    if form.validate_on_submit():
        logout_user()
        flash("You have signed out.", "success")
    return redirect(url_for("catalogue.index"))


DEMO_ROLE_ORDER = (Role.COORDINATOR, Role.EMPLOYER_CONTACT, Role.NQSW)


def _demo_users() -> list[User]:
    users = db.session.scalars(
        select(User).where(User.active.is_(True)).order_by(User.id).limit(12)
    ).all()
    return sorted(users, key=lambda u: DEMO_ROLE_ORDER.index(u.role))


@bp.post("/demo/sign-in/<int:user_id>")
def demo_sign_in(user_id: int) -> ResponseReturnValue:
    if not current_app.config["DEMO"]:
        abort(404)
    form = ConfirmForm()
    user = db.get_or_404(User, user_id)
    if not form.validate_on_submit() or user not in _demo_users():
        abort(403)
    login_user(user)
    flash(f"Signed in as {user.name} (demo).", "success")
    return redirect(home_for(user))
