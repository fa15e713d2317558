"""The coordinator's pages in a real browser, each checked with axe-core (WCAG 2.2 AA)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import assert_accessible, demo_sign_in

pytestmark = pytest.mark.browser


def test_coordinator_pages_are_accessible(page, live_app):
    _app, base = live_app
    demo_sign_in(page, base, re.compile("Sam Coordinator"))
    assert_accessible(page)

    page.get_by_role("link", name=re.compile("^Courses and sessions")).first.click()
    assert_accessible(page)
    page.get_by_role("link", name=re.compile("Care Act$")).first.click()
    expect(page.get_by_role("heading", name=re.compile("^Booked"))).to_be_visible()
    assert_accessible(page)
    # Booking someone without choosing: the error sits by the field and the page stays usable.
    page.get_by_role("button", name="Book the place").click()
    expect(page.locator("#nqsw_id-error")).to_be_visible()
    assert_accessible(page)

    page.get_by_role("link", name="Change the session").click()
    assert_accessible(page)
    page.get_by_label("End time (UK time)").fill("08:00")
    page.get_by_role("button", name="Save changes").click()
    assert "must end after it starts" in page.locator("#end_time-error").inner_text()
    assert_accessible(page)

    for path in (
        "/coordinator/programmes/",
        "/coordinator/programmes/new",
        "/coordinator/employers/",
        "/coordinator/employers/new",
        "/coordinator/outbox/",
    ):
        page.goto(base + path)
        assert_accessible(page)


def test_coordinator_reads_an_invitation_in_the_outbox(page, live_app):
    _app, base = live_app
    demo_sign_in(page, base, re.compile("Sam Coordinator"))
    page.goto(base + "/coordinator/employers/")
    page.locator("table a").first.click()
    assert_accessible(page)
    page.get_by_role("link", name="Invite a contact").click()
    page.get_by_label("Full name").fill("Nadia Newcontact")
    page.get_by_label("Email address").fill("nadia.newcontact@example.org")
    page.get_by_role("button", name="Send the invitation").click()
    assert "Nadia Newcontact is invited" in page.locator(".nhsuk-notification-banner").inner_text()

    page.get_by_role("link", name="Outbox", exact=True).first.click()
    page.get_by_role("link", name=re.compile("You have been invited")).first.click()
    assert_accessible(page)
    href = page.locator('pre a[href*="/sign-in/"]').first.get_attribute("href")

    # The newcomer follows the link from the outbox in their own browser.
    newcomer = page.context.browser.new_context().new_page()
    newcomer.goto(href)
    newcomer.get_by_role("button").filter(has_text=re.compile("Sign in", re.I)).first.click()
    assert newcomer.url.endswith("/employer/")
    newcomer.context.close()

    page.goto(base + "/coordinator/")
    page.get_by_role("link", name=re.compile("^NQSWs")).first.click()
    assert_accessible(page)
    page.locator("table tbody a").first.click()
    expect(page.get_by_role("heading", name="Training plan")).to_be_visible()
    assert_accessible(page)
