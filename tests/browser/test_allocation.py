"""The allocation journey in a real browser: start, live progress, review, commit."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import assert_accessible, demo_sign_in

pytestmark = pytest.mark.browser


def test_coordinator_allocates_places(page, live_app):
    _app, base = live_app
    demo_sign_in(page, base, re.compile("Sam Coordinator"))
    page.get_by_role("link", name=re.compile("allocate places", re.IGNORECASE)).first.click()
    assert_accessible(page)

    page.get_by_label("Time limit in seconds").fill("3")
    page.get_by_role("button", name="Run the allocation").click()
    # The run page polls its progress and turns into the review when the run ends.
    assert re.search(r"/allocation/\d+$", page.url)
    if page.locator("#allocation-status").count():
        assert_accessible(page)
    page.get_by_role("heading", name=re.compile("review the proposal")).wait_for(timeout=30000)
    assert_accessible(page)
    expect(page.get_by_role("table", name=re.compile("compared with first come"))).to_be_visible()
    page.get_by_role("button", name="Commit this proposal").click()
    page.wait_for_load_state("networkidle")
    expect(page.get_by_text(re.compile(r"Committed: \d+ booked")).first).to_be_visible()
    assert_accessible(page)
