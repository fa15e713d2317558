"""Write and read the audit log."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from enum import Enum
from typing import Any

from flask import has_request_context
from flask_login import current_user
from sqlalchemy import inspect

from ..extensions import db
from ..models import User, utcnow
from .models import AuditEvent

SYSTEM = "system"


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _json(values: Mapping[str, Any] | None) -> str:
    return json.dumps({k: _plain(v) for k, v in (values or {}).items()}, sort_keys=True)


def _actor(actor: User | str | None) -> tuple[int | None, str]:
    if isinstance(actor, User):
        return actor.id, ""
    if isinstance(actor, str):
        return None, actor
    # No actor given: the signed-in person making this request, else the system.
    if has_request_context() and current_user.is_authenticated:
        return int(current_user.id), ""
    return None, SYSTEM


def _target(target: Any) -> tuple[str, int | None]:
    if isinstance(target, tuple):
        kind, ident = target
        return str(kind), ident
    return inspect(target).mapper.local_table.name, target.id


def record(
    action: str,
    target: Any,
    *,
    actor: User | str | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    nqsw_id: int | None = None,
    session_id: int | None = None,
    employer_id: int | None = None,
    reason: str = "",
    at: datetime | None = None,
) -> AuditEvent:
    """Add an audit entry to the current transaction and return it.

    ``target`` is a mapped object (its table name and id are kept) or a
    ``(kind, id)`` pair. ``actor`` is the person who acted, a label such as
    ``"stripe"`` or ``"worker"``, or None for the signed-in person (else "system").
    """
    actor_id, actor_label = _actor(actor)
    target_type, target_id = _target(target)
    event = AuditEvent(
        at=at or utcnow(),
        actor_id=actor_id,
        actor_label=actor_label,
        action=action,
        target_type=target_type,
        target_id=target_id,
        nqsw_id=nqsw_id,
        session_id=session_id,
        employer_id=employer_id,
        before=_json(before),
        after=_json(after),
        reason=reason,
    )
    db.session.add(event)
    return event
