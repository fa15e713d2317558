"""The coordinator's allocation pages: start a run, watch it, review and commit it."""

from __future__ import annotations

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from .. import allocation as service
from ..extensions import db
from ..forms import AllocationForm, ConfirmForm
from ..models import AllocationProposal, Programme, ProposalStatus, Role
from . import form_status, refusals_shown_on, require_role

bp = Blueprint("allocation", __name__, url_prefix="/coordinator/programmes/<int:programme_id>")


def _proposal(programme_id: int, proposal_id: int) -> AllocationProposal:
    proposal = db.get_or_404(AllocationProposal, proposal_id)
    if proposal.programme_id != programme_id:
        abort(404)
    return proposal


@bp.route("/allocation", methods=["GET", "POST"])
@require_role(Role.COORDINATOR)
def start(programme_id: int) -> ResponseReturnValue:
    programme = db.get_or_404(Programme, programme_id)
    form = AllocationForm()
    if form.validate_on_submit():
        with refusals_shown_on(form):
            proposal = service.start_run(
                programme,
                by=current_user,
                time_limit=form.time_limit.data,
                allow_moves=form.allow_moves.data,
                include_optional=form.include_optional.data,
            )
            return redirect(
                url_for("allocation.proposal", programme_id=programme.id, proposal_id=proposal.id)
            )
    proposals = service.proposals_for(programme)
    return render_template(
        "allocation/start.html",
        programme=programme,
        form=form,
        proposals=proposals,
        stale=service.stale_proposal_ids(proposals),
    ), form_status(form)


@bp.get("/allocation/<int:proposal_id>")
@require_role(Role.COORDINATOR)
def proposal(programme_id: int, proposal_id: int) -> ResponseReturnValue:
    proposal = _proposal(programme_id, proposal_id)
    progress = service.run_progress(proposal)
    if progress.status in (ProposalStatus.RUNNING.value, ProposalStatus.FAILED.value):
        return render_template("allocation/run.html", proposal=proposal, progress=progress)
    return render_template(
        "allocation/review.html", review=service.review_proposal(proposal), form=ConfirmForm()
    )


@bp.get("/allocation/<int:proposal_id>/progress.json")
@require_role(Role.COORDINATOR)
def progress(programme_id: int, proposal_id: int) -> ResponseReturnValue:
    return jsonify(service.run_progress(_proposal(programme_id, proposal_id)).as_json())


@bp.post("/allocation/<int:proposal_id>/commit")
@require_role(Role.COORDINATOR)
def commit(programme_id: int, proposal_id: int) -> ResponseReturnValue:
    proposal = _proposal(programme_id, proposal_id)
    if ConfirmForm().validate_on_submit():
        report = service.commit_proposal(proposal, current_user)
        if report.already_committed:
            flash("This proposal was already committed; nothing more was booked.", "info")
        else:
            message = f"Committed: {report.booked} booked, {report.moved} moved."
            if report.failed:
                message += f" {len(report.failed)} could not be made; see below."
            flash(message, "success")
    return redirect(
        url_for("allocation.proposal", programme_id=programme_id, proposal_id=proposal_id)
    )
