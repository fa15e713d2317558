"""Issue 14 item 11: the README matches the demo, and the wording people complained about."""

from __future__ import annotations

import re
from datetime import timedelta

from booking import attendance, catalogue, demo
from booking.bookings import book_place, cancel_booking, expire_offers, join_waitlist
from booking.config import ROOT
from booking.extensions import db
from booking.models import NQSW, AttendanceStatus, Employer, EmployerOption, User

from ..conftest import sign_in

README = (ROOT / "README.md").read_text()


def _roles_table() -> list[list[str]]:
    table = README.split("| demo person | role | what to try |", 1)[1].split("\n\n", 1)[0]
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in table.strip().splitlines()[1:]
    ]


def test_readme_names_the_real_urls_and_counts():
    core = [c for c in catalogue.PACK_COURSES if not c[3]]
    optional = [c for c in catalogue.PACK_COURSES if c[3]]
    assert (len(core), len(optional)) == (9, 2)
    assert "programme pack's nine courses plus the two optional" in README
    assert "/attendance/mine" not in README and "`/attendance/me`" in README


def test_readme_roles_table_matches_what_the_demo_shows(app):
    demo.seed()
    programme = catalogue.current_programme()
    statuses = {i.nqsw.name: i.status for i in attendance.programme_attendance(programme)}
    people = {u.name: u for u in db.session.query(User)}
    described: set[str] = set()
    for who, role, what in _roles_table():
        for name in (n.strip() for n in who.split(",")):
            assert name in people, f"README names {name}, who is not in the demo"
            described.add(name)
            user = people[name]
            if role.startswith("NQSW"):
                nqsw = db.session.query(NQSW).filter_by(user_id=user.id).one()
                fte = "full time" if nqsw.fte == 1 else f"{nqsw.fte:g} FTE"
                assert fte in role
                claimed = re.search(r"\*(on track|at risk|cannot reach)\*", what)
                assert claimed, f"the row for {name} does not say their attendance"
                assert statuses[name].label.lower() == claimed.group(1), name
            elif role.startswith("employer contact"):
                employer = db.session.get(Employer, user.employer_id)
                assert employer.name in role
                option = "Option 1" if employer.option is EmployerOption.FULL_ACCESS else "Option 2"
                assert option in role
    assert described == set(people)
    at_risk = {n for n, s in statuses.items() if s is AttendanceStatus.AT_RISK}
    assert at_risk == {"Ben Clarke", "Chloe Nguyen"}


def test_session_page_and_cancel_message_read_naturally(
    client, coordinator, make_session, make_nqsw
):
    session = make_session()
    book_place(make_nqsw(), session)
    sign_in(client, coordinator)

    page = client.get(f"/coordinator/sessions/{session.id}").text
    assert "Calendar version" not in page
    assert "Changes sent to calendars" in page and "None: unchanged since it was scheduled" in page

    done = client.post(
        f"/coordinator/sessions/{session.id}/cancel",
        data={"reason": "Trainer ill"},
        follow_redirects=True,
    ).text
    assert "1 person was told" in done and "1 people" not in done


def test_an_expired_offer_no_longer_says_a_place_is_free(client, make_session, make_nqsw):
    session = make_session(capacity=1)
    holder = make_nqsw()
    booking = book_place(holder, session)
    waiting = make_nqsw()
    entry = join_waitlist(waiting, session)
    cancel_booking(booking)
    db.session.refresh(entry)
    expire_offers(now=entry.offer_expires_at + timedelta(minutes=1))
    sign_in(client, waiting.user)

    page = client.get(f"/my/offers/{entry.id}").text

    assert "A place is free" not in page
    assert "has closed" in page and "passed to the next person waiting" in page
    assert "Accept the place" not in page
