"""Issue 14 item 3: a proposal overtaken by bookings says so, and offers a fresh run."""

from __future__ import annotations

import re

from booking.allocation import create_proposal, run_proposal
from booking.bookings import book_place
from tests.conftest import sign_in


def _callout(html: str) -> str:
    found = re.search(
        r'<div class="nhsuk-card nhsuk-card--warning">(.*?)</div>\s*</div>', html, re.S
    )
    assert found, "no warning callout on the page"
    return found.group(1)


def test_stale_review_explains_and_links_to_a_new_run(client, scene, coordinator):
    s = scene(people=2)
    proposal = run_proposal(create_proposal(s.programme, by=coordinator, time_limit=1), workers=1)
    book_place(s.nqsws[0], s.late)
    sign_in(client, coordinator)
    base = f"/coordinator/programmes/{s.programme.id}/allocation"

    review = client.get(f"{base}/{proposal.id}").text

    callout = _callout(review)
    assert "Bookings have changed" in callout
    assert "can no longer be committed" in callout
    assert f'href="{base}">Run the allocation again</a>' in callout
    assert "Commit this proposal" not in review


def test_runs_list_marks_an_overtaken_proposal_out_of_date(client, scene, coordinator):
    s = scene(people=2)
    old = run_proposal(create_proposal(s.programme, by=coordinator, time_limit=1), workers=1)
    book_place(s.nqsws[0], s.late)
    fresh = run_proposal(create_proposal(s.programme, by=coordinator, time_limit=1), workers=1)
    sign_in(client, coordinator)

    page = client.get(f"/coordinator/programmes/{s.programme.id}/allocation").text

    rows = {int(m.group(1)): m.group(0) for m in re.finditer(r">Run (\d+)</a>.*?</tr>", page, re.S)}
    assert "Out of date: bookings have changed" in rows[old.id]
    assert "Ready" in rows[fresh.id] and "Out of date" not in rows[fresh.id]


def test_unplaced_reasons_speak_of_nqsws_not_learners(
    client, scene, coordinator, make_course, make_session
):
    """Issue 14 item 11: the solver's word "learner" does not reach the coordinator."""
    s = scene(people=1)
    # Both dates of the course clash with other courses the NQSW is booked on.
    for date_of in (s.early, s.late):
        other = make_session(make_course(), starts_at=date_of.starts_at, ends_at=date_of.ends_at)
        book_place(s.nqsws[0], other)
    proposal = run_proposal(create_proposal(s.programme, by=coordinator, time_limit=1), workers=1)
    sign_in(client, coordinator)

    page = client.get(f"/coordinator/programmes/{s.programme.id}/allocation/{proposal.id}").text

    unplaced = page.split("Courses left unplaced", 1)[1].split("</table>", 1)[0]
    assert "overlaps another of the NQSW's sessions" in unplaced.replace("&#39;", "'")
    assert "learner" not in unplaced
