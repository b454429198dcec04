"""The admin's side: the dashboard (studies, annotators, invitations) and one-time invitation links."""

from __future__ import annotations

from flask import Blueprint, g, render_template, request, url_for
from sqlalchemy import func, select

from camels.annotate import service
from camels.annotate.app import db
from camels.annotate.db import Annotation, Assignment, Invitation, Pair, Study, User
from camels.annotate.views import admin_required

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _dashboard_data() -> dict:
    s = db()
    studies = []
    for study in s.scalars(select(Study).order_by(Study.id)):
        pairs = s.scalar(select(func.count()).select_from(Pair).where(Pair.study_id == study.id))
        assigned = s.scalar(select(func.count()).select_from(Assignment).join(Pair)
                            .where(Pair.study_id == study.id))
        done = s.scalar(select(func.count()).select_from(Annotation).join(Assignment).join(Pair)
                        .where(Pair.study_id == study.id))
        studies.append({"study": study, "pairs": pairs, "needed": pairs * study.annotators_per_pair,
                        "assigned": assigned, "done": done})
    per_user = dict(s.execute(select(Assignment.user_id, func.count()).group_by(Assignment.user_id)).all())
    done_user = dict(s.execute(select(Assignment.user_id, func.count()).join(Annotation)
                               .group_by(Assignment.user_id)).all())
    users = [{"user": u, "assigned": per_user.get(u.id, 0), "done": done_user.get(u.id, 0)}
             for u in s.scalars(select(User).order_by(User.id))]
    invitations = s.scalars(select(Invitation).order_by(Invitation.id.desc()).limit(50)).all()
    return {"studies": studies, "users": users, "invitations": invitations}


@bp.route("/")
@admin_required
def dashboard():
    return render_template("admin.html", new_link=None, **_dashboard_data())


@bp.route("/invitations", methods=["POST"])
@admin_required
def invite():
    token = service.create_invitation(db(), created_by=g.user.id, note=request.form.get("note", ""))
    link = url_for("auth.invite", token=token, _external=True)
    return render_template("admin.html", new_link=link, **_dashboard_data())
