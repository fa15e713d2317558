"""One table for every change people (and the system) make."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import Base, db
from ..models import User, UTCDateTime, utcnow

if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model


class AuditEvent(Model):
    """One change: ``action`` done by ``actor`` to ``target_type``/``target_id``.

    The subject columns (``nqsw_id``, ``session_id``, ``employer_id``) are plain
    integers, not foreign keys: the record outlives what it describes, and the pages
    that show a person's, a session's or an employer's history filter on them.
    ``before`` and ``after`` are JSON objects of the fields that changed; they hold
    ids and states, never names or addresses, so erasing a person leaves them intact.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL"), default=None, index=True
    )
    # Who acted when no person did: "system", "worker", "stripe", "cli".
    actor_label: Mapped[str] = mapped_column(String(40), default="")
    action: Mapped[str] = mapped_column(String(60), index=True)
    target_type: Mapped[str] = mapped_column(String(40))
    target_id: Mapped[int | None] = mapped_column(default=None)
    nqsw_id: Mapped[int | None] = mapped_column(default=None, index=True)
    session_id: Mapped[int | None] = mapped_column(default=None, index=True)
    employer_id: Mapped[int | None] = mapped_column(default=None, index=True)
    before: Mapped[str] = mapped_column(Text, default="{}")
    after: Mapped[str] = mapped_column(Text, default="{}")
    reason: Mapped[str] = mapped_column(Text, default="")

    actor: Mapped[User | None] = relationship()

    __table_args__ = (Index("ix_audit_event_target", "target_type", "target_id"),)

    def __repr__(self) -> str:
        return f"<AuditEvent {self.id} {self.action}>"
