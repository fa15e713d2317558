"""Calendar pages in a real browser, checked with axe-core."""

from __future__ import annotations

import re

import pytest

from .conftest import assert_accessible, demo_sign_in

pytestmark = pytest.mark.browser


def test_public_calendar_pages(page, live_app):
    _app, base = live_app
    page.goto(base + "/")
    page.get_by_role("link", name="Add the training dates to your calendar").click()
    assert page.get_by_role("heading", level=1).inner_text().startswith("Add the training")
    assert page.locator("a[href^='webcal://']").count() > 1
    assert_accessible(page)
    page.goto(base + "/")
    page.get_by_role("link", name="Mental Health Act").click()
    page.get_by_role("link", name="Add these dates to your calendar").click()
    assert_accessible(page)


def test_nqsw_gets_and_resets_a_calendar_link(page, live_app):
    _app, base = live_app
    demo_sign_in(page, base, re.compile("Amara Okafor"))
    page.get_by_role("link", name="Add my bookings to my calendar").click()
    assert_accessible(page)
    page.get_by_role("button", name="Get a calendar link").click()
    webcal = page.locator("a[href^='webcal://']").first.get_attribute("href")
    assert re.search(r"/feeds/nqsw/[\w-]+\.ics$", webcal)
    assert_accessible(page)
    feed = page.request.get(webcal.replace("webcal://", "http://"))
    assert feed.status == 200
    assert feed.headers["content-type"] == "text/calendar; charset=utf-8"
    page.get_by_role("button", name="Reset my calendar links").click()
    assert "old link" in page.locator(".nhsuk-notification-banner").inner_text()
    assert_accessible(page)
    assert page.request.get(webcal.replace("webcal://", "http://")).status == 404
