"""Helpers shared by the coordinator page tests."""

from __future__ import annotations

import html
import re

from werkzeug.test import TestResponse


def field_error(response: TestResponse, field_id: str) -> str:
    """Return the error text shown next to a field, or '' if there is none."""
    match = re.search(
        rf'<span class="nhsuk-error-message" id="{field_id}-error">\s*'
        r'<span class="nhsuk-u-visually-hidden">Error: </span>(.*?)</span>',
        response.get_data(as_text=True),
        re.S,
    )
    return html.unescape(match.group(1)).strip() if match else ""
