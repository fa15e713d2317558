"""Issue 14 in a real browser: phones, offline pages, scheduled jobs, the register, past bookings.

Every page visited is checked with axe-core (WCAG 2.2 AA); the item 10 pages also at 375 px.
"""

from __future__ import annotations

import re
from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

from booking import allocation, catalogue
from booking.extensions import db

from .conftest import assert_accessible, demo_sign_in

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 812}


@pytest.fixture
def phone(browser):
    context = browser.new_context(viewport=PHONE)
    tab = context.new_page()
    yield tab
    context.close()


def _a_review_page(app) -> str:
    with app.app_context():
        programme = catalogue.current_programme()
        proposal = allocation.run_proposal(
            allocation.create_proposal(programme, by=None, time_limit=2), workers=1
        )
        url = f"/coordinator/programmes/{programme.id}/allocation/{proposal.id}"
        db.session.remove()
    return url


def _a_past_register(app) -> str:
    with app.app_context():
        programme = catalogue.current_programme()
        past = next(
            s for c in programme.courses for s in c.sessions if s.has_started and not s.is_cancelled
        )
        url = f"/attendance/sessions/{past.id}"
        db.session.remove()
    return url


def _fits(tab) -> None:
    width = tab.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{tab.url} is {width}px wide at {PHONE['width']}px"


def test_item_10_pages_fit_a_phone_and_stay_accessible(phone, live_app):
    app, base = live_app
    demo_sign_in(phone, base, re.compile("Sam Coordinator"))
    for path in (
        "/coordinator/outbox/",
        "/coordinator/invoices",
        f"/coordinator/programmes/{_programme_id(app)}/allocation",
        _a_review_page(app),
        _a_past_register(app),
        "/attendance/",
        "/coordinator/jobs/",
    ):
        phone.goto(base + path)
        _fits(phone)
        assert_accessible(phone)


def test_employer_invoices_fit_a_phone(phone, live_app):
    _app, base = live_app
    demo_sign_in(phone, base, re.compile("Tom Employer"))
    phone.goto(base + "/employer/invoices")
    _fits(phone)
    assert_accessible(phone)


def _programme_id(app) -> int:
    with app.app_context():
        found = catalogue.current_programme().id
        db.session.remove()
    return found


def test_a_page_load_asks_no_other_host_for_anything(page, live_app):
    _app, base = live_app
    hosts: set[str] = set()
    page.on("request", lambda request: hosts.add(urlparse(request.url).netloc))
    page.goto(base + "/")
    page.wait_for_load_state("networkidle")
    demo_sign_in(page, base, re.compile("Amara Okafor"))
    page.wait_for_load_state("networkidle")
    assert hosts == {urlparse(base).netloc}
    fonts = page.evaluate("getComputedStyle(document.body).fontFamily")
    assert "Frutiger" in fonts  # the design system's stack is intact; Arial serves offline


def test_scheduled_jobs_page_runs_attendance_alerts(page, live_app):
    _app, base = live_app
    demo_sign_in(page, base, re.compile("Sam Coordinator"))
    page.goto(base + "/coordinator/jobs/")
    assert_accessible(page)
    page.get_by_role("button", name=re.compile("Run now.*Mail attendance alerts")).click()
    expect(page.locator(".nhsuk-notification-banner")).to_contain_text("attendance alert(s) queued")
    expect(page.locator("#job-attendance_alerts")).to_contain_text("Done")
    page.goto(base + "/attendance/alerts")
    alerts = page.locator("#alerts")
    expect(alerts).to_contain_text("Ben Clarke")
    expect(alerts).to_contain_text("Chloe Nguyen")
    assert_accessible(page)


def test_the_register_keeps_what_was_typed_when_a_row_is_refused(page, live_app):
    app, base = live_app
    demo_sign_in(page, base, re.compile("Sam Coordinator"))
    page.goto(base + _a_past_register(app))
    selects = page.locator("#register select")
    first_value = "absent_apology"
    selects.nth(0).select_option(first_value)
    selects.nth(1).select_option("left_early")
    page.locator("#register input[type=text]").nth(1).fill("")
    page.get_by_role("button", name="Save the register").click()
    expect(page.locator(".nhsuk-error-summary")).to_be_visible()
    assert selects.nth(0).input_value() == first_value
    assert selects.nth(1).input_value() == "left_early"
    assert_accessible(page)
    page.locator("#register input[type=text]").nth(1).fill("100")
    page.get_by_role("button", name="Save the register").click()
    expect(page.locator(".nhsuk-notification-banner")).to_contain_text("Register saved")
    assert page.locator("#register select").nth(0).input_value() == first_value


def test_past_bookings_show_what_happened_without_actions(page, live_app):
    _app, base = live_app
    demo_sign_in(page, base, re.compile("Amara Okafor"))
    card = page.locator("#course-personality-disorder")  # its register is left as the demo took it
    expect(card).to_contain_text("Attended")
    expect(card).to_contain_text("You were booked on")
    expect(card.get_by_role("link", name=re.compile("Move to another date"))).to_have_count(0)
    expect(card.get_by_role("link", name=re.compile("^Cancel"))).to_have_count(0)
    assert_accessible(page)


def test_new_coordinator_pages_are_accessible(page, live_app):
    app, base = live_app
    demo_sign_in(page, base, re.compile("Sam Coordinator"))
    with app.app_context():
        programme = catalogue.current_programme()
        course = programme.courses[0]
        session = course.sessions[0]
        ids = (programme.id, course.id, session.id)
        db.session.remove()
    programme_id, course_id, session_id = ids
    page.goto(f"{base}/coordinator/sessions/{session_id}/message")
    assert_accessible(page)
    page.get_by_role("button", name="Send the message").click()
    expect(page.locator("#subject-error")).to_be_visible()
    assert_accessible(page)
    page.get_by_label("Subject").fill("Bring a notebook")
    page.get_by_label("Message").fill("See you there.")
    page.get_by_role("button", name="Send the message").click()
    expect(page.locator(".nhsuk-notification-banner")).to_contain_text("in the outbox for")
    expect(page.locator("#session-messages")).to_contain_text("Bring a notebook")
    assert_accessible(page)
    for path in (
        f"/coordinator/sessions/{session_id}/sign-in-sheet",
        f"/coordinator/courses/{course_id}/needs",
        "/coordinator/outbox/?to=nhs.example&kind=booking_confirmed",
        f"/coordinator/programmes/{programme_id}",
    ):
        page.goto(base + path)
        assert_accessible(page)
