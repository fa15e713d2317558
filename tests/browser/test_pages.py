"""The main journeys in a real browser, each page checked with axe-core (WCAG 2.2 AA)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import assert_accessible, axe_violations, demo_sign_in

pytestmark = pytest.mark.browser


def test_catalogue_and_course_pages(page, live_app):
    _app, base = live_app
    page.goto(base + "/")
    assert page.get_by_role("heading", level=1).inner_text().startswith("Pan-London")
    expect(page.get_by_role("heading", name="Full-day courses")).to_be_visible()
    expect(page.locator(".nhsuk-header")).to_be_visible()  # NHS.UK styles loaded
    assert_accessible(page)
    page.get_by_role("link", name="Mental Health Act").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Mental Health Act"
    assert_accessible(page)


def test_sign_in_page_and_its_errors(page, live_app):
    _app, base = live_app
    page.goto(base + "/sign-in")
    assert_accessible(page)
    page.get_by_label("Email address").fill("not an address")
    page.get_by_role("button", name="Email me a sign-in link").click()
    assert (
        page.locator("#email-error")
        .inner_text()
        .strip()
        .endswith("Enter an email address like name@example.nhs.uk")
    )
    assert_accessible(page)


def test_nqsw_books_moves_and_cancels(page, live_app):
    _app, base = live_app
    demo_sign_in(page, base, re.compile("Amara Okafor"))
    assert page.get_by_role("heading", level=1).inner_text() == "My training"
    assert_accessible(page)

    card = page.locator("#course-cultural-sensitivity")
    card.get_by_role("button", name=re.compile("^Book ")).first.click()
    banner = page.locator(".nhsuk-notification-banner").inner_text()
    assert "You are booked on Cultural Sensitivity" in banner
    card = page.locator("#course-cultural-sensitivity")
    assert "Booked" in card.inner_text()

    card.get_by_role("link", name=re.compile("Move to another date")).click()
    assert_accessible(page)
    page.locator("input[type=radio]").first.check()
    page.get_by_role("button", name="Move my place").click()
    assert "Moved to" in page.locator(".nhsuk-notification-banner").inner_text()

    page.locator("#course-cultural-sensitivity").get_by_role(
        "link", name=re.compile("^Cancel")
    ).click()
    assert_accessible(page)
    page.get_by_role("button", name="Cancel my place").click()
    assert "is cancelled" in page.locator(".nhsuk-notification-banner").inner_text()


def test_nqsw_joins_a_waiting_list(page, live_app):
    _app, base = live_app
    demo_sign_in(page, base, re.compile("Chloe Nguyen"))
    # The demo's first Care Act date has two places, both taken.
    card = page.locator("#course-care-act")
    card.get_by_role("button", name=re.compile("Join the waiting list")).first.click()
    assert "on the waiting list" in page.locator(".nhsuk-notification-banner").inner_text()
    assert_accessible(page)


def test_employer_pages(page, live_app):
    _app, base = live_app
    demo_sign_in(page, base, re.compile("Priya Employer"))
    assert_accessible(page)
    page.get_by_role("link", name="Enrol an NQSW").click()
    page.get_by_role("button", name="Enrol").click()
    expect(page.locator(".nhsuk-error-summary")).to_be_visible()
    expect(page.locator("#name-error")).to_be_visible()
    assert_accessible(page)
    page.goto(base + "/employer/nqsws/import")
    assert_accessible(page)


def test_coordinator_dashboard(page, live_app):
    _app, base = live_app
    demo_sign_in(page, base, re.compile("Sam Coordinator"))
    assert page.url.endswith("/coordinator/")
    assert_accessible(page)


def test_the_accessibility_check_can_fail(page):
    page.set_content('<html><body><img src="x.png"><input type="text"></body></html>')
    found = {v["id"] for v in axe_violations(page)}
    assert {"image-alt", "html-has-lang"} <= found
