"""Calendar feeds (.ics) and the pages that offer them for subscription."""

from __future__ import annotations

import hashlib

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user
from werkzeug.wrappers import Response as BaseResponse

from .. import calendar
from .. import catalogue as catalogue_service
from ..forms import ConfirmForm
from ..models import Course, Programme, Role
from . import require_role

bp = Blueprint("feeds", __name__)


def _programme(slug: str) -> Programme:
    programme = catalogue_service.programme_by_slug(slug)
    if programme is None:
        abort(404)
    return programme


def _course(slug: str, code: str) -> Course:
    course = catalogue_service.course_by_code(_programme(slug), code)
    if course is None:
        abort(404)
    return course


def _ics(feed: calendar.Feed, filename: str, *, private: bool) -> BaseResponse:
    body = calendar.render_feed(feed)
    response = Response(body, mimetype="text/calendar")
    response.set_etag(hashlib.sha256(body).hexdigest())
    if feed.last_modified is not None:
        response.last_modified = feed.last_modified
    # no-transform: proxies must not gzip or rewrite it; some calendar clients choke on that.
    scope = "private" if private else "public"
    response.headers["Cache-Control"] = f"{scope}, max-age=300, no-transform"
    response.headers["Content-Disposition"] = f'inline; filename="{filename}.ics"'
    if private:
        response.headers["X-Robots-Tag"] = "noindex"
        response.headers["Referrer-Policy"] = "no-referrer"
    return response.make_conditional(request)


def subscribe_links(path: str) -> dict[str, str]:
    """Return the web (https) and webcal:// addresses of a feed path."""
    web = str(current_app.config["BASE_URL"]).rstrip("/") + path
    return {"web": web, "webcal": "webcal://" + web.split("://", 1)[-1]}


@bp.get("/feeds/programme/<slug>.ics")
def programme_ics(slug: str) -> ResponseReturnValue:
    programme = _programme(slug)
    return _ics(calendar.programme_feed(programme), programme.slug, private=False)


@bp.get("/feeds/course/<slug>/<code>.ics")
def course_ics(slug: str, code: str) -> ResponseReturnValue:
    course = _course(slug, code)
    return _ics(calendar.course_feed(course), f"{slug}-{code}", private=False)


@bp.get("/feeds/nqsw/<token>.ics")
def nqsw_ics(token: str) -> ResponseReturnValue:
    user = calendar.user_for_feed_token(token, Role.NQSW)
    if user is None or user.nqsw is None:
        abort(404)
    return _ics(calendar.nqsw_feed(user.nqsw), "my-asye-training", private=True)


@bp.get("/feeds/employer/<token>.ics")
def employer_ics(token: str) -> ResponseReturnValue:
    user = calendar.user_for_feed_token(token, Role.EMPLOYER_CONTACT)
    if user is None or user.employer is None:
        abort(404)
    return _ics(calendar.employer_feed(user.employer), "asye-training-nqsws", private=True)


@bp.get("/programmes/<slug>/calendars")
def programme_calendars(slug: str) -> ResponseReturnValue:
    programme = _programme(slug)
    return render_template(
        "feeds/programme.html",
        programme=programme,
        links=subscribe_links(f"/feeds/programme/{programme.slug}.ics"),
        course_links=[
            (c, subscribe_links(f"/feeds/course/{programme.slug}/{c.code}.ics"))
            for c in programme.courses
        ],
    )


@bp.get("/programmes/<slug>/courses/<code>/calendar")
def course_calendar(slug: str, code: str) -> ResponseReturnValue:
    course = _course(slug, code)
    return render_template(
        "feeds/course.html",
        course=course,
        programme=course.programme,
        links=subscribe_links(f"/feeds/course/{slug}/{course.code}.ics"),
    )


def _feed_kind() -> str:
    return "nqsw" if current_user.role is Role.NQSW else "employer"


@bp.get("/account/calendar")
@require_role(Role.NQSW, Role.EMPLOYER_CONTACT)
def personal() -> ResponseReturnValue:
    return render_template(
        "feeds/personal.html",
        kind=_feed_kind(),
        active=calendar.active_feed_tokens(current_user),
        links=None,
        form=ConfirmForm(),
    )


@bp.post("/account/calendar/link")
@require_role(Role.NQSW, Role.EMPLOYER_CONTACT)
def new_link() -> ResponseReturnValue:
    form = ConfirmForm()
    links = None
    if form.validate_on_submit():
        token = calendar.issue_feed_token(current_user)
        links = subscribe_links(f"/feeds/{_feed_kind()}/{token}.ics")
    # Rendered, not redirected: the raw token is shown once and never stored.
    response = current_app.make_response(
        render_template(
            "feeds/personal.html",
            kind=_feed_kind(),
            active=calendar.active_feed_tokens(current_user),
            links=links,
            form=form,
        )
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/account/calendar/reset")
@require_role(Role.NQSW, Role.EMPLOYER_CONTACT)
def reset() -> ResponseReturnValue:
    if ConfirmForm().validate_on_submit():
        stopped = calendar.reset_feed_tokens(current_user)
        flash(
            f"Your calendar links are reset: {stopped} old link{'' if stopped == 1 else 's'} "
            "stopped working. Get a new link to subscribe again.",
            "success",
        )
    return redirect(url_for("feeds.personal"))
