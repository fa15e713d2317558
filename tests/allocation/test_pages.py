"""The coordinator's allocation pages, the progress poll and the command."""

from __future__ import annotations

import json
import re
import time

import pytest
from flask import g

from booking.allocation import create_proposal, run_proposal
from booking.bookings import book_place
from booking.extensions import db
from booking.models import AllocationProposal, BookingSource, ProposalStatus, Role
from tests.allocation.conftest import live_bookings, outbox_count, proposal_count
from tests.conftest import sign_in


def _base(programme):
    return f"/coordinator/programmes/{programme.id}/allocation"


def _release() -> None:
    """End the test's read transaction, as the end of a real request would.

    The test shares one app context with its requests; on SQLite an open read holds
    the write lock the background run needs. Flask-Login's cached user goes with it.
    """
    db.session.remove()
    g.pop("_login_user", None)


def _wait_for_run(client, url: str) -> dict:
    """Poll the progress endpoint as the page does, until the run finishes."""
    deadline = time.monotonic() + 60
    while True:
        response = client.get(url)
        _release()
        assert response.status_code == 200
        data = response.get_json()
        if data["status"] != "running" or time.monotonic() > deadline:
            return data
        time.sleep(0.2)


def test_coordinator_runs_reviews_and_commits_from_the_pages(client, scene, coordinator):
    s = scene(people=3, capacity=2)
    sign_in(client, coordinator)

    assert f'href="{_base(s.programme)}"' in client.get("/coordinator/").text
    page = client.get(_base(s.programme))
    assert page.status_code == 200
    assert "Run the allocation" in page.text

    started = client.post(_base(s.programme), data={"time_limit": "2"})
    assert started.status_code == 302
    run_url = started.headers["Location"]
    proposal_id = int(re.search(r"/allocation/(\d+)$", run_url).group(1))
    _release()

    progress = _wait_for_run(client, f"{run_url}/progress.json")
    assert progress["status"] == "ready"
    assert progress["placed"] == 3
    assert progress["requests"] == 3

    review = client.get(run_url)
    assert review.status_code == 200
    assert "New bookings (3)" in review.text
    assert "compared with first come, first served" in review.text
    assert "Person 0" in review.text
    assert "Commit this proposal" in review.text

    committed = client.post(f"{run_url}/commit", follow_redirects=True)
    assert committed.status_code == 200
    assert "Committed: 3 booked, 0 moved." in committed.text
    assert len(live_bookings()) == 3
    assert all(b.source is BookingSource.ALLOCATION for b in live_bookings())
    assert outbox_count("booking_confirmed") == 3
    assert db.session.get(AllocationProposal, proposal_id).status is ProposalStatus.COMMITTED

    again = client.post(f"{run_url}/commit", follow_redirects=True)
    assert "already committed" in again.text
    assert len(live_bookings()) == 3


def test_run_page_shows_live_progress_while_running(client, scene, coordinator):
    s = scene(people=2)
    proposal = create_proposal(s.programme, by=coordinator, time_limit=5)
    sign_in(client, coordinator)

    page = client.get(f"{_base(s.programme)}/{proposal.id}")

    assert page.status_code == 200
    assert 'aria-live="polite"' in page.text
    assert "progress.json" in page.text  # the poll
    assert "<noscript>" in page.text  # and the fallback without JavaScript
    data = client.get(f"{_base(s.programme)}/{proposal.id}/progress.json").get_json()
    assert data["status"] == "running"
    assert data["time_limit"] == 5


def test_stale_commit_shows_an_error(client, scene, coordinator):
    s = scene(people=2)
    proposal = run_proposal(create_proposal(s.programme, by=coordinator, time_limit=1), workers=1)
    book_place(s.nqsws[0], s.late)
    sign_in(client, coordinator)
    url = f"{_base(s.programme)}/{proposal.id}"

    review = client.get(url)
    assert "Bookings have changed" in review.text
    assert "Commit this proposal" not in review.text

    response = client.post(f"{url}/commit", headers={"Referer": url}, follow_redirects=True)

    assert "it was not committed" in response.text
    assert len(live_bookings()) == 1


def test_bad_time_limit_re_renders_the_form(client, scene, coordinator):
    s = scene(people=1)
    sign_in(client, coordinator)

    response = client.post(_base(s.programme), data={"time_limit": "0"})

    assert response.status_code == 400
    assert "Enter a time limit from 1 to 600 seconds" in response.text
    assert proposal_count() == 0


def test_proposal_of_another_programme_is_not_found(client, scene, coordinator, make_programme):
    s = scene(people=1)
    proposal = create_proposal(s.programme, by=coordinator, time_limit=1)
    other = make_programme()
    sign_in(client, coordinator)

    assert client.get(f"{_base(other)}/{proposal.id}").status_code == 404


@pytest.mark.parametrize("role", [Role.NQSW, Role.EMPLOYER_CONTACT])
def test_other_roles_are_refused(client, scene, make_user, role):
    s = scene(people=1)
    proposal = create_proposal(s.programme, by=None, time_limit=1)
    sign_in(client, make_user(role))
    base = _base(s.programme)

    assert client.get(base).status_code == 403
    assert client.post(base, data={"time_limit": "1"}).status_code == 403
    assert client.get(f"{base}/{proposal.id}").status_code == 403
    assert client.get(f"{base}/{proposal.id}/progress.json").status_code == 403
    assert client.post(f"{base}/{proposal.id}/commit").status_code == 403
    assert proposal_count() == 1


def test_cli_prints_the_comparison_and_commits(runner, scene, tmp_path):
    s = scene(people=3, capacity=1)  # two places for three people
    out = tmp_path / "result.json"

    result = runner.invoke(
        args=["allocate", s.programme.slug, "--time-limit", "1", "--commit", "--out", str(out)]
    )

    assert result.exit_code == 0, result.output
    assert re.search(r"placed\s+2\s+2", result.output)
    assert re.search(r"unplaced\s+1\s+1", result.output)
    assert re.search(r"status\s+optimal\s+optimal", result.output)
    assert "Committed proposal" in result.output
    assert "2 booked" in result.output
    assert json.loads(out.read_text())["placed"] == 2
    assert len(live_bookings()) == 2


def test_cli_without_commit_books_nothing(runner, scene):
    s = scene(people=2)

    result = runner.invoke(args=["allocate", s.programme.slug, "--time-limit", "1"])

    assert result.exit_code == 0, result.output
    assert "Not committed" in result.output
    assert live_bookings() == []


def test_cli_unknown_programme_fails(runner, app):
    result = runner.invoke(args=["allocate", "no-such-programme"])

    assert result.exit_code == 1
    assert "No programme" in result.output
