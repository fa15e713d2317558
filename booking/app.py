"""The application factory."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

from flask import Flask, flash, jsonify, redirect, render_template, request, send_from_directory
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from jinja2 import ChainableUndefined, ChoiceLoader, FileSystemLoader, PackageLoader
from sqlalchemy import event
from sqlalchemy.engine import Engine

from . import config as config_module
from . import frontend, jobs
from .errors import BookingError
from .extensions import csrf, db, login_manager, mail, migrate

ROOT = config_module.ROOT
NHSUK_DIST = ROOT / "node_modules" / "nhsuk-frontend" / "dist" / "nhsuk"


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app: configuration, extensions, blueprints, error handlers and commands."""
    app = Flask(__name__, template_folder=str(ROOT / "templates"))
    app.config.update(config_module.from_environment())
    if config:
        app.config.update(config)
    Path(app.config["INSTANCE_DIR"]).mkdir(parents=True, exist_ok=True)

    app.jinja_loader = ChoiceLoader(
        [FileSystemLoader(str(ROOT / "templates")), PackageLoader("nhsuk_frontend_jinja")]
    )
    # The NHS.UK macros read optional nested params (params.search.action) freely.
    app.jinja_env.undefined = ChainableUndefined
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True)
    mail.init_app(app)
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.sign_in"
    login_manager.login_message = "Sign in to continue."
    login_manager.login_message_category = "info"

    with app.app_context():
        _tune_sqlite(db.engine)

    from . import models  # noqa: F401  (registers tables)
    from .audit import models as audit_models  # noqa: F401
    from .views import register_blueprints

    register_blueprints(app)
    jobs.init_app(app)
    _register_errors(app)
    _register_assets(app)

    from .cli import register_commands

    register_commands(app)
    _load_plugins(app)
    logging.basicConfig(level=app.config.get("LOG_LEVEL", logging.INFO))
    if app.config["MAIL_WORKER"] and not app.testing:
        from .worker import start_worker

        app.extensions["worker"], _ = start_worker(app)
    return app


def _load_plugins(app: Flask) -> None:
    # Packages that depend on booking (invoicing) plug in by name, so booking never imports them.
    for name in app.config.get("ASYE_PLUGINS", ()):
        importlib.import_module(name).init_app(app)


def _tune_sqlite(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Take the write lock up front: a deferred transaction that reads then writes
        # fails with SQLITE_BUSY instead of waiting when another writer got there first.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _wants_json() -> bool:
    return request.path.startswith("/api/") or (request.accept_mimetypes.best == "application/json")


def _register_errors(app: Flask) -> None:
    @app.errorhandler(BookingError)
    def _booking_error(error: BookingError) -> ResponseReturnValue:
        db.session.rollback()
        if _wants_json():
            return jsonify(error=type(error).__name__, message=error.message), error.status_code
        flash(error.message, "error")
        return redirect(request.referrer or "/")

    @app.errorhandler(CSRFError)
    def _csrf_error(error: CSRFError) -> ResponseReturnValue:
        if _wants_json():
            return jsonify(error="CSRFError", message=error.description), 400
        return render_template(
            "errors/error.html",
            code=400,
            message="This form has expired or was not sent from this site. "
            "Go back, reload the page and try again.",
        ), 400

    for code, message in (
        (403, "You do not have permission to see this page."),
        (404, "Page not found."),
        (405, "That action is not allowed here."),
        (413, "That file is too large."),
    ):
        app.register_error_handler(code, _page_error(code, message))


def _page_error(code: int, message: str) -> Any:
    def handler(_error: Exception) -> ResponseReturnValue:
        if _wants_json():
            return jsonify(error=code, message=message), code
        return render_template("errors/error.html", code=code, message=message), code

    return handler


def _register_assets(app: Flask) -> None:
    # nhsuk-frontend is installed from npm at set-up; its built files are served from there.
    @app.route("/assets/<path:filename>")
    def assets(filename: str) -> ResponseReturnValue:
        if filename.startswith("app/"):
            return send_from_directory(ROOT / "assets", filename.removeprefix("app/"))
        if filename.startswith("fonts/"):
            return send_from_directory(
                app.config["FONTS_DIR"], filename.removeprefix("fonts/"), max_age=86400
            )
        if filename.endswith(".css") and "/" not in filename and (NHSUK_DIST / filename).is_file():
            # Served rewritten so that no font is fetched from another host (booking/frontend.py).
            css = frontend.stylesheet(NHSUK_DIST / filename, Path(app.config["FONTS_DIR"]))
            response = app.response_class(css, mimetype="text/css")
            response.cache_control.max_age = 3600
            return response
        if "/" not in filename and (NHSUK_DIST / filename).is_file():
            return send_from_directory(NHSUK_DIST, filename, max_age=3600)
        return send_from_directory(NHSUK_DIST / "assets", filename, max_age=3600)
