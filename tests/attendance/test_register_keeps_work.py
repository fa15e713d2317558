"""Issue 14 item 2: a register with one bad row keeps everything typed, and a second save works."""

from __future__ import annotations

import html
import re
from datetime import date, timedelta

from sqlalchemy import select

from booking.extensions import db
from booking.models import AttendanceMark, AttendanceRecord

from ..conftest import sign_in


def _form_values(page: str) -> dict[str, str]:
    """Return what a browser would send back from the register form as shown."""
    form = page.split('id="register"', 1)[1].split("</form>", 1)[0]
    values = {
        m.group(1): html.unescape(m.group(2))
        for m in re.finditer(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form)
    }
    for select_match in re.finditer(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', form, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected>', select_match.group(2))
        values[select_match.group(1)] = chosen.group(1) if chosen else ""
    return values


def test_one_bad_row_keeps_every_other_change_and_a_second_save_saves_them(
    client, coordinator, make_session, make_nqsw, make_booking
):
    session = make_session(day=date.today() - timedelta(days=2))
    people = [make_nqsw(name=n) for n in ("Amira Khan", "Ben O'Neill", "Cara Dunn")]
    for person in people:
        make_booking(person, session)
    amira, ben, cara = people
    sign_in(client, coordinator)
    url = f"/attendance/sessions/{session.id}"
    sent = _form_values(client.get(url).text)
    sent.update(
        {
            f"mark-{amira.id}": "present",
            f"mark-{ben.id}": "left_early",  # without the minutes: refused
            f"mark-{cara.id}": "absent",
            f"minutes-{cara.id}": "0",
        }
    )

    refused = client.post(url, data=sent)

    assert refused.status_code == 400
    page = refused.text
    assert "Enter the minutes Ben O&#39;Neill attended before leaving early." in page
    assert f'id="mark-{ben.id}-error"' in page
    shown = _form_values(page)
    assert shown[f"mark-{amira.id}"] == "present"
    assert shown[f"mark-{ben.id}"] == "left_early"
    assert (shown[f"mark-{cara.id}"], shown[f"minutes-{cara.id}"]) == ("absent", "0")
    assert db.session.scalars(select(AttendanceRecord)).all() == []

    shown[f"minutes-{ben.id}"] = "95"
    saved = client.post(url, data=shown)

    assert saved.status_code == 302
    marks = {
        r.nqsw_id: (r.mark, r.minutes_attended)
        for r in db.session.scalars(select(AttendanceRecord))
    }
    assert marks == {
        amira.id: (AttendanceMark.PRESENT, None),
        ben.id: (AttendanceMark.LEFT_EARLY, 95),
        cara.id: (AttendanceMark.ABSENT, 0),
    }


def test_minutes_longer_than_the_session_are_refused_next_to_their_row(
    client, coordinator, make_session, make_nqsw, make_booking
):
    session = make_session(day=date.today() - timedelta(days=2))
    nqsw = make_nqsw(name="Amira Khan")
    make_booking(nqsw, session)
    sign_in(client, coordinator)
    url = f"/attendance/sessions/{session.id}"
    sent = _form_values(client.get(url).text)
    sent.update({f"mark-{nqsw.id}": "late", f"minutes-{nqsw.id}": "9999"})

    refused = client.post(url, data=sent)

    assert refused.status_code == 400
    assert "Minutes for Amira Khan must be between 0 and" in refused.text
    assert _form_values(refused.text)[f"minutes-{nqsw.id}"] == "9999"
