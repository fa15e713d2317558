"""Domain errors whose messages a person can read.

The app turns any ``BookingError`` into a 409/400 JSON body for the API, or a
message next to the form field for pages.
"""

from __future__ import annotations


class BookingError(Exception):
    """A request the booking rules refuse."""

    status_code = 409
    field: str | None = None
    # A coordinator may book past this refusal as an exception, giving a reason.
    overridable = False

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if field is not None:
            self.field = field


class SessionFull(BookingError):
    """No places left on the session."""

    overridable = True


class SessionNotBookable(BookingError):
    """The session is cancelled, in the past or not published."""


class SessionStarted(SessionNotBookable):
    """The session has already started."""

    overridable = True


class AlreadyBooked(BookingError):
    """The NQSW already holds a place on this course."""


class OutsideAsyeYear(BookingError):
    """The session falls outside the NQSW's ASYE year."""


class ProtectedTimeExceeded(BookingError):
    """The booking would use more protected time than the rules allow."""

    overridable = True


class NotAllowed(BookingError):
    """The person may not do this to this record."""

    status_code = 403


class InvalidInput(BookingError):
    """A value was missing or malformed."""

    status_code = 400


class ImportRejected(BookingError):
    """A whole file was rejected; ``problems`` lists each bad row."""

    status_code = 400

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        lines = "; ".join(f"line {line}: {reason}" for line, reason in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"Nothing was imported. {lines}{more}")
        self.problems = problems
