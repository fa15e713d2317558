"""A live server on loopback and headless Debian Chromium driven by Playwright."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from booking.app import create_app
from booking.config import ROOT
from booking.extensions import db

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def live_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Flask, str]]:
    """Serve a migrated SQLite database with the demo programme on a free loopback port."""
    from flask_migrate import upgrade

    from booking import demo

    folder = tmp_path_factory.mktemp("live")
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'live.sqlite3'}",
            "INSTANCE_DIR": str(folder),
            "SECRET_KEY": "browser-tests",
            "DEMO": True,
            "MAIL_DELIVER": False,
            "TESTING": False,
        }
    )
    with app.app_context():
        upgrade(revision="heads")
        demo.seed()
        db.session.remove()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    app.config["BASE_URL"] = base
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, base
    server.shutdown()
    thread.join(timeout=10)
    with app.app_context():
        db.engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed: run scripts/ensure-system.sh --browser")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    tab = context.new_page()
    yield tab
    context.close()


def axe_violations(tab: Any) -> list[dict[str, Any]]:
    """Run axe-core's WCAG 2.2 A/AA rules on the page and return the violations."""
    tab.add_script_tag(content=AXE.read_text())
    result = tab.evaluate(
        """async () => await axe.run(document, {
            runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']}
        })"""
    )
    return [
        {"id": v["id"], "help": v["help"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
    ]


def assert_accessible(tab: Any) -> None:
    """Fail with a readable list if axe finds any WCAG 2.2 AA violation."""
    violations = axe_violations(tab)
    assert violations == [], json.dumps(violations, indent=2)


def demo_sign_in(tab: Any, base: str, role_label: str) -> None:
    """Sign in through the demo buttons on the sign-in page."""
    tab.goto(f"{base}/sign-in")
    tab.get_by_role("button", name=role_label).first.click()
    tab.wait_for_load_state("networkidle")
