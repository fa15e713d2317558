"""The audit log: who changed what, when, to which record, from what to what.

Services call :func:`booking.audit.services.record` in the same transaction as the
change, so an entry exists if and only if the change was committed.
"""
