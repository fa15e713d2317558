"""The threshold computation: one pure function and its edge cases."""

from __future__ import annotations

import pytest

from booking.attendance import Outcome, attendance_status
from booking.models import AttendanceStatus

A, M, U = Outcome.ATTENDED, Outcome.MISSED, Outcome.UPCOMING


def status(*outcomes: Outcome, threshold: int = 75, remaining: int = 0) -> AttendanceStatus:
    return attendance_status(outcomes, threshold_percent=threshold, remaining=remaining).status


def test_no_sessions_yet_is_on_track_with_no_rate() -> None:
    summary = attendance_status([], threshold_percent=75)
    assert summary.status is AttendanceStatus.ON_TRACK
    assert summary.rate is None
    assert summary.best_reachable is None


def test_nothing_taken_place_but_courses_to_book_can_reach_everything() -> None:
    summary = attendance_status([U, U], threshold_percent=75, remaining=3)
    assert summary.rate is None
    assert summary.best_reachable == 100
    assert summary.still_possible == 5
    assert summary.status is AttendanceStatus.ON_TRACK


def test_all_cancelled_sessions_count_for_nothing() -> None:
    summary = attendance_status([Outcome.NOT_COUNTED] * 3, threshold_percent=75)
    assert (summary.attended, summary.expected_so_far, summary.rate) == (0, 0, None)
    assert summary.status is AttendanceStatus.ON_TRACK


def test_exactly_the_threshold_is_on_track() -> None:
    summary = attendance_status([A, A, A, M], threshold_percent=75)
    assert summary.rate == 75
    assert summary.status is AttendanceStatus.ON_TRACK


def test_below_now_but_reachable_is_at_risk() -> None:
    summary = attendance_status([A, M, U, U], threshold_percent=75)
    assert summary.rate == 50
    assert summary.best_reachable == 75
    assert summary.status is AttendanceStatus.AT_RISK


def test_unreachable_is_cannot_reach() -> None:
    summary = attendance_status([A, M, M, U], threshold_percent=75)
    assert summary.best_reachable == 50
    assert summary.status is AttendanceStatus.CANNOT_REACH


def test_remaining_core_courses_can_rescue_a_bad_start() -> None:
    assert status(M, remaining=3) is AttendanceStatus.AT_RISK
    assert status(M, remaining=2) is AttendanceStatus.CANNOT_REACH


def test_late_cancellations_ahead_lower_the_best_rate_not_the_current_one() -> None:
    one = attendance_status([A, A, A, Outcome.FORFEITED], threshold_percent=75)
    assert one.rate == 100
    assert one.best_reachable == 75
    assert one.status is AttendanceStatus.ON_TRACK
    assert status(A, A, A, Outcome.FORFEITED, Outcome.FORFEITED) is AttendanceStatus.CANNOT_REACH


def test_excused_absences_are_left_out_and_unrecorded_registers_still_possible() -> None:
    summary = attendance_status([A, Outcome.EXCUSED, Outcome.UNRECORDED], threshold_percent=75)
    assert (summary.attended, summary.expected_so_far, summary.still_possible) == (1, 1, 1)
    assert summary.status is AttendanceStatus.ON_TRACK


@pytest.mark.parametrize(("threshold", "expected"), [(60, "on_track"), (75, "at_risk")])
def test_threshold_is_a_setting(threshold: int, expected: str) -> None:
    assert status(A, A, M, U, threshold=threshold).value == expected
