"""Helpers shared by the coordinator page tests."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
from flask import Flask, g
from werkzeug.test import TestResponse


@pytest.fixture(autouse=True)
def fresh_login(app: Flask) -> Iterator[None]:
    """Load the signed-in user afresh for every request.

    The ``app`` fixture keeps an application context pushed, and Flask reuses it for
    test requests, so Flask-Login's cached user in ``g`` would leak from one request
    (and one signed-in person) to the next.
    """

    @app.before_request
    def _forget_cached_user() -> None:
        g.pop("_login_user", None)

    yield


def field_error(response: TestResponse, field_id: str) -> str:
    """Return the error text shown next to a field, or '' if there is none."""
    match = re.search(
        rf'<span class="nhsuk-error-message" id="{field_id}-error">\s*'
        r'<span class="nhsuk-u-visually-hidden">Error: </span>(.*?)</span>',
        response.get_data(as_text=True),
        re.S,
    )
    return html.unescape(match.group(1)).strip() if match else ""
