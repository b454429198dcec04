"""The admin's side: the dashboard (studies and their results, annotators, invitations), one-time
invitation links and the exports (the same files as ``camels annotate export``)."""

from __future__ import annotations

import json

from flask import Blueprint, Response, g, render_template, request, url_for
from sqlalchemy import func, select

from camels.annotate import export, service
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
                        "assigned": assigned, "done": done, "results": export.study_summary(s, study)})
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


def _download(body: str, name: str, mimetype: str) -> Response:
    return Response(body, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.route("/export/annotations.csv")
@admin_required
def export_csv():
    s = db()
    rows = [r for st in s.scalars(select(Study).order_by(Study.id)) for r in export.annotation_rows(s, st)]
    return _download(export.to_csv(rows), "annotations.csv", "text/csv")


@bp.route("/export/annotations.jsonl")
@admin_required
def export_jsonl():
    s = db()
    rows = [r for st in s.scalars(select(Study).order_by(Study.id))
            for r in export.annotation_rows(s, st, texts=True)]
    body = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
    return _download(body, "annotations.jsonl", "application/x-ndjson")


@bp.route("/export/results.json")
@admin_required
def export_results():
    s = db()
    res = export.results(s, list(s.scalars(select(Study).order_by(Study.id))))
    return _download(json.dumps(res, indent=2, sort_keys=True) + "\n", "results.json", "application/json")
