"""The annotator's side: the queue, the annotation page, and the same actions as a JSON API.

Every lookup goes through :func:`camels.annotate.service.own_assignment` with the session's user id, so
another annotator's assignment is "not found" (404) here exactly like one that does not exist.
"""

from __future__ import annotations

import secrets

from flask import Blueprint, abort, current_app, g, jsonify, redirect, render_template, request, url_for

from camels.annotate import service
from camels.annotate.app import db
from camels.annotate.render import render_markdown
from camels.annotate.views import login_required

bp = Blueprint("annotator", __name__)


@bp.route("/")
@login_required
def home():
    if g.user.is_admin and not service.queue(db(), g.user.id):
        return redirect(url_for("admin.dashboard"))
    return redirect(url_for("annotator.next_item"))


@bp.route("/annotate")
@login_required
def next_item():
    s = db()
    if not service.queue(s, g.user.id) and not g.user.is_admin:
        service.allocate(s, g.user.id, current_app.config["BATCH"])
    pending = service.next_pending(s, g.user.id)
    if pending is not None:
        return redirect(url_for("annotator.item", assignment_id=pending.id))
    return render_template("finished.html", progress=service.progress(s, g.user.id))


@bp.route("/annotate/more", methods=["POST"])
@login_required
def more():
    service.allocate(db(), g.user.id, current_app.config["BATCH"])
    return redirect(url_for("annotator.next_item"))


def _own(assignment_id: int):
    try:
        return service.own_assignment(db(), g.user.id, assignment_id)
    except LookupError:
        abort(404)


def _shown(assignment, pair) -> tuple[str, str]:
    return (pair.output_a, pair.output_b) if assignment.a_first else (pair.output_b, pair.output_a)


@bp.route("/annotate/<int:assignment_id>", methods=["GET", "POST"])
@login_required
def item(assignment_id: int):
    s = db()
    assignment, pair, annotation = _own(assignment_id)
    error = None
    form = service.to_screen_terms(annotation, assignment.a_first) if annotation else {}
    if request.method == "POST":
        try:
            answer = service.parse_answer(request.form)
            service.save_annotation(s, g.user.id, assignment.id, answer, request.form.get("idempotency_key"))
        except service.AnnotateError as e:
            error = str(e)
            form = dict(request.form)
        else:
            return redirect(url_for("annotator.next_item"))
    queue = service.queue(s, g.user.id)
    position = next(i for i, (a, _) in enumerate(queue) if a.id == assignment.id) + 1
    first, second = _shown(assignment, pair)
    return render_template(
        "annotate.html",
        assignment=assignment,
        prompt_html=render_markdown(pair.prompt),
        first_html=render_markdown(first),
        second_html=render_markdown(second),
        form=form,
        error=error,
        position=position,
        progress=service.progress(s, g.user.id),
        queue=[(a.id, ann is not None) for a, ann in queue],
        idempotency_key=secrets.token_urlsafe(16),
        preferences=[(1, "Response 1 is clearly better"), (2, "Response 1 is slightly better"), (3, "Tie"),
                     (4, "Response 2 is slightly better"), (5, "Response 2 is clearly better")],
    ), 400 if error else 200


# --- JSON API (same rules, same ownership checks) ---------------------------------------------------------
@bp.route("/api/session")
@login_required
def api_session():
    """Who is logged in, and the CSRF token a script sends back in ``X-CSRF-Token`` (readable only by
    same-origin code: the app sends no CORS headers)."""
    from camels.annotate.app import csrf_token

    return jsonify(username=g.user.username, is_admin=g.user.is_admin, csrf_token=csrf_token())


@bp.route("/api/queue")
@login_required
def api_queue():
    s = db()
    p = service.progress(s, g.user.id)
    return jsonify(done=p.done, total=p.total, more_available=p.more_available,
                   assignments=[{"id": a.id, "done": ann is not None} for a, ann in service.queue(s, g.user.id)])


@bp.route("/api/queue/more", methods=["POST"])
@login_required
def api_more():
    batch = request.args.get("batch", str(current_app.config["BATCH"]))
    if not batch.isdigit() or not 1 <= int(batch) <= 1000:
        return jsonify(error="batch: a number from 1 to 1000"), 400
    return jsonify(allocated=service.allocate(db(), g.user.id, int(batch)))


@bp.route("/api/assignments/<int:assignment_id>")
@login_required
def api_assignment(assignment_id: int):
    assignment, pair, annotation = _own(assignment_id)
    first, second = _shown(assignment, pair)
    return jsonify(id=assignment.id, prompt=pair.prompt, first=first, second=second,
                   annotation=service.to_screen_terms(annotation, assignment.a_first) if annotation else None)


@bp.route("/api/assignments/<int:assignment_id>/annotation", methods=["PUT", "POST"])
@login_required
def api_annotate(assignment_id: int):
    _own(assignment_id)
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return jsonify(error="send a JSON object"), 400
    try:
        answer = service.parse_answer(data)
        row, replayed = service.save_annotation(db(), g.user.id, assignment_id, answer,
                                                request.headers.get("Idempotency-Key"))
    except service.AnnotateError as e:
        return jsonify(error=str(e)), 400
    return jsonify(annotation_id=row.id, assignment_id=assignment_id, revision=row.revision, replayed=replayed)
