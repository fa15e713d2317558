"""The coordinator's view of mail that could not be delivered, with a resend button."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from .. import notifications
from ..extensions import db
from ..forms import ConfirmForm
from ..models import LONDON, OutboxMessage, Role
from . import require_role

bp = Blueprint("mail", __name__, url_prefix="/coordinator/mail")


@bp.get("/undelivered")
@require_role(Role.COORDINATOR)
def undelivered() -> ResponseReturnValue:
    return render_template(
        "mail/undelivered.html",
        messages=notifications.dead_messages(),
        max_attempts=notifications.max_attempts(),
        form=ConfirmForm(),
        london=LONDON,
    )


@bp.post("/<int:message_id>/resend")
@require_role(Role.COORDINATOR)
def resend(message_id: int) -> ResponseReturnValue:
    message = db.get_or_404(OutboxMessage, message_id)
    if ConfirmForm().validate_on_submit():
        notifications.resend(message)
        flash(f"“{message.subject}” is queued to send again.", "success")
    return redirect(url_for("mail.undelivered"))
