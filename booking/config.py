"""Configuration defaults, overridden from the environment."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def from_environment() -> dict[str, Any]:
    """Return the configuration built from defaults and environment variables."""
    instance = Path(os.environ.get("ASYE_INSTANCE_DIR", ROOT / "instance"))
    return {
        "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_hex(32),
        "SQLALCHEMY_DATABASE_URI": os.environ.get(
            "DATABASE_URL", f"sqlite:///{instance / 'asye.sqlite3'}"
        ),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "INSTANCE_DIR": str(instance),
        # Licensed Frutiger font files, if the organisation has them (see booking/frontend.py).
        "FONTS_DIR": os.environ.get("FONTS_DIR", str(instance / "fonts")),
        # A public base URL for links in mail and calendar feeds.
        "BASE_URL": os.environ.get("BASE_URL", "http://127.0.0.1:5000"),
        "DEMO": _bool("ASYE_DEMO", False),
        "MAIL_SERVER": os.environ.get("MAIL_SERVER", "localhost"),
        "MAIL_PORT": int(os.environ.get("MAIL_PORT", "25")),
        "MAIL_USE_TLS": _bool("MAIL_USE_TLS", False),
        "MAIL_USE_SSL": _bool("MAIL_USE_SSL", False),
        "MAIL_USERNAME": os.environ.get("MAIL_USERNAME"),
        "MAIL_PASSWORD": os.environ.get("MAIL_PASSWORD"),
        "MAIL_DEFAULT_SENDER": os.environ.get(
            "MAIL_DEFAULT_SENDER", "ASYE training <asye-training@localhost>"
        ),
        # With no SMTP server configured, mail stays in the outbox for the coordinator to read.
        "MAIL_DELIVER": _bool("MAIL_DELIVER", "MAIL_SERVER" in os.environ),
        # Run the outbox sender and the reminder job in a thread of the web process.
        "MAIL_WORKER": _bool("MAIL_WORKER", False),
        "MAIL_WORKER_INTERVAL": float(os.environ.get("MAIL_WORKER_INTERVAL", "30")),
        "MAIL_MAX_ATTEMPTS": int(os.environ.get("MAIL_MAX_ATTEMPTS", "10")),
        # How long a cancelled session stays in calendar feeds as STATUS:CANCELLED.
        "CALENDAR_KEEP_CANCELLED_DAYS": int(os.environ.get("CALENDAR_KEEP_CANCELLED_DAYS", "30")),
        "SIGN_IN_LINK_MINUTES": int(os.environ.get("SIGN_IN_LINK_MINUTES", "30")),
        "STRIPE_SECRET_KEY": os.environ.get("STRIPE_SECRET_KEY"),
        "STRIPE_WEBHOOK_SECRET": os.environ.get("STRIPE_WEBHOOK_SECRET"),
        "STRIPE_API_BASE": os.environ.get("STRIPE_API_BASE"),
        # Packages loaded by name, each exposing init_app(app); see docs/invoicing.md.
        "ASYE_PLUGINS": [
            p.strip() for p in os.environ.get("ASYE_PLUGINS", "invoicing").split(",") if p.strip()
        ],
        "WTF_CSRF_TIME_LIMIT": None,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": _bool("SESSION_COOKIE_SECURE", False),
        "MAX_CONTENT_LENGTH": 5 * 1024 * 1024,
    }
